"""Shard encodings: NDJSON lines and Avro containers, written and read back."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from dropload import encoding
from dropload.encoding import (
    AVRO_CODECS,
    AVRO_SUFFIX,
    FORMATS,
    NDJSON_SUFFIX,
    decode_shard,
    encode_avro,
    encode_ndjson,
    ndjson_line,
    suffix_for,
)
from dropload.schema import BIGNUMERIC_MAX, RecordCodec, parse_schema

SCHEMA = [
    {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "name", "type": "STRING"},
    {"name": "raw", "type": "BYTES"},
    {"name": "score", "type": "FLOAT"},
    {"name": "price", "type": "NUMERIC"},
    {"name": "huge", "type": "BIGNUMERIC"},
    {"name": "ok", "type": "BOOLEAN"},
    {"name": "at", "type": "TIMESTAMP"},
    {"name": "day", "type": "DATE"},
    {"name": "clock", "type": "TIME"},
    {"name": "civil", "type": "DATETIME"},
    {"name": "doc", "type": "JSON"},
    {"name": "where", "type": "GEOGRAPHY"},
    {"name": "tags", "type": "STRING", "mode": "REPEATED"},
    {
        "name": "legs",
        "type": "RECORD",
        "mode": "REPEATED",
        "fields": [
            {"name": "origin", "type": "STRING", "mode": "REQUIRED"},
            {"name": "meta", "type": "JSON"},
            {"name": "when", "type": "TIMESTAMP"},
        ],
    },
]

RECORDS: list[dict[str, Any]] = [
    {
        "id": 2**53 + 1,
        "name": 'Zürich ✈ "quoted"\nline',
        "raw": b"\x00\xff\x10",
        "score": 0.1,
        "price": Decimal("12345678901234567890123456789.123456789"),
        "huge": BIGNUMERIC_MAX,
        "ok": True,
        "at": datetime(
            2013, 1, 1, 5, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5))
        ),
        "day": date(2013, 1, 1),
        "clock": time(23, 59, 59, 999999),
        "civil": datetime(2013, 1, 1, 5, 30),
        "doc": {"k": [1, 2.5, None, "x"], "nested": {"deep": True}},
        "where": "POINT(-73.78 40.64)",
        "tags": ["a", "b"],
        "legs": [
            {"origin": "JFK", "meta": [1, {"a": None}], "when": "2013-01-01T10:00:00Z"},
            {"origin": "LGA"},
        ],
    },
    {"id": -1, "score": float("nan")},
]


@pytest.fixture
def codec() -> RecordCodec:
    """A codec for a table using every BigQuery type."""
    return RecordCodec("ds.every_type", parse_schema(SCHEMA, source="test"))


def test_formats_and_suffixes() -> None:
    """Each shard format has its file suffix; others are refused."""
    assert FORMATS == ("ndjson", "avro")
    assert [suffix_for(fmt) for fmt in FORMATS] == [NDJSON_SUFFIX, AVRO_SUFFIX]
    assert (NDJSON_SUFFIX, AVRO_SUFFIX) == (".ndjson", ".avro")
    with pytest.raises(ValueError, match="unknown shard format 'csv'"):
        suffix_for("csv")


def test_ndjson_line_is_compact_utf8_with_newline() -> None:
    """A line is compact JSON, raw UTF-8 (not \\u escapes), ending in one newline."""
    line = ndjson_line({"a": 1, "b": "é ✈", "c": [None, True]})
    assert line == '{"a":1,"b":"é ✈","c":[null,true]}\n'.encode()
    assert line.count(b"\n") == 1


def test_json_fallback_writes_the_same_bytes(codec: RecordCodec) -> None:
    """The standard-library encoder, used without orjson, gives identical lines."""
    for record in RECORDS:
        row = codec.to_json_row(record)
        assert encoding._json_line(row) == ndjson_line(row)


def test_encode_ndjson_joins_lines(codec: RecordCodec) -> None:
    """An NDJSON shard is the rows' lines in order; no rows give no bytes."""
    rows = [codec.to_json_row(r) for r in RECORDS]
    data = encode_ndjson(rows)
    assert data == b"".join(ndjson_line(row) for row in rows)
    assert data.count(b"\n") == len(rows)
    assert encode_ndjson([]) == b""


def test_ndjson_round_trip(codec: RecordCodec) -> None:
    """NDJSON rows decode to exactly the rows that were encoded."""
    rows = [codec.to_json_row(r) for r in RECORDS]
    decoded = list(decode_shard("ndjson", encode_ndjson(rows)))
    assert decoded == rows
    assert decoded[0]["id"] == "9007199254740993"
    assert decoded[0]["at"] == "2013-01-01T10:00:00.123456Z"
    assert decoded[0]["doc"] == {"k": [1, 2.5, None, "x"], "nested": {"deep": True}}
    assert decoded[1] == {"id": -1, "score": "NaN"}


def test_ndjson_decode_names_bad_line() -> None:
    """Broken JSON is a ValueError naming its line, without the line's text."""
    data = b'{"a": 1}\n{"a": "m4rk3r\n{"a": 3}\n'
    rows = decode_shard("ndjson", data)
    assert next(rows) == {"a": 1}
    with pytest.raises(ValueError, match="NDJSON line 2: not valid JSON") as info:
        next(rows)
    assert "m4rk3r" not in str(info.value)


def test_ndjson_decode_refuses_non_objects() -> None:
    """A line holding valid JSON that is not an object is refused with its number."""
    with pytest.raises(ValueError, match="NDJSON line 3: expected a JSON object, got"):
        list(decode_shard("ndjson", b'{"a": 1}\n\n[1, 2]\n'))


def test_ndjson_decode_skips_blank_lines_and_crlf() -> None:
    """Blank lines are skipped and CRLF line ends are read."""
    data = b'{"a": 1}\r\n\r\n{"a": 2}'
    assert list(decode_shard("ndjson", data)) == [{"a": 1}, {"a": 2}]


def test_avro_round_trip_with_logical_types(codec: RecordCodec) -> None:
    """Avro rows read back through fastavro with BigQuery's logical types."""
    rows = [codec.to_avro_row(r) for r in RECORDS]
    decoded = list(decode_shard("avro", encode_avro(codec.avro_schema, rows)))
    first = decoded[0]
    assert first["id"] == 2**53 + 1
    assert first["at"] == datetime(2013, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert first["at"].utcoffset() == timedelta(0)
    assert (first["day"], first["clock"]) == (
        date(2013, 1, 1),
        time(23, 59, 59, 999999),
    )
    assert first["civil"] == "2013-01-01T05:30:00.000000"
    assert first["price"] == Decimal("12345678901234567890123456789.123456789")
    assert first["huge"] == BIGNUMERIC_MAX
    assert first["raw"] == b"\x00\xff\x10"
    assert first["doc"] == {"k": [1, 2.5, None, "x"], "nested": {"deep": True}}
    assert first["legs"][0]["meta"] == [1, {"a": None}]
    assert first["legs"][1] == {"origin": "LGA", "meta": None, "when": None}
    assert decoded[1]["tags"] == []
    assert decoded[1]["score"] != decoded[1]["score"]


def test_avro_rows_convert_like_the_originals(codec: RecordCodec) -> None:
    """Rows read from an Avro shard give the same NDJSON rows as the records did."""
    rows = [codec.to_avro_row(r) for r in RECORDS]
    decoded = decode_shard("avro", encode_avro(codec.avro_schema, rows))
    expected = [codec.to_json_row(r) for r in RECORDS]
    got = [codec.to_json_row(row) for row in decoded]
    expected[1] = {**expected[1], "tags": [], "legs": []}  # Avro has no "missing"
    assert got == expected


def test_avro_file_carries_bigquery_annotations(codec: RecordCodec) -> None:
    """The container's writer schema keeps sqlType and the datetime logical type."""
    data = encode_avro(codec.avro_schema, [codec.to_avro_row(RECORDS[1])])
    written = json.loads(fastavro.reader(io.BytesIO(data)).metadata["avro.schema"])
    types = {f["name"]: f["type"] for f in written["fields"]}
    assert types["doc"][1] == {"type": "string", "sqlType": "JSON"}
    assert types["civil"][1] == {"type": "string", "logicalType": "datetime"}


@pytest.mark.parametrize("codec_name", ["null", "deflate"])
def test_avro_codecs(codec: RecordCodec, codec_name: str) -> None:
    """Shards written with each codec name it in the header and read back."""
    rows = [codec.to_avro_row(RECORDS[1])] * 50
    data = encode_avro(codec.avro_schema, rows, codec=codec_name)
    assert fastavro.reader(io.BytesIO(data)).codec == codec_name
    assert len(list(decode_shard("avro", data))) == 50


def test_avro_refuses_unknown_codec(codec: RecordCodec) -> None:
    """Codecs BigQuery cannot read are refused before writing."""
    assert "zstandard" not in AVRO_CODECS
    with pytest.raises(ValueError, match="unknown Avro codec"):
        encode_avro(codec.avro_schema, [], codec="zstandard")


def test_avro_empty_shard_reads_as_no_rows(codec: RecordCodec) -> None:
    """An Avro shard with no rows is still a valid container."""
    assert list(decode_shard("avro", encode_avro(codec.avro_schema, []))) == []


def test_avro_without_json_fields_is_read_as_is() -> None:
    """Shards from a schema with no JSON column come back unchanged."""
    plain = RecordCodec(
        "t", parse_schema([{"name": "a", "type": "STRING"}], source="s")
    )
    data = encode_avro(plain.avro_schema, [{"a": "x"}, {"a": None}])
    assert list(decode_shard("avro", data)) == [{"a": "x"}, {"a": None}]


def test_decode_refuses_garbage_and_unknown_format() -> None:
    """Bytes that are not an Avro container and unknown formats are ValueErrors."""
    with pytest.raises(ValueError, match="not an Avro container"):
        list(decode_shard("avro", b"definitely not avro"))
    with pytest.raises(ValueError, match="unknown shard format"):
        decode_shard("parquet", b"")
