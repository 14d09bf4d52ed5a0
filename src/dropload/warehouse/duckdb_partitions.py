"""Time-partitioned tables in DuckDB: the spec kept beside them, partition replace.

DuckDB has no partitions, so a partition is the rows whose partitioning column
falls in its bounds; `table$P` with WRITE_TRUNCATE deletes them and loads the
new rows in the load's own transaction, and refuses rows outside `P`, as
BigQuery does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from dropload.partition import NULL_PARTITION, PartitionSpec, partition_bounds
from dropload.warehouse.base import LoadRequest

TABLES = "_dropload_tables"
"""Each table's partitioning and clustering, as BigQuery would keep them."""


def record_table(con: duckdb.DuckDBPyConnection, request: LoadRequest) -> None:
    """Keep the partitioning and clustering a load created the table with."""
    config = request.table.time_partitioning
    con.execute(
        f"INSERT OR REPLACE INTO {TABLES} VALUES (?, ?, ?, ?, ?)",
        [
            request.target,
            config.type if config else None,
            config.field if config else None,
            config.expiration_days if config else None,
            list(request.table.clustering),
        ],
    )


def table_spec(
    con: duckdb.DuckDBPyConnection, request: LoadRequest
) -> tuple[PartitionSpec, float | None] | None:
    """The destination's partitioning and expiration in days; None if unpartitioned."""
    row = con.execute(
        f"SELECT partition_type, partition_field, expiration_days FROM {TABLES}"
        " WHERE destination = ?",
        [request.target],
    ).fetchone()
    if row is None or row[0] is None:
        return None
    kinds = {f.name: f.field_type for f in request.fields}
    return PartitionSpec(row[0], row[1], kinds.get(row[1], "")), row[2]


@dataclass(frozen=True)
class PartitionGuard:
    """One partition of a table, and how many rows lay outside it before a load."""

    target: str
    partition: str
    predicate: str
    params: tuple[Any, ...]
    outside: int

    @classmethod
    def open(
        cls, con: duckdb.DuckDBPyConnection, request: LoadRequest
    ) -> PartitionGuard:
        """Raises ValueError for an unpartitioned table or a bad partition id."""
        found = table_spec(con, request)
        partition = str(request.partition)
        if found is None:
            raise ValueError(
                f"Table {request.target} is not partitioned; it has no partition"
                f" {partition}"
            )
        spec = found[0]
        if spec.field is None:
            raise NotImplementedError(
                "the DuckDB warehouse replaces partitions of column-partitioned"
                " tables only, not of ingestion-time partitioned ones"
            )
        predicate, params = _predicate(spec, partition)
        guard = cls(request.target, partition, predicate, params, 0)
        return cls(request.target, partition, predicate, params, guard._outside(con))

    def truncate(self, con: duckdb.DuckDBPyConnection) -> None:
        """Delete the partition's rows (inside the load's transaction)."""
        con.execute(
            f"DELETE FROM {_qualified(self.target)} WHERE {self.predicate}",
            list(self.params),
        )

    def check(self, con: duckdb.DuckDBPyConnection) -> None:
        """Raises ValueError when the load put rows outside the partition."""
        if self._outside(con) != self.outside:
            raise ValueError(
                f"rows of the load fall outside partition {self.partition} of"
                f" {self.target}; a partition load takes only that partition's rows"
            )

    def _outside(self, con: duckdb.DuckDBPyConnection) -> int:
        row = con.execute(
            f"SELECT count(*) FILTER (WHERE NOT coalesce({self.predicate}, false))"
            f" FROM {_qualified(self.target)}",
            list(self.params),
        ).fetchone()
        return int(row[0]) if row else 0


def expire_partitions(con: duckdb.DuckDBPyConnection, destination: str) -> int:
    """Delete rows of partitions past the table's expiration; returns rows deleted."""
    row = con.execute(
        f"SELECT partition_type, partition_field, expiration_days FROM {TABLES}"
        " WHERE destination = ?",
        [destination],
    ).fetchone()
    if row is None or row[1] is None or row[2] is None:
        return 0
    kind = _column_kind(con, destination, row[1])
    cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=row[2])
    start, _ = partition_bounds(PartitionSpec(row[0]).id_of(cutoff), row[0])
    deleted = con.execute(
        f"DELETE FROM {_qualified(destination)} WHERE {_quote(row[1])} < ?",
        [_typed(start, kind)],
    ).fetchone()
    return int(deleted[0]) if deleted else 0


def _predicate(spec: PartitionSpec, partition: str) -> tuple[str, tuple[Any, ...]]:
    column = _quote(str(spec.field))
    if partition == NULL_PARTITION:
        return f"{column} IS NULL", ()
    start, end = partition_bounds(partition, spec.type)
    kind = spec.field_type
    return f"({column} >= ? AND {column} < ?)", (_typed(start, kind), _typed(end, kind))


def _typed(moment: datetime, kind: str) -> Any:
    """A bound as the column's type wants it: aware, naive or a date."""
    if kind == "DATE":
        return date(moment.year, moment.month, moment.day)
    if kind == "TIMESTAMP":
        return moment.replace(tzinfo=UTC)
    return moment


def _column_kind(con: duckdb.DuckDBPyConnection, destination: str, column: str) -> str:
    schema, table = destination.split(".")[-2:]
    row = con.execute(
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_schema = ? AND table_name = ? AND column_name = ?",
        [schema, table, column],
    ).fetchone()
    found = str(row[0]).upper() if row else ""
    if found == "DATE":
        return "DATE"
    return "TIMESTAMP" if "TIME ZONE" in found or found == "TIMESTAMPTZ" else "DATETIME"


def _qualified(destination: str) -> str:
    schema, table = destination.split(".")[-2:]
    return f"{_quote(schema)}.{_quote(table)}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
