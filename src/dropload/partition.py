"""Time partitions: the partition id of a value, and the ids a shard's rows cover.

Ids are spelled as BigQuery's partition decorators spell them (`20260126` for a
day, `2026012608` for an hour, `202601` for a month, `2026` for a year), so a
manifest's partitions can be put behind `table$` as they are.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import fastavro

from dropload.config import TableConfig
from dropload.errors import ConfigError
from dropload.schema import SchemaField

PARTITIONS_METADATA = "dropload-partitions"
"""Shard metadata key: the comma-separated partition ids its rows cover."""

NULL_PARTITION = "__NULL__"
"""BigQuery's partition for rows whose partitioning column is NULL."""

MAX_PARTITIONS_PER_JOB = 4000
"""BigQuery: one load job may modify at most 4,000 partitions."""

PARTITION_FIELD_TYPES = ("TIMESTAMP", "DATE", "DATETIME")
"""Column types BigQuery time-partitions on."""

_FORMATS = {"HOUR": "%Y%m%d%H", "DAY": "%Y%m%d", "MONTH": "%Y%m", "YEAR": "%Y"}
_LENGTHS = {"HOUR": 10, "DAY": 8, "MONTH": 6, "YEAR": 4}


@dataclass(frozen=True)
class PartitionSpec:
    """How a table is time-partitioned: by a column, or by load time."""

    type: str
    field: str | None = None
    field_type: str = ""
    """TIMESTAMP, DATE or DATETIME; empty for ingestion-time partitioning."""

    def id_of(self, value: Any) -> str:
        """The partition id of one value of the partitioning column."""
        return partition_id(value, self.type)

    def covers(self, partition: str, start: date, end: date) -> bool:
        """True when the partition overlaps the days `start` to `end` inclusive."""
        if partition == NULL_PARTITION:
            return False
        low, high = partition_bounds(partition, self.type)
        return low.date() <= end and high > datetime.combine(start, datetime.min.time())


def partition_spec(
    table: TableConfig, fields: Sequence[SchemaField]
) -> PartitionSpec | None:
    """The table's partitioning, checked against its schema; None when unpartitioned.

    Raises ConfigError when the column is missing or has a type BigQuery does not
    partition on.
    """
    config = table.time_partitioning
    if config is None:
        return None
    if config.field is None:
        return PartitionSpec(config.type)
    found = next((f for f in fields if f.name == config.field), None)
    key = f"tables.{table.name}.time_partitioning.field"
    if found is None:
        raise ConfigError(key, f"column {config.field} is not in the table's schema")
    if found.field_type not in PARTITION_FIELD_TYPES or found.mode == "REPEATED":
        kinds = ", ".join(PARTITION_FIELD_TYPES)
        raise ConfigError(key, f"column {config.field} must be one of {kinds}")
    if found.field_type == "DATE" and config.type == "HOUR":
        raise ConfigError(key, f"a DATE column ({config.field}) cannot be HOUR")
    return PartitionSpec(config.type, config.field, found.field_type)


def partition_id(value: Any, type_: str) -> str:
    """The partition id of a TIMESTAMP, DATE or DATETIME value (None: `__NULL__`).

    Strings are read as BigQuery's JSON encoding; aware values count in UTC.
    Raises ValueError for a value that is none of these.
    """
    if value is None:
        return NULL_PARTITION
    if isinstance(value, str):
        fast = _fast_id(value, type_)
        if fast is not None:
            return fast
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo is not None else value
        return moment.strftime(_FORMATS[type_])
    if isinstance(value, date):
        return value.strftime(_FORMATS[type_])
    if isinstance(value, int):
        moment = datetime(1970, 1, 1) + timedelta(microseconds=value)
        return moment.strftime(_FORMATS[type_])
    raise ValueError(f"a {type(value).__name__} has no time partition")


def _fast_id(text: str, type_: str) -> str | None:
    """Slices of `YYYY-MM-DD...` text in UTC (the stager's own encoding)."""
    utc = len(text) == 10 or (text.endswith("Z") and len(text) >= 19)
    if not utc or text[4:5] != "-" or text[7:8] != "-":
        return None
    digits = text[0:4] + text[5:7] + text[8:10]
    if type_ == "HOUR":
        return digits + text[11:13] if len(text) > 10 else None
    return digits[: _LENGTHS[type_]]


def partition_bounds(partition: str, type_: str) -> tuple[datetime, datetime]:
    """The start and end (exclusive) of a partition, naive in UTC.

    Raises ValueError for an id that is not of this partitioning type.
    """
    if len(partition) != _LENGTHS[type_] or not partition.isdigit():
        raise ValueError(f"{partition!r} is not a {type_} partition id")
    start = datetime.strptime(partition, _FORMATS[type_])
    if type_ == "HOUR":
        return start, start + timedelta(hours=1)
    if type_ == "DAY":
        return start, start + timedelta(days=1)
    if type_ == "MONTH":
        year, month = divmod(start.month, 12)
        return start, start.replace(year=start.year + year, month=month + 1)
    return start, start.replace(year=start.year + 1)


def encode_partitions(partitions: Iterable[str]) -> str:
    """Partition ids as one metadata value, sorted and comma-separated."""
    return ",".join(sorted(set(partitions)))


def decode_partitions(text: str | None) -> tuple[str, ...] | None:
    """What `encode_partitions` wrote; None when the metadata is absent."""
    if text is None:
        return None
    return tuple(p for p in text.split(",") if p)


def shard_partitions(fmt: str, data: bytes, spec: PartitionSpec) -> set[str]:
    """The partition ids the rows of a shard cover; raises ValueError."""
    return set(split_shard(fmt, data, spec, keep=None))


def split_shard(
    fmt: str, data: bytes, spec: PartitionSpec, *, keep: set[str] | None
) -> dict[str, bytes]:
    """A shard's rows grouped by partition, each group as a file of the same format.

    Only the partitions in `keep` are encoded; the others map to empty bytes
    (`keep=None` encodes none, to count). Raises ValueError for a bad shard.
    """
    if fmt == "ndjson":
        return _split_ndjson(data, spec, keep)
    return _split_avro(data, spec, keep)


def _split_ndjson(
    data: bytes, spec: PartitionSpec, keep: set[str] | None
) -> dict[str, bytes]:
    import orjson

    groups: dict[str, list[bytes]] = defaultdict(list)
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line).get(spec.field)
        except (ValueError, AttributeError):
            raise ValueError(f"NDJSON line {number}: not a JSON object") from None
        part = spec.id_of(value)
        groups[part].append(_with_newline(line) if _wanted(part, keep) else b"")
    return {part: b"".join(lines) for part, lines in groups.items()}


def _split_avro(
    data: bytes, spec: PartitionSpec, keep: set[str] | None
) -> dict[str, bytes]:
    schema, records = avro_records(data)
    groups: dict[str, list[Any]] = defaultdict(list)
    for record in records:
        part = spec.id_of(record.get(str(spec.field)))
        groups[part].append(record)
    return {
        part: _avro_file(schema, rows) if _wanted(part, keep) else b""
        for part, rows in groups.items()
    }


def avro_records(data: bytes) -> tuple[Any, list[dict[str, Any]]]:
    """The writer schema and the raw records of an Avro file; raises ValueError."""
    try:
        reader = fastavro.reader(io.BytesIO(data))
        rows: list[dict[str, Any]] = [r for r in reader if isinstance(r, dict)]
        return reader.writer_schema, rows
    except (ValueError, EOFError, KeyError, TypeError) as exc:
        raise ValueError(f"not an Avro container file: {exc}") from None


def _avro_file(schema: Any, rows: Sequence[Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, rows, codec="deflate")
    return buffer.getvalue()


def _wanted(partition: str, keep: set[str] | None) -> bool:
    return keep is not None and partition in keep


def _with_newline(line: bytes) -> bytes:
    return line if line.endswith(b"\n") else line + b"\n"
