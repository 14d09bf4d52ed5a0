"""The DuckDB warehouse: BigQuery's load semantics in one file, with a job ledger."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dropload import WarehouseError
from dropload.config import TableConfig
from dropload.schema import parse_schema
from dropload.warehouse import LoadRequest
from dropload.warehouse.duckdb import DuckDBWarehouse
from embedded import SCHEMA, ledger, table_ids

FIELDS = parse_schema(SCHEMA, source="test")


def _request(job_id: str, uri: str, destination: str = "ds.events") -> LoadRequest:
    table = TableConfig(name="events", destination=destination, schema="s.json")
    return LoadRequest(job_id=job_id, table=table, fields=FIELDS, source_uris=(uri,))


def _shard(folder: Path, name: str, ids: range) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(f'{{"id": {i}}}\n' for i in ids)
    (folder / name).write_text(lines)
    return str(folder / "*.ndjson")


def test_a_load_inserts_and_records_the_job(tmp_path: Path) -> None:
    """A load adds the rows and one DONE ledger row with the row count."""
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    uri = _shard(tmp_path / "batch", "a.ndjson", range(3))

    result = warehouse.load(_request("job-1", uri), timeout=60)

    assert (result.succeeded, result.output_rows, result.input_files) == (True, 3, 1)
    assert table_ids(warehouse) == [0, 1, 2]
    assert ledger(warehouse) == [("job-1", "DONE", None, 3)]


def test_a_missing_source_is_a_failed_job_not_an_exception(tmp_path: Path) -> None:
    """Sources that match no file give a DONE job with reason notFound."""
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")

    result = warehouse.load(
        _request("job-1", str(tmp_path / "none" / "*.ndjson")), timeout=60
    )

    assert (result.done, result.error_reason) == (True, "notFound")
    assert ledger(warehouse) == [("job-1", "DONE", "notFound", None)]


def test_concurrent_loads_into_one_dataset_all_succeed(tmp_path: Path) -> None:
    """Loads of several tables of one dataset at once do not conflict."""
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    results = []

    def load(n: int) -> None:
        uri = _shard(tmp_path / f"batch{n}", "a.ndjson", range(n, n + 1))
        results.append(
            warehouse.load(_request(f"job-{n}", uri, f"ds.t{n}"), timeout=60)
        )

    threads = [threading.Thread(target=load, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.error_message for r in results if not r.succeeded] == []
    assert len(ledger(warehouse)) == 6


def test_a_warehouse_under_a_regular_file_is_a_warehouse_error(
    tmp_path: Path,
) -> None:
    """A DuckDB path whose folder cannot exist raises WarehouseError naming it."""
    (tmp_path / "file").write_text("not a folder")

    with pytest.raises(WarehouseError, match=r"w\.duckdb"):
        DuckDBWarehouse(tmp_path / "file" / "w.duckdb")
