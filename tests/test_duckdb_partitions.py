"""Partitioned tables in the DuckDB warehouse: replace, guard, expiration, spec."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dropload.config import TableConfig
from dropload.schema import SchemaField
from dropload.warehouse.base import LoadRequest
from dropload.warehouse.duckdb import DuckDBWarehouse

FIELDS = (
    SchemaField("id", "INTEGER", "REQUIRED"),
    SchemaField("ts", "TIMESTAMP"),
    SchemaField("d", "DATE"),
)


def _table(**partitioning: Any) -> TableConfig:
    return TableConfig.model_validate(
        {
            "name": "events",
            "destination": "ds.events",
            "schema": "schema.json",
            "time_partitioning": partitioning or None,
            "clustering": ["id"],
        }
    )


class Loads:
    """Writes NDJSON files and loads them into `ds.events` under fresh job ids."""

    def __init__(self, folder: Path, table: TableConfig) -> None:
        self.folder = folder
        self.table = table
        self.warehouse = DuckDBWarehouse(folder / "w.duckdb")
        self.count = 0

    def load(
        self, rows: list[dict[str, Any]], partition: str | None = None, **kw: Any
    ) -> Any:
        """Load rows; `partition` with WRITE_TRUNCATE replaces that partition."""
        self.count += 1
        path = self.folder / f"{self.count}.ndjson"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        request = LoadRequest(
            job_id=f"job-{self.count}",
            table=self.table,
            fields=FIELDS,
            source_uris=(str(path),),
            partition=partition,
            write_disposition="WRITE_TRUNCATE" if partition else None,
            **kw,
        )
        return self.warehouse.load(request, timeout=10)

    def ids(self) -> list[int]:
        """Ids in the table, sorted."""
        return [
            r[0] for r in self.warehouse.query("SELECT id FROM ds.events ORDER BY 1")
        ]


def _row(i: int, ts: str) -> dict[str, Any]:
    return {"id": i, "ts": ts, "d": ts[:10]}


def test_replace_one_day_leaves_the_other_days(tmp_path: Path) -> None:
    """table$20260126 with WRITE_TRUNCATE swaps that day's rows, keeps the 27th."""
    loads = Loads(tmp_path, _table(field="ts", type="DAY"))
    loads.load([_row(1, "2026-01-26T01:00:00Z"), _row(2, "2026-01-27T01:00:00Z")])

    result = loads.load([_row(3, "2026-01-26T23:59:59.999999Z")], "20260126")

    assert result.succeeded
    assert loads.ids() == [2, 3]


def test_partition_load_with_a_row_outside_fails_and_changes_nothing(
    tmp_path: Path,
) -> None:
    """A row outside the decorator's partition fails the job; the table is unchanged."""
    loads = Loads(tmp_path, _table(field="ts", type="DAY"))
    loads.load([_row(1, "2026-01-26T01:00:00Z")])

    result = loads.load(
        [_row(5, "2026-01-26T02:00:00Z"), _row(6, "2026-01-27T00:00:00Z")], "20260126"
    )

    assert result.done
    assert not result.succeeded
    assert result.error_reason == "invalid"
    assert "outside partition 20260126" in (result.error_message or "")
    assert loads.ids() == [1]


@pytest.mark.parametrize(
    ("kind", "partition", "kept"),
    [("HOUR", "2026012601", [2, 3, 9]), ("MONTH", "202601", [3, 9])],
)
def test_replace_hour_and_month_partitions(
    tmp_path: Path, kind: str, partition: str, kept: list[int]
) -> None:
    """HOUR and MONTH partitions are replaced over their own bounds."""
    loads = Loads(tmp_path, _table(field="ts", type=kind))
    loads.load(
        [
            _row(1, "2026-01-26T01:30:00Z"),
            _row(2, "2026-01-26T02:00:00Z"),
            _row(3, "2026-02-01T00:00:00Z"),
        ]
    )

    assert loads.load([_row(9, "2026-01-26T01:59:00Z")], partition).succeeded

    assert loads.ids() == kept


def test_replace_a_date_column_partition(tmp_path: Path) -> None:
    """A DATE partitioning column is compared as dates."""
    loads = Loads(tmp_path, _table(field="d", type="DAY"))
    loads.load([_row(1, "2026-01-26T01:00:00Z"), _row(2, "2026-01-27T01:00:00Z")])

    assert loads.load([_row(7, "2026-01-27T05:00:00Z")], "20260127").succeeded

    assert loads.ids() == [1, 7]


def test_partition_load_into_an_unpartitioned_table_fails(tmp_path: Path) -> None:
    """A decorator on a table without partitioning is an invalid job."""
    loads = Loads(tmp_path, _table())
    loads.load([_row(1, "2026-01-26T01:00:00Z")])

    result = loads.load([_row(2, "2026-01-26T01:00:00Z")], "20260126")

    assert result.error_reason == "invalid"
    assert "is not partitioned" in (result.error_message or "")
    assert loads.ids() == [1]


def test_partition_expiration_drops_old_partitions_at_the_next_load(
    tmp_path: Path,
) -> None:
    """Rows of partitions older than expiration_days are gone after a load."""
    loads = Loads(tmp_path, _table(field="ts", type="DAY", expiration_days=2))
    now = datetime.now(UTC)
    old = (now - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fresh = now.strftime("%Y-%m-%dT%H:%M:%SZ")

    loads.load([_row(1, old), _row(2, fresh)])

    assert loads.ids() == [2]


def test_partitioning_and_clustering_are_kept_beside_the_table(tmp_path: Path) -> None:
    """The table's partitioning spec and clustering are recorded when it is created."""
    loads = Loads(tmp_path, _table(field="ts", type="HOUR", expiration_days=30))
    loads.load([_row(1, "2026-01-26T01:00:00Z")])

    spec = loads.warehouse.query("SELECT * FROM _dropload_tables")

    assert spec == [("ds.events", "HOUR", "ts", 30.0, ["id"])]
