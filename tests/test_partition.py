"""Partition ids, bounds and shard splitting (partition.py)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta, timezone

import fastavro
import pytest

from dropload.config import TableConfig
from dropload.errors import ConfigError
from dropload.partition import (
    NULL_PARTITION,
    PartitionSpec,
    decode_partitions,
    encode_partitions,
    partition_bounds,
    partition_id,
    partition_spec,
    shard_partitions,
    split_shard,
)
from dropload.schema import SchemaField

MOMENT = datetime(2026, 1, 26, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "wanted"),
    [
        ("HOUR", "2026012623"),
        ("DAY", "20260126"),
        ("MONTH", "202601"),
        ("YEAR", "2026"),
    ],
)
def test_partition_id_of_each_type(kind: str, wanted: str) -> None:
    """A moment's id is spelled like BigQuery's partition decorator for its type."""
    assert partition_id(MOMENT, kind) == wanted
    assert partition_id("2026-01-26T23:30:00.000000Z", kind) == wanted


def test_partition_id_counts_aware_values_in_utc() -> None:
    """An aware timestamp in New York at 20:00 on the 26th is the 27th in UTC."""
    new_york = timezone(timedelta(hours=-5))
    moment = datetime(2026, 1, 26, 20, 0, tzinfo=new_york)

    assert partition_id(moment, "DAY") == "20260127"
    assert partition_id(moment.isoformat(), "DAY") == "20260127"


def test_partition_id_of_dates_datetimes_and_null() -> None:
    """DATE and DATETIME values and their text give the same ids; None is __NULL__."""
    assert partition_id(date(2026, 1, 26), "MONTH") == "202601"
    assert partition_id("2026-01-26", "DAY") == "20260126"
    assert partition_id("2026-01-26T05:00:00", "HOUR") == "2026012605"
    assert partition_id(None, "DAY") == NULL_PARTITION


def test_partition_bounds_of_month_and_december() -> None:
    """A month partition ends at the next month's start, December at January's."""
    assert partition_bounds("202612", "MONTH") == (
        datetime(2026, 12, 1),
        datetime(2027, 1, 1),
    )
    with pytest.raises(ValueError, match="not a DAY partition id"):
        partition_bounds("2026012601", "DAY")


def test_spec_covers_partitions_overlapping_the_range() -> None:
    """A month overlaps a range inside it; a day outside the range does not."""
    month, day = PartitionSpec("MONTH", "ts", "TIMESTAMP"), PartitionSpec("DAY")

    assert month.covers("202601", date(2026, 1, 5), date(2026, 1, 7))
    assert not day.covers("20260108", date(2026, 1, 5), date(2026, 1, 7))
    assert day.covers("20260107", date(2026, 1, 5), date(2026, 1, 7))
    assert not day.covers(NULL_PARTITION, date(2026, 1, 5), date(2026, 1, 7))


def test_metadata_round_trip_sorts_and_dedupes() -> None:
    """Partition ids go to metadata sorted and once each, and come back."""
    assert encode_partitions(["20260127", "20260126", "20260127"]) == (
        "20260126,20260127"
    )
    assert decode_partitions("20260126,20260127") == ("20260126", "20260127")
    assert decode_partitions(None) is None


def test_split_ndjson_keeps_lines_of_the_wanted_partitions() -> None:
    """An NDJSON shard splits by partition, lines kept byte for byte."""
    data = (
        b'{"id":1,"ts":"2026-01-26T01:00:00.000000Z"}\n'
        b'{"id":2,"ts":"2026-01-27T01:00:00.000000Z"}\n'
        b'{"id":3}\n'
    )
    spec = PartitionSpec("DAY", "ts", "TIMESTAMP")

    parts = split_shard("ndjson", data, spec, keep={"20260127", NULL_PARTITION})

    assert parts == {
        "20260126": b"",
        "20260127": b'{"id":2,"ts":"2026-01-27T01:00:00.000000Z"}\n',
        NULL_PARTITION: b'{"id":3}\n',
    }
    assert shard_partitions("ndjson", data, spec) == set(parts)


def test_split_avro_rewrites_each_partition_with_the_writer_schema() -> None:
    """An Avro shard splits into Avro files that hold each partition's records."""
    schema = {
        "type": "record",
        "name": "r",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        ],
    }
    rows = [{"id": i, "ts": MOMENT + timedelta(hours=i)} for i in range(3)]
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), rows)

    parts = split_shard(
        "avro", buffer.getvalue(), PartitionSpec("DAY", "ts", "TIMESTAMP"), keep=None
    )
    kept = split_shard(
        "avro", buffer.getvalue(), PartitionSpec("DAY", "ts"), keep={"20260127"}
    )

    assert sorted(parts) == ["20260126", "20260127"]
    assert [r["id"] for r in fastavro.reader(io.BytesIO(kept["20260127"]))] == [1, 2]


def test_partition_spec_refuses_a_missing_or_wrong_column() -> None:
    """A partitioning column must exist and be TIMESTAMP, DATE or DATETIME."""
    fields = (SchemaField("id", "INTEGER"), SchemaField("d", "DATE"))

    def table(field: str, kind: str = "DAY") -> TableConfig:
        return TableConfig.model_validate(
            {
                "name": "t",
                "destination": "ds.t",
                "schema": "s.json",
                "time_partitioning": {"field": field, "type": kind},
            }
        )

    with pytest.raises(ConfigError, match="column nope is not in the table's schema"):
        partition_spec(table("nope"), fields)
    with pytest.raises(ConfigError, match="must be one of TIMESTAMP, DATE, DATETIME"):
        partition_spec(table("id"), fields)
    with pytest.raises(ConfigError, match="cannot be HOUR"):
        partition_spec(table("d", "HOUR"), fields)
    assert partition_spec(table("d", "MONTH"), fields) == PartitionSpec(
        "MONTH", "d", "DATE"
    )
