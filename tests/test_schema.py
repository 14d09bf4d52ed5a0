"""Schema parsing, record checks and the NDJSON/Avro/DuckDB encodings of each type."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dropload.errors import ConfigError, RecordError
from dropload.schema import (
    BIGNUMERIC_MAX,
    BIGNUMERIC_MIN,
    MAX_COLUMNS,
    MAX_FIELD_NAME_LENGTH,
    MAX_JSON_NESTING,
    MAX_NESTING_DEPTH,
    MAX_SAFE_JSON_INTEGER,
    NUMERIC_MAX,
    NUMERIC_MIN,
    RecordCodec,
    SchemaField,
    avro_schema_for,
    duckdb_type,
    load_schema_file,
    parse_schema,
)

MARKER = "m4rk3r-4242"
"""A marker put into refused values: it must never show in an error message."""


def field(name: str, field_type: str, mode: str = "NULLABLE") -> dict[str, str]:
    """A field definition as a BigQuery JSON schema spells it."""
    return {"name": name, "type": field_type, "mode": mode}


def codec_for(field_type: str, mode: str = "NULLABLE") -> RecordCodec:
    """A codec for table `t` with a single field `v` of the given type."""
    return RecordCodec("t", parse_schema([field("v", field_type, mode)], source="x"))


def json_value(field_type: str, value: Any) -> Any:
    """The NDJSON encoding of `value` in a field of `field_type`."""
    return codec_for(field_type).to_json_row({"v": value})["v"]


def avro_value(field_type: str, value: Any) -> Any:
    """The Avro row value of `value` in a field of `field_type`."""
    return codec_for(field_type).to_avro_row({"v": value})["v"]


def refusal(codec: RecordCodec, record: Mapping[str, Any]) -> RecordError:
    """The RecordError both encodings raise for `record` (they must agree)."""
    with pytest.raises(RecordError) as json_info:
        codec.to_json_row(record)
    with pytest.raises(RecordError) as avro_info:
        codec.to_avro_row(record)
    assert str(json_info.value) == str(avro_info.value)
    return json_info.value


NESTED_SCHEMA = [
    field("id", "INTEGER", "REQUIRED"),
    field("tags", "STRING", "REPEATED"),
    {
        "name": "payload",
        "type": "RECORD",
        "fields": [
            field("x", "FLOAT", "REQUIRED"),
            field("note", "STRING"),
            {
                "name": "items",
                "type": "RECORD",
                "mode": "REPEATED",
                "fields": [field("sku", "STRING", "REQUIRED"), field("n", "INT64")],
            },
        ],
    },
]


@pytest.fixture
def nested() -> RecordCodec:
    """A codec for a table with a REQUIRED id, REPEATED tags and nested RECORDs."""
    return RecordCodec("shop.orders", parse_schema(NESTED_SCHEMA, source="o.json"))


# --- parse_schema ---------------------------------------------------------------


def test_parse_accepts_list_and_fields_object() -> None:
    """A bare list of fields and {"fields": [...]} give the same schema."""
    fields = [field("a", "STRING"), field("b", "INTEGER", "REQUIRED")]
    assert parse_schema(fields, source="s") == parse_schema(
        {"fields": fields}, source="s"
    )
    assert parse_schema(fields, source="s")[1] == SchemaField(
        "b", "INTEGER", "REQUIRED"
    )


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("INT64", "INTEGER"),
        ("FLOAT64", "FLOAT"),
        ("BOOL", "BOOLEAN"),
        ("DECIMAL", "NUMERIC"),
        ("BIGDECIMAL", "BIGNUMERIC"),
        ("int64", "INTEGER"),
    ],
)
def test_parse_canonicalises_type_aliases(alias: str, canonical: str) -> None:
    """GoogleSQL type names become BigQuery's legacy names."""
    assert parse_schema([field("a", alias)], source="s")[0].field_type == canonical


def test_parse_struct_alias_and_default_mode() -> None:
    """STRUCT means RECORD, and a field without a mode is NULLABLE."""
    parsed = parse_schema(
        [{"name": "r", "type": "struct", "fields": [{"name": "a", "type": "bool"}]}],
        source="s",
    )
    assert parsed[0] == SchemaField(
        "r", "RECORD", "NULLABLE", (SchemaField("a", "BOOLEAN"),)
    )


def test_to_api_repr_round_trips_through_parse() -> None:
    """to_api_repr gives BigQuery's JSON schema, which parses back to equal fields."""
    fields = parse_schema(NESTED_SCHEMA, source="s")
    assert parse_schema([f.to_api_repr() for f in fields], source="s") == fields
    assert fields[2].to_api_repr()["fields"][2]["fields"][1] == {
        "name": "n",
        "type": "INTEGER",
        "mode": "NULLABLE",
    }


def test_parse_ignores_documenting_keys() -> None:
    """description and policyTags, as `bq show --schema` writes them, are accepted."""
    definition = {**field("a", "STRING"), "description": "d", "policyTags": {}}
    assert parse_schema([definition], source="s") == (SchemaField("a", "STRING"),)


@pytest.mark.parametrize(
    "name",
    ["1abc", "a-b", "", "naïve", "x" * (MAX_FIELD_NAME_LENGTH + 1), "_TABLE_x"],
)
def test_parse_refuses_bad_names(name: str) -> None:
    """Names break BigQuery's column rules: the key names the source and field."""
    with pytest.raises(ConfigError) as info:
        parse_schema([field(name, "STRING")], source="f.json")
    assert info.value.key == f"schema f.json: field {name}"


def test_parse_accepts_longest_name() -> None:
    """A name of exactly the maximum length is accepted."""
    name = "a" * MAX_FIELD_NAME_LENGTH
    assert parse_schema([field(name, "STRING")], source="s")[0].name == name


def test_parse_refuses_case_insensitive_duplicates() -> None:
    """Two names differing only in case are refused, naming the nested path."""
    schema = [
        {
            "name": "p",
            "type": "RECORD",
            "fields": [field("a", "INT64"), field("A", "INT64")],
        }
    ]
    with pytest.raises(ConfigError) as info:
        parse_schema(schema, source="f.json")
    assert info.value.key == "schema f.json: field p.A"
    assert "twice" in info.value.problem


def test_parse_names_nested_field_path() -> None:
    """A bad nested field is named by its dotted path after the source."""
    schema = [{"name": "payload", "type": "RECORD", "fields": [field("x", "NOPE")]}]
    with pytest.raises(ConfigError) as info:
        parse_schema(schema, source="flights.schema.json")
    assert info.value.key == "schema flights.schema.json: field payload.x"
    assert "unknown type" in info.value.problem


@pytest.mark.parametrize("fields", [None, [], "nope"])
def test_parse_refuses_record_without_fields(fields: Any) -> None:
    """A RECORD needs a non-empty list of sub-fields."""
    with pytest.raises(ConfigError) as info:
        parse_schema([{"name": "r", "type": "RECORD", "fields": fields}], source="s")
    assert info.value.key == "schema s: field r"


def test_parse_refuses_subfields_on_scalar() -> None:
    """Only RECORD fields may carry sub-fields."""
    with pytest.raises(ConfigError, match="only RECORD"):
        parse_schema(
            [{**field("a", "STRING"), "fields": [field("b", "STRING")]}], source="s"
        )


def test_parse_refuses_bad_mode() -> None:
    """A mode outside NULLABLE, REQUIRED, REPEATED is refused."""
    with pytest.raises(ConfigError, match="mode must be"):
        parse_schema([field("a", "STRING", "OPTIONAL")], source="s")


def test_parse_refuses_parameterised_types_and_unknown_keys() -> None:
    """precision/maxLength are unsupported; a misspelt key is not silently ignored."""
    with pytest.raises(ConfigError, match="parameterised"):
        parse_schema([{**field("a", "NUMERIC"), "precision": "10"}], source="s")
    with pytest.raises(ConfigError, match="unknown key 'mdoe'"):
        parse_schema([{"name": "a", "type": "STRING", "mdoe": "REQUIRED"}], source="s")


@pytest.mark.parametrize("obj", [[], {}, "a", [{"type": "STRING"}], [{"name": "a"}]])
def test_parse_refuses_non_schemas(obj: Any) -> None:
    """Empty schemas, non-lists and fields without name or type are refused."""
    with pytest.raises(ConfigError) as info:
        parse_schema(obj, source="s")
    assert info.value.key.startswith("schema s")


def test_parse_refuses_deep_nesting() -> None:
    """RECORDs nested deeper than BigQuery's limit are refused."""
    schema: list[Any] = [field("leaf", "STRING")]
    for level in range(MAX_NESTING_DEPTH + 1):
        schema = [{"name": f"r{level}", "type": "RECORD", "fields": schema}]
    with pytest.raises(ConfigError, match="nested deeper"):
        parse_schema(schema, source="s")


def test_parse_accepts_nesting_at_the_limit() -> None:
    """RECORDs nested exactly to BigQuery's limit are accepted."""
    schema: list[Any] = [field("leaf", "STRING")]
    for level in range(MAX_NESTING_DEPTH):
        schema = [{"name": f"r{level}", "type": "RECORD", "fields": schema}]
    assert parse_schema(schema, source="s")[0].name == f"r{MAX_NESTING_DEPTH - 1}"


def test_parse_refuses_too_many_columns() -> None:
    """More columns than BigQuery allows are refused."""
    schema = [field(f"c{i}", "STRING") for i in range(MAX_COLUMNS + 1)]
    with pytest.raises(ConfigError, match="columns"):
        parse_schema(schema, source="s")


def test_limits_are_bigquerys() -> None:
    """The schema limits match BigQuery's documented numbers."""
    assert (MAX_FIELD_NAME_LENGTH, MAX_NESTING_DEPTH, MAX_COLUMNS) == (300, 15, 10_000)
    assert (MAX_JSON_NESTING, MAX_SAFE_JSON_INTEGER) == (500, 2**53)
    nines = "99999999999999999999999999999.999999999"
    assert (Decimal("-" + nines), Decimal(nines)) == (NUMERIC_MIN, NUMERIC_MAX)
    big = (
        "5.7896044618658097711785492504343953926634992332820282019728792003956564819967"
    )
    assert Decimal(big + "E+38") == BIGNUMERIC_MAX
    assert Decimal("-" + big[:-1] + "8E+38") == BIGNUMERIC_MIN


def test_load_schema_file_reads_json(tmp_path: Path) -> None:
    """load_schema_file parses a BigQuery JSON schema file."""
    path = tmp_path / "flights.schema.json"
    path.write_text(json.dumps(NESTED_SCHEMA), encoding="utf-8")
    assert load_schema_file(path) == parse_schema(NESTED_SCHEMA, source="x")


def test_load_schema_file_refuses_missing_and_bad_json(tmp_path: Path) -> None:
    """A missing file or broken JSON is a ConfigError naming the file."""
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_schema_file(tmp_path / "absent.json")
    assert info.value.key == f"schema {tmp_path / 'absent.json'}"
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"name": "a",', encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2"):
        load_schema_file(broken)


def test_schema_field_refuses_unknown_type() -> None:
    """SchemaField built by hand must use canonical type and mode names."""
    with pytest.raises(ValueError, match="bad type or mode"):
        SchemaField("a", "INT64")


# --- scalar encodings -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (-17, -17),
        (2**53, 2**53),
        (-(2**53), -(2**53)),
        (2**53 + 1, "9007199254740993"),
        (-(2**53) - 1, "-9007199254740993"),
        (2**63 - 1, "9223372036854775807"),
        (-(2**63), "-9223372036854775808"),
        ("42", 42),
        ("-0042", -42),
        ("9007199254740993", "9007199254740993"),
    ],
)
def test_integer_json(value: Any, expected: Any) -> None:
    """INTEGERs beyond 2^53 become strings; digit strings are accepted."""
    assert json_value("INTEGER", value) == expected
    assert type(json_value("INTEGER", value)) is type(expected)


def test_integer_avro_is_int() -> None:
    """Avro INTEGERs are plain ints, even past 2^53."""
    assert avro_value("INTEGER", "9007199254740993") == 2**53 + 1


@pytest.mark.parametrize("value", [True, 1.0, "1.5", "", "0x10", 2**63, -(2**63) - 1])
def test_integer_refusals(value: Any) -> None:
    """bool, float, non-digit strings and values outside INT64 are refused."""
    error = refusal(codec_for("INTEGER"), {"v": value})
    assert (error.table, error.field) == ("t", "v")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, 1.5),
        (3, 3.0),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_float_json(value: Any, expected: Any) -> None:
    """FLOATs stay numbers; NaN and infinities become BigQuery's strings."""
    assert json_value("FLOAT", value) == expected


@pytest.mark.parametrize("value", [True, "1.5", 10**400, Decimal("1.5")])
def test_float_refusals(value: Any) -> None:
    """bool, str, Decimal and ints too large for a double are refused."""
    assert refusal(codec_for("FLOAT"), {"v": value}).field == "v"


def test_boolean_only_from_bool() -> None:
    """BOOLEAN accepts True and False, not 1 or "true"."""
    assert json_value("BOOLEAN", False) is False
    assert avro_value("BOOLEAN", True) is True
    for value in (1, "true"):
        assert "expected bool" in refusal(codec_for("BOOLEAN"), {"v": value}).problem


def test_string_accepts_text_and_utf8_bytes() -> None:
    """STRING takes str (ASCII or not) and bytes that are strict UTF-8."""
    assert json_value("STRING", "Zürich ✈") == "Zürich ✈"
    assert json_value("STRING", "Zürich".encode()) == "Zürich"
    assert avro_value("STRING", bytearray(b"abc")) == "abc"


def test_string_refuses_surrogateescape_text() -> None:
    """A str holding lone surrogates (from undecodable bytes) is refused."""
    text = (MARKER.encode() + b"\xff").decode("utf-8", errors="surrogateescape")
    error = refusal(codec_for("STRING"), {"v": text})
    assert "not valid UTF-8" in error.problem
    assert MARKER not in str(error)


def test_string_refuses_invalid_utf8_bytes() -> None:
    """bytes that are not UTF-8 are refused for a STRING."""
    error = refusal(codec_for("STRING"), {"v": b"caf\xe9"})
    assert "not valid UTF-8" in error.problem


def test_bytes_json_is_base64() -> None:
    """BYTES from bytes, bytearray or memoryview become standard base64."""
    raw = bytes(range(256))
    expected = base64.b64encode(raw).decode()
    for value in (raw, bytearray(raw), memoryview(raw)):
        assert json_value("BYTES", value) == expected
        assert avro_value("BYTES", value) == raw


def test_bytes_takes_base64_str() -> None:
    """A base64 str (BigQuery's JSON encoding, as `loader stage` reads) is BYTES."""
    assert json_value("BYTES", "aGk=") == "aGk="
    assert avro_value("BYTES", "aGk=") == b"hi"


def test_bytes_refuses_str_that_is_not_base64() -> None:
    """A str that is not base64 is refused for BYTES, saying base64 is expected."""
    assert "base64" in refusal(codec_for("BYTES"), {"v": "not base64!"}).problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 1, 26, 8, 30, tzinfo=UTC), "2026-01-26T08:30:00.000000Z"),
        (datetime(2026, 1, 26, 8, 30), "2026-01-26T08:30:00.000000Z"),
        (
            datetime(2026, 1, 26, 1, 0, 0, 7, tzinfo=timezone(timedelta(hours=-5))),
            "2026-01-26T06:00:00.000007Z",
        ),
        (
            datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2025-12-31T21:30:00.000000Z",
        ),
        (datetime(1, 1, 1), "0001-01-01T00:00:00.000000Z"),
        ("2026-01-26T08:30:00Z", "2026-01-26T08:30:00.000000Z"),
        ("2026-01-26 08:30:00.5+01:00", "2026-01-26T07:30:00.500000Z"),
        ("2026-01-26t08:30:00.123456z", "2026-01-26T08:30:00.123456Z"),
    ],
)
def test_timestamp_json(value: Any, expected: str) -> None:
    """TIMESTAMPs become RFC 3339 in UTC with microseconds and Z."""
    assert json_value("TIMESTAMP", value) == expected


def test_timestamp_avro_is_aware_utc() -> None:
    """Avro TIMESTAMPs are aware datetimes converted to UTC."""
    local = datetime(2026, 1, 26, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    value = avro_value("TIMESTAMP", local)
    assert value == local
    assert value.tzinfo is UTC
    assert avro_value("TIMESTAMP", datetime(2026, 1, 26)).tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-26T08:30:00",
        "2026-02-30T08:30:00Z",
        "2026-01-26T08:30:00.1234567Z",
        "26/01/2026",
        date(2026, 1, 26),
        1769416200,
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_timestamp_refusals(value: Any) -> None:
    """Offset-less, impossible, over-precise, non-datetime and out-of-range values."""
    assert refusal(codec_for("TIMESTAMP"), {"v": value}).field == "v"


def test_date_encodings() -> None:
    """DATE from date or an ISO date string; Avro keeps a date object."""
    assert json_value("DATE", date(2026, 1, 26)) == "2026-01-26"
    assert json_value("DATE", "0001-12-31") == "0001-12-31"
    assert avro_value("DATE", "2026-01-26") == date(2026, 1, 26)


@pytest.mark.parametrize(
    "value", [datetime(2026, 1, 26), "2026-1-26", "20260126", "2026-02-29"]
)
def test_date_refusals(value: Any) -> None:
    """A datetime, non-canonical and impossible date strings are refused."""
    assert refusal(codec_for("DATE"), {"v": value}).field == "v"


def test_time_encodings() -> None:
    """TIME from time or a string; NDJSON always carries microseconds."""
    assert json_value("TIME", time(8, 30)) == "08:30:00.000000"
    assert json_value("TIME", "23:59:59.5") == "23:59:59.500000"
    assert avro_value("TIME", "08:30:00.000001") == time(8, 30, 0, 1)


@pytest.mark.parametrize("value", [time(8, 30, tzinfo=UTC), "25:00:00", "8:30:00", 830])
def test_time_refusals(value: Any) -> None:
    """Aware times, impossible or non-canonical strings and numbers are refused."""
    assert refusal(codec_for("TIME"), {"v": value}).field == "v"


def test_datetime_encodings() -> None:
    """DATETIME from a naive datetime or string; Avro uses the same text."""
    assert json_value("DATETIME", datetime(2026, 1, 26, 8, 30)) == (
        "2026-01-26T08:30:00.000000"
    )
    assert avro_value("DATETIME", "2026-01-26 08:30:00.25") == (
        "2026-01-26T08:30:00.250000"
    )


@pytest.mark.parametrize(
    "value",
    [datetime(2026, 1, 26, tzinfo=UTC), "2026-01-26T08:30:00Z", date(2026, 1, 26)],
)
def test_datetime_refusals(value: Any) -> None:
    """DATETIME refuses time zones and plain dates."""
    assert refusal(codec_for("DATETIME"), {"v": value}).field == "v"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            Decimal("12345678901234567890123456789.123456789"),
            "12345678901234567890123456789.123456789",
        ),
        (Decimal("0.0000000005"), "0.000000001"),
        (Decimal("-0.0000000005"), "-0.000000001"),
        (Decimal("0.0000000004999"), "0.000000000"),
        (7, "7"),
        (0.1, "0.1"),
        ("-3.25", "-3.25"),
        ("1e3", "1000"),
        (Decimal("1.50"), "1.50"),
    ],
)
def test_numeric_json(value: Any, expected: str) -> None:
    """NUMERIC keeps 38 digits exactly, rounds half away from zero past 9 decimals."""
    assert json_value("NUMERIC", value) == expected


def test_numeric_avro_fits_decimal_38_9() -> None:
    """Avro NUMERIC values are Decimals with at most 9 fractional digits."""
    assert avro_value("NUMERIC", "1.0000000005") == Decimal("1.000000001")
    assert avro_value("NUMERIC", 2.5) == Decimal("2.5")


@pytest.mark.parametrize(
    "value",
    [Decimal("NaN"), Decimal("1e29"), "-1e29", float("inf"), "1,5", True, b"1"],
)
def test_numeric_refusals(value: Any) -> None:
    """NaN, out-of-range, malformed and non-numeric values are refused."""
    assert refusal(codec_for("NUMERIC"), {"v": value}).field == "v"


def test_bignumeric_range_and_scale() -> None:
    """BIGNUMERIC keeps 38 decimals and accepts exactly its 256-bit range."""
    tiny = "0." + "0" * 37 + "1"
    assert json_value("BIGNUMERIC", tiny) == tiny
    assert avro_value("BIGNUMERIC", BIGNUMERIC_MAX) == BIGNUMERIC_MAX
    assert avro_value("BIGNUMERIC", BIGNUMERIC_MIN) == BIGNUMERIC_MIN
    exact, step = Context(prec=100), Decimal("1e-38")
    for value in (
        exact.add(BIGNUMERIC_MAX, step),
        exact.subtract(BIGNUMERIC_MIN, step),
    ):
        assert "range" in refusal(codec_for("BIGNUMERIC"), {"v": value}).problem


def test_json_column_keeps_raw_value() -> None:
    """NDJSON carries a JSON column's value as raw JSON; Avro as its JSON text."""
    value = {"a": [1, 2.5, None, True], "b": {"c": "é"}, "t": (1, 2)}
    assert json_value("JSON", value) == {
        "a": [1, 2.5, None, True],
        "b": {"c": "é"},
        "t": [1, 2],
    }
    assert json.loads(avro_value("JSON", value)) == json_value("JSON", value)
    assert json_value("JSON", '{"a": 1}') == '{"a": 1}'
    assert avro_value("JSON", "x") == '"x"'


@pytest.mark.parametrize(
    "value",
    [
        {"a": float("nan")},
        {1: "a"},
        {"a": {1, 2}},
        [2**64],
        datetime(2026, 1, 26),
    ],
)
def test_json_refusals(value: Any) -> None:
    """NaN, non-str keys, sets, ints beyond 64 bits and non-JSON types are refused."""
    assert refusal(codec_for("JSON"), {"v": value}).field == "v"


def test_json_refuses_deep_nesting() -> None:
    """A JSON value nested deeper than BigQuery's limit is refused."""
    value: Any = 1
    for _ in range(MAX_JSON_NESTING + 1):
        value = [value]
    assert "deeper" in refusal(codec_for("JSON"), {"v": value}).problem


def test_geography_takes_wkt() -> None:
    """GEOGRAPHY takes WKT text and refuses other strings and types."""
    assert json_value("GEOGRAPHY", "POINT(-73.78 40.64)") == "POINT(-73.78 40.64)"
    assert avro_value("GEOGRAPHY", " multipolygon EMPTY") == " multipolygon EMPTY"
    for value in ("JFK", b"POINT(1 2)"):
        assert refusal(codec_for("GEOGRAPHY"), {"v": value}).field == "v"


# --- records, modes and refusals --------------------------------------------------


def test_nested_record_json(nested: RecordCodec) -> None:
    """RECORD and REPEATED values convert recursively; None values are left out."""
    record = {
        "id": 1,
        "tags": ("a", "b"),
        "payload": {"x": 2, "note": None, "items": [{"sku": "k", "n": "5"}]},
    }
    assert nested.to_json_row(record) == {
        "id": 1,
        "tags": ["a", "b"],
        "payload": {"x": 2.0, "items": [{"sku": "k", "n": 5}]},
    }


def test_nested_record_avro_fills_every_field(nested: RecordCodec) -> None:
    """Avro rows hold every field: None for NULLABLE, [] for REPEATED."""
    assert nested.to_avro_row({"id": 1}) == {"id": 1, "tags": [], "payload": None}
    row = nested.to_avro_row({"id": 1, "tags": None, "payload": {"x": 1.5}})
    assert row["payload"] == {"x": 1.5, "note": None, "items": []}
    assert row["tags"] == []


def test_none_and_missing_are_both_left_out(nested: RecordCodec) -> None:
    """In NDJSON a None value and a missing NULLABLE field encode the same way."""
    assert nested.to_json_row({"id": 3, "payload": None, "tags": None}) == {"id": 3}
    assert nested.to_json_row({"id": 3}) == {"id": 3}


@pytest.mark.parametrize(
    ("record", "path", "words"),
    [
        ({}, "id", "REQUIRED field is missing"),
        ({"id": None}, "id", "REQUIRED field is None"),
        ({"id": 1, "zz": 1}, "zz", "not in the table's schema"),
        ({"id": 1, "tags": "ab"}, "tags", "expected a list or tuple, got str"),
        ({"id": 1, "tags": ["a", None]}, "tags[1]", "cannot hold None"),
        ({"id": 1, "tags": ["a", 5]}, "tags[1]", "expected str, got int"),
        ({"id": 1, "payload": []}, "payload", "expected a mapping"),
        ({"id": 1, "payload": {}}, "payload.x", "REQUIRED field is missing"),
        ({"id": 1, "payload": {"x": 1, "q": 1}}, "payload.q", "not in the table"),
        (
            {"id": 1, "payload": {"x": 1, "items": [{"sku": "a"}, {"n": 1}]}},
            "payload.items[1].sku",
            "REQUIRED field is missing",
        ),
        (
            {"id": 1, "payload": {"x": 1, "items": [{"sku": b"\xff"}]}},
            "payload.items[0].sku",
            "not valid UTF-8",
        ),
    ],
)
def test_refusal_names_table_and_field_path(
    nested: RecordCodec, record: dict[str, Any], path: str, words: str
) -> None:
    """Every refusal names the table and the dotted/indexed field path."""
    error = refusal(nested, record)
    assert (error.table, error.field) == ("shop.orders", path)
    assert words in error.problem
    assert str(error) == f"table shop.orders: field {path}: {error.problem}"


def test_record_that_is_not_a_mapping(nested: RecordCodec) -> None:
    """A record that is not a mapping is refused as a whole."""
    error = refusal(nested, [("id", 1)])  # type: ignore[arg-type]
    assert error.field == "<record>"
    assert "got list" in error.problem


def test_keys_match_case_insensitively(nested: RecordCodec) -> None:
    """Keys differing from the schema only in case take the schema's spelling."""
    assert nested.to_json_row({"ID": 5, "Tags": []}) == {"id": 5, "tags": []}
    error = refusal(nested, {"id": 5, "Id": 6})
    assert "more than once" in error.problem


@pytest.mark.parametrize(
    ("field_type", "value"),
    [
        ("INTEGER", MARKER),
        ("INTEGER", 2**63 + 4242),
        ("FLOAT", MARKER),
        ("BOOLEAN", MARKER),
        ("STRING", 4242.4242),
        ("BYTES", MARKER),
        ("TIMESTAMP", MARKER),
        ("TIMESTAMP", f"2026-01-26T08:30:00 {MARKER}"),
        ("DATE", MARKER),
        ("TIME", MARKER),
        ("DATETIME", MARKER),
        ("NUMERIC", MARKER),
        ("NUMERIC", Decimal("4242e40")),
        ("BIGNUMERIC", MARKER),
        ("JSON", {MARKER: {4242}}),
        ("GEOGRAPHY", MARKER),
        ("RECORD", MARKER),
    ],
)
def test_refusals_never_show_the_value(field_type: str, value: Any) -> None:
    """No refusal message carries the value, and no exception chain holds it."""
    definition: dict[str, Any] = field("v", field_type)
    if field_type == "RECORD":
        definition["fields"] = [field("a", "STRING")]
    codec = RecordCodec("t", parse_schema([definition], source="s"))
    error = refusal(codec, {"v": value})
    assert MARKER not in str(error)
    assert "4242" not in str(error)
    assert error.__context__ is None
    assert error.__cause__ is None
    assert (
        "expected" in error.problem
        or "got a str" in error.problem
        or "range" in error.problem
    )


# --- Avro schema and DuckDB types -------------------------------------------------


ALL_TYPES = [
    field("s", "STRING", "REQUIRED"),
    field("b", "BYTES"),
    field("i", "INTEGER"),
    field("f", "FLOAT"),
    field("n", "NUMERIC"),
    field("bn", "BIGNUMERIC"),
    field("ok", "BOOLEAN"),
    field("ts", "TIMESTAMP"),
    field("d", "DATE"),
    field("t", "TIME"),
    field("dt", "DATETIME"),
    field("j", "JSON"),
    field("g", "GEOGRAPHY"),
    field("r", "INTEGER", "REPEATED"),
    {"name": "rec", "type": "RECORD", "fields": [field("a", "STRING")]},
]


def test_avro_schema_types() -> None:
    """The Avro schema uses the logical types BigQuery reads for each column type."""
    schema = avro_schema_for("ds.all", parse_schema(ALL_TYPES, source="s"))
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert schema["name"] == "ds_all"
    assert types["s"] == "string"
    assert types["ts"] == ["null", {"type": "long", "logicalType": "timestamp-micros"}]
    assert types["d"][1] == {"type": "int", "logicalType": "date"}
    assert types["t"][1] == {"type": "long", "logicalType": "time-micros"}
    assert types["dt"][1] == {"type": "string", "logicalType": "datetime"}
    assert types["n"][1] == {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 38,
        "scale": 9,
    }
    assert (types["bn"][1]["precision"], types["bn"][1]["scale"]) == (77, 38)
    assert types["j"][1] == {"type": "string", "sqlType": "JSON"}
    assert types["r"] == {"type": "array", "items": "long"}
    assert types["rec"][1]["name"] == "ds_all_rec"
    assert all(f.get("default", None) is None for f in schema["fields"])


def test_avro_record_names_are_unique() -> None:
    """Nested record type names never collide, even when paths join alike."""
    schema = parse_schema(
        [
            {
                "name": "a_b",
                "type": "RECORD",
                "fields": [
                    {"name": "c", "type": "RECORD", "fields": [field("x", "STRING")]}
                ],
            },
            {
                "name": "a",
                "type": "RECORD",
                "fields": [
                    {"name": "b_c", "type": "RECORD", "fields": [field("x", "STRING")]}
                ],
            },
        ],
        source="s",
    )
    names: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "record":
                names.append(node["name"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(avro_schema_for("1t", schema))
    assert len(names) == len(set(names)) == 5
    assert names[0] == "_1t"


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (field("a", "STRING"), "VARCHAR"),
        (field("a", "BYTES"), "BLOB"),
        (field("a", "INTEGER"), "BIGINT"),
        (field("a", "FLOAT"), "DOUBLE"),
        (field("a", "NUMERIC"), "DECIMAL(38,9)"),
        (field("a", "BIGNUMERIC"), "VARCHAR"),
        (field("a", "BOOLEAN"), "BOOLEAN"),
        (field("a", "TIMESTAMP"), "TIMESTAMPTZ"),
        (field("a", "DATE"), "DATE"),
        (field("a", "TIME"), "TIME"),
        (field("a", "DATETIME"), "TIMESTAMP"),
        (field("a", "JSON"), "JSON"),
        (field("a", "GEOGRAPHY"), "VARCHAR"),
        (field("a", "INTEGER", "REPEATED"), "BIGINT[]"),
        (
            {
                "name": "a",
                "type": "RECORD",
                "mode": "REPEATED",
                "fields": [field("x", "DATE"), field("y", "STRING", "REPEATED")],
            },
            'STRUCT("x" DATE, "y" VARCHAR[])[]',
        ),
    ],
)
def test_duckdb_type(definition: dict[str, Any], expected: str) -> None:
    """Each BigQuery type maps to its DuckDB column type."""
    assert duckdb_type(parse_schema([definition], source="s")[0]) == expected


def test_duckdb_accepts_every_type() -> None:
    """DuckDB creates a table with a column of every type duckdb_type gives."""
    fields = parse_schema(ALL_TYPES, source="s")
    columns = ", ".join(f'"{f.name}" {duckdb_type(f)}' for f in fields)
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE every_type ({columns})")
        described = con.execute("DESCRIBE every_type").fetchall()
    assert [row[0] for row in described] == [f.name for f in fields]
