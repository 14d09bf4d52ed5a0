"""A table's BigQuery schema, and the codec that checks records against it.

`RecordCodec` runs on every `append`, so each field's converter is picked once.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, TypeVar

from dropload.errors import ConfigError, RecordError

try:
    from orjson import OPT_NAIVE_UTC, OPT_UTC_Z
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - orjson is a runtime dependency
    _orjson_dumps = None  # type: ignore[assignment]
    OPT_NAIVE_UTC = OPT_UTC_Z = 0

_ORJSON_UTC = OPT_NAIVE_UTC | OPT_UTC_Z

FIELD_TYPES = (
    "STRING",
    "BYTES",
    "INTEGER",
    "FLOAT",
    "NUMERIC",
    "BIGNUMERIC",
    "BOOLEAN",
    "TIMESTAMP",
    "DATE",
    "TIME",
    "DATETIME",
    "RECORD",
    "JSON",
    "GEOGRAPHY",
)
"""BigQuery's legacy type names, the spelling `to_api_repr` gives back."""

TYPE_ALIASES = {
    "INT64": "INTEGER",
    "FLOAT64": "FLOAT",
    "BOOL": "BOOLEAN",
    "STRUCT": "RECORD",
    "DECIMAL": "NUMERIC",
    "BIGDECIMAL": "BIGNUMERIC",
}
"""GoogleSQL type names that BigQuery accepts for the legacy ones."""

MODES = ("NULLABLE", "REQUIRED", "REPEATED")

MAX_FIELD_NAME_LENGTH = 300
"""BigQuery column names are at most 300 characters."""

MAX_NESTING_DEPTH = 15
"""BigQuery allows RECORD fields nested at most 15 levels deep."""

MAX_COLUMNS = 10_000
"""BigQuery tables have at most 10,000 columns, nested ones included."""

MAX_JSON_NESTING = 500
"""BigQuery's JSON type nests at most 500 levels."""

MAX_SAFE_JSON_INTEGER = 2**53
"""Larger INTEGERs go to NDJSON as strings: JSON readers may parse doubles."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

NUMERIC_MIN = Decimal("-99999999999999999999999999999.999999999")
NUMERIC_MAX = Decimal("99999999999999999999999999999.999999999")
"""NUMERIC is precision 38, scale 9."""

BIGNUMERIC_MIN = Decimal(-(2**255)).scaleb(-38, Context(prec=100))
BIGNUMERIC_MAX = Decimal(2**255 - 1).scaleb(-38, Context(prec=100))
"""BIGNUMERIC is a 256-bit integer scaled by 10^-38 (precision 76.76, scale 38)."""

RESERVED_PREFIXES = (
    "_table_",
    "_file_",
    "_partition",
    "_row_timestamp",
    "__root__",
    "_colidentifier",
)
"""Column name prefixes BigQuery keeps for itself (compared case-insensitively)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_DOCUMENTING_KEYS = frozenset(
    {"description", "policyTags", "defaultValueExpression", "collation"}
    | {"roundingMode", "categories", "dataPolicies"}
)
_PARAMETER_KEYS = frozenset({"precision", "scale", "maxLength", "rangeElementType"})
_STRUCTURE_KEYS = frozenset({"name", "type", "mode", "fields"})


@dataclass(frozen=True, slots=True)
class SchemaField:
    """One column of a BigQuery table schema, with canonical type and mode names.

    Raises ValueError for a type or mode outside `FIELD_TYPES` and `MODES`.
    """

    name: str
    field_type: str
    mode: str = "NULLABLE"
    fields: tuple[SchemaField, ...] = ()

    def __post_init__(self) -> None:
        if self.field_type not in FIELD_TYPES or self.mode not in MODES:
            raise ValueError(f"field {self.name}: bad type or mode; see parse_schema")

    def to_api_repr(self) -> dict[str, Any]:
        """This field as BigQuery's JSON schema gives it (`TableFieldSchema`)."""
        repr_: dict[str, Any] = {
            "name": self.name,
            "type": self.field_type,
            "mode": self.mode,
        }
        if self.fields:
            repr_["fields"] = [sub.to_api_repr() for sub in self.fields]
        return repr_


def parse_schema(obj: Any, *, source: str) -> tuple[SchemaField, ...]:
    """Fields of a BigQuery JSON schema: a list of fields or `{"fields": [...]}`.

    Raises ConfigError whose key names the source and the field path.
    """
    key = f"schema {source}"
    if isinstance(obj, Mapping) and "fields" in obj and "name" not in obj:
        obj = obj["fields"]
    if not isinstance(obj, list) or not obj:
        raise ConfigError(key, 'expected a non-empty list of fields or {"fields": []}')

    fields = _parse_fields(obj, key, "", 1)
    if _count_fields(fields) > MAX_COLUMNS:
        raise ConfigError(key, f"more than {MAX_COLUMNS} columns; BigQuery refuses it")
    return fields


def load_schema_file(path: str | os.PathLike[str]) -> tuple[SchemaField, ...]:
    """Fields of the BigQuery JSON schema file at `path`.

    Raises ConfigError when the file is unreadable, not JSON or not a schema.
    """
    source = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as file:
            obj = json.load(file)
    except OSError as exc:
        raise ConfigError(f"schema {source}", f"cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = (
            f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        )
        raise ConfigError(f"schema {source}", f"not UTF-8 JSON{where}") from None
    return parse_schema(obj, source=source)


def _parse_fields(
    items: list[Any], key: str, prefix: str, depth: int
) -> tuple[SchemaField, ...]:
    fields = tuple(
        _parse_field(item, key, f"{prefix}[{i}]", prefix, depth)
        for i, item in enumerate(items)
    )
    seen: set[str] = set()
    for field in fields:
        if field.name.lower() in seen:
            problem = "appears twice (names are case-insensitive); rename one"
            raise ConfigError(f"{key}: field {prefix}{field.name}", problem)
        seen.add(field.name.lower())
    return fields


def _parse_field(
    item: Any, key: str, position: str, prefix: str, depth: int
) -> SchemaField:
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise ConfigError(f"{key}: field {position}", "expected an object with a name")
    path = prefix + item["name"]
    where = f"{key}: field {path}"
    _check_name(item["name"], where)
    _check_keys(item, where)

    field_type = _field_type(item.get("type"), where)
    mode = _mode(item.get("mode"), where)
    subfields = item.get("fields") or []
    if field_type != "RECORD":
        if subfields:
            raise ConfigError(
                where, f"only RECORD fields have sub-fields, not {field_type}"
            )
        return SchemaField(item["name"], field_type, mode)

    if not isinstance(subfields, list) or not subfields:
        raise ConfigError(where, "a RECORD field needs a non-empty list of fields")
    if depth > MAX_NESTING_DEPTH:
        raise ConfigError(
            where, f"RECORD nested deeper than {MAX_NESTING_DEPTH} levels"
        )
    sub = _parse_fields(subfields, key, path + ".", depth + 1)
    return SchemaField(item["name"], field_type, mode, sub)


def _check_name(name: str, where: str) -> None:
    if not _NAME.fullmatch(name):
        problem = "a name is letters, digits and underscores, not starting with a digit"
        raise ConfigError(where, problem)
    if len(name) > MAX_FIELD_NAME_LENGTH:
        raise ConfigError(where, f"name longer than {MAX_FIELD_NAME_LENGTH} characters")
    if name.lower().startswith(RESERVED_PREFIXES):
        raise ConfigError(where, "name starts with a prefix BigQuery reserves")


def _check_keys(item: Mapping[str, Any], where: str) -> None:
    for name in item:
        if name in _PARAMETER_KEYS:
            problem = f"parameterised types ({name}) are not supported; remove the key"
            raise ConfigError(where, problem)
        if name not in _STRUCTURE_KEYS and name not in _DOCUMENTING_KEYS:
            raise ConfigError(where, f"unknown key {name!r} in the field definition")


def _field_type(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(where, "needs a type, such as STRING or INTEGER")
    name = value.upper()
    name = TYPE_ALIASES.get(name, name)
    if name not in FIELD_TYPES:
        raise ConfigError(
            where, f"unknown type {value!r}; use one of {', '.join(FIELD_TYPES)}"
        )
    return name


def _mode(value: Any, where: str) -> str:
    if value is None:
        return "NULLABLE"
    name = value.upper() if isinstance(value, str) else ""
    if name not in MODES:
        raise ConfigError(where, f"mode must be one of {', '.join(MODES)}")
    return name


def _count_fields(fields: Iterable[SchemaField]) -> int:
    return sum(1 + _count_fields(field.fields) for field in fields)


class RecordCodec:
    """Checks records against one table's fields and converts them for a shard.

    Each field's converter is chosen once here; `to_json_row` and `to_avro_row`
    only run them. Messages of the RecordError they raise never hold values.
    """

    def __init__(self, table: str, fields: Sequence[SchemaField]) -> None:
        self.table = table
        self.fields = tuple(fields)
        self.avro_schema: dict[str, Any] = avro_schema_for(table, self.fields)
        self._json_row = _row_converter(self.fields, avro=False)
        self._avro_row = _row_converter(self.fields, avro=True)

    def to_json_row(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record in BigQuery's NDJSON encoding; None values are left out.

        Raises RecordError naming the table and the field path.
        """
        try:
            return self._json_row(record)  # type: ignore[no-any-return]
        except _Refusal as exc:
            refusal = exc
        raise RecordError(self.table, refusal.field_path(), refusal.problem)

    def to_avro_row(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record as fastavro writes it for `avro_schema`; every field present.

        Raises RecordError naming the table and the field path.
        """
        try:
            return self._avro_row(record)  # type: ignore[no-any-return]
        except _Refusal as exc:
            refusal = exc
        raise RecordError(self.table, refusal.field_path(), refusal.problem)


class _Refusal(Exception):
    """A value does not fit its field; `path` grows from the field outwards."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []

    def field_path(self) -> str:
        text = ""
        for part in reversed(self.path):
            text += part if part.startswith("[") or not text else "." + part
        return text or "<record>"


_Converter = Callable[[Any], Any]
_T = TypeVar("_T")


def _type_name(value: object) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _wrong(expected: str, value: object, advice: str) -> _Refusal:
    return _Refusal(f"expected {expected}, got {_type_name(value)}; {advice}")


def _key_text(key: object) -> str:
    if isinstance(key, str) and len(key) <= MAX_FIELD_NAME_LENGTH:
        return key
    return f"<{_type_name(key)} key>"


def _row_converter(fields: Sequence[SchemaField], *, avro: bool) -> _Converter:
    """One closure that checks and converts a whole record (or RECORD value)."""
    convs = {f.name: _field_converter(f, avro=avro) for f in fields}
    required = frozenset(f.name for f in fields if f.mode == "REQUIRED")
    repeated = tuple(f.name for f in fields if avro and f.mode == "REPEATED")
    template: dict[str, Any] = dict.fromkeys(convs) if avro else {}
    lowered = {name.lower(): name for name in convs}

    def convert(record: Any) -> dict[str, Any]:
        if type(record) is not dict and not isinstance(record, Mapping):
            raise _wrong("a mapping of field names to values", record, "pass a dict")
        out = template.copy()
        key: Any = None
        try:
            for key, value in record.items():
                conv = convs.get(key)
                if conv is None:
                    key = _resolve_key(lowered, key, record)
                    conv = convs[key]
                if value is not None:
                    out[key] = conv(value)
                elif key in required:
                    raise _Refusal("REQUIRED field is None; give it a value")
        except _Refusal as exc:
            exc.path.append(_key_text(key))
            raise
        if required and not record.keys() >= required:
            _check_required(required, lowered, record)
        for name in repeated:
            if out[name] is None:
                out[name] = []
        return out

    return convert


def _resolve_key(
    lowered: dict[str, str], key: object, record: Mapping[Any, Any]
) -> str:
    """The schema's spelling of `key`, which matched no field exactly."""
    canonical = lowered.get(key.lower()) if isinstance(key, str) else None
    if canonical is None:
        raise _Refusal("not in the table's schema; remove it or add it to the schema")
    spellings = [
        k for k in record if isinstance(k, str) and k.lower() == canonical.lower()
    ]
    if len(spellings) > 1:
        raise _Refusal("given more than once in different letter case; keep one")
    return canonical


def _check_required(
    required: frozenset[str], lowered: dict[str, str], record: Mapping[Any, Any]
) -> None:
    given = {lowered.get(k.lower()) for k in record if isinstance(k, str)}
    for name in sorted(required - given):
        refusal = _Refusal("REQUIRED field is missing; give it a value")
        refusal.path.append(name)
        raise refusal


def _field_converter(field: SchemaField, *, avro: bool) -> _Converter:
    if field.field_type == "RECORD":
        element = _row_converter(field.fields, avro=avro)
    else:
        element = _SCALARS[field.field_type][1 if avro else 0]
    return _repeated(element) if field.mode == "REPEATED" else element


def _repeated(element: _Converter) -> _Converter:
    def convert(value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise _wrong("a list or tuple", value, "pass the values in a list")
        out = []
        for index, item in enumerate(value):
            if item is None:
                refusal = _Refusal("REPEATED values cannot hold None; drop it")
                refusal.path.append(f"[{index}]")
                raise refusal
            try:
                out.append(element(item))
            except _Refusal as exc:
                exc.path.append(f"[{index}]")
                raise
        return out

    return convert


def _string(value: Any) -> str:
    if type(value) is str and value.isascii():
        return value
    if isinstance(value, str):
        return _utf8_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _decoded_text(value)
    raise _wrong("str", value, "convert the value to str first")


def _utf8_text(value: str) -> str:
    try:
        value.encode("utf-8")
        valid = True
    except UnicodeEncodeError:
        valid = False
    if not valid:
        problem = "str holds lone surrogates, so it is not valid UTF-8 (bytes decoded "
        raise _Refusal(problem + "with surrogateescape?); decode the source strictly")
    return value if type(value) is str else str.__str__(value)


def _decoded_text(value: bytes | bytearray | memoryview) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        pass
    raise _Refusal("bytes are not valid UTF-8; pass str, or decode the source first")


def _bytes_avro(value: Any) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return _base64_text(value)
    raise _wrong("bytes or a base64 str", value, "encode the value first")


def _base64_text(value: str) -> bytes:
    """BYTES as BigQuery's JSON encoding gives them: base64 text (as in NDJSON)."""
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        pass
    raise _Refusal(
        "expected base64 text for BYTES (BigQuery's JSON encoding),"
        " got a str that is not"
    )


def _bytes_json(value: Any) -> str:
    return base64.b64encode(_bytes_avro(value)).decode("ascii")


_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,20}", re.ASCII)


def _integer(value: Any) -> int:
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    if isinstance(value, str) and not _INTEGER_TEXT.fullmatch(value):
        raise _Refusal("got a str that is not a base-10 integer; pass an int")
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise _wrong("int or a str of digits", value, "convert it with int()")
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise _Refusal("int outside the INT64 range; use NUMERIC or BIGNUMERIC")
    return number


def _integer_json(value: Any) -> int | str:
    if type(value) is int and -MAX_SAFE_JSON_INTEGER <= value <= MAX_SAFE_JSON_INTEGER:
        return value
    number = _integer(value)
    if -MAX_SAFE_JSON_INTEGER <= number <= MAX_SAFE_JSON_INTEGER:
        return number
    return str(number)


def _float(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, float):
        return float(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong("float or int", value, "convert it with float()")
    try:
        return float(value)
    except OverflowError:
        pass
    raise _Refusal("int too large for FLOAT64; use NUMERIC or BIGNUMERIC")


def _float_json(value: Any) -> float | str:
    if type(value) is float and value - value == 0.0:
        return value
    number = _float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def _boolean(value: Any) -> bool:
    if value is True or value is False:
        return bool(value)
    raise _wrong("bool", value, "convert it with bool() if that is what you mean")


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_CIVIL_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?",
    re.ASCII,
)
_CIVIL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_CIVIL_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?", re.ASCII)


def _parsed(
    pattern: re.Pattern[str], text: str, parse: Callable[[str], _T], example: str
) -> _T:
    """`text` parsed after a strict shape check; fromisoformat alone is lenient."""
    if pattern.fullmatch(text):
        try:
            return parse(text.upper())
        except ValueError:
            pass
    raise _Refusal(f"got a str not shaped like {example} or not a real date/time")


def _timestamp_avro(value: Any) -> datetime:
    if isinstance(value, str):
        example = "2026-01-26T08:30:00.123456Z"
        moment = _parsed(_RFC3339, value, datetime.fromisoformat, example)
    elif isinstance(value, datetime):
        moment = value
    else:
        raise _wrong("datetime or an RFC 3339 str", value, "pass an aware datetime")
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        pass
    raise _Refusal("timestamp falls outside years 1 to 9999 in UTC")


def _timestamp_json(value: Any) -> str:
    if type(value) is datetime and (value.tzinfo is None or value.tzinfo is UTC):
        return _utc_text(value)
    return _utc_text(_timestamp_avro(value))


def _utc_text(moment: datetime) -> str:
    """RFC 3339 with microseconds and Z; `moment` is in UTC or naive."""
    if _orjson_dumps is None or type(moment) is not datetime:
        return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    text = _orjson_dumps(moment, None, _ORJSON_UTC)  # several times faster
    if len(text) == 29:
        return text[1:-1].decode("ascii")
    return text[1:20].decode("ascii") + ".000000Z"


def _date_avro(value: Any) -> date:
    if type(value) is date:
        return value
    if isinstance(value, str):
        return _parsed(_CIVIL_DATE, value, date.fromisoformat, "2026-01-26")
    if isinstance(value, date) and not isinstance(value, datetime):
        return date(value.year, value.month, value.day)
    raise _wrong("date or an ISO date str", value, "pass a date (datetime.date())")


def _date_json(value: Any) -> str:
    return _date_avro(value).isoformat()


def _time_avro(value: Any) -> time:
    if isinstance(value, str):
        return _parsed(_CIVIL_TIME, value, time.fromisoformat, "08:30:00.123456")
    if not isinstance(value, time):
        raise _wrong("time or an ISO time str", value, "pass a datetime.time")
    if value.tzinfo is not None:
        raise _Refusal("TIME has no time zone, got an aware time; drop its tzinfo")
    return value


def _time_json(value: Any) -> str:
    return _time_avro(value).isoformat(timespec="microseconds")


def _datetime_text(value: Any) -> str:
    if isinstance(value, str):
        example = "2026-01-26T08:30:00.123456"
        moment = _parsed(_CIVIL_DATETIME, value, datetime.fromisoformat, example)
    elif isinstance(value, datetime):
        moment = value
    else:
        raise _wrong("naive datetime or an ISO str", value, "pass a datetime")
    if moment.tzinfo is not None:
        problem = "DATETIME has no time zone, got an aware datetime; drop its tzinfo"
        raise _Refusal(problem + " or make the column a TIMESTAMP")
    return moment.isoformat(timespec="microseconds")


_DECIMAL_TEXT = re.compile(
    r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,4})?", re.ASCII
)
_DECIMAL_CONTEXT = Context(prec=200)


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, str):
        if _DECIMAL_TEXT.fullmatch(value):
            return Decimal(value)
        raise _Refusal("got a str that is not a decimal number; pass a Decimal")
    raise _wrong("Decimal, int, float or a decimal str", value, "pass a Decimal")


def _numeric(scale: int, low: Decimal, high: Decimal) -> tuple[_Converter, _Converter]:
    """NUMERIC-like converters: round half away from zero past `scale` digits."""
    quantum = Decimal(1).scaleb(-scale)

    def to_avro(value: Any) -> Decimal:
        number = _to_decimal(value)
        if not number.is_finite():
            raise _Refusal("NaN and Infinity have no NUMERIC value; use FLOAT")
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -scale and number.adjusted() < 42:
            number = number.quantize(quantum, ROUND_HALF_UP, _DECIMAL_CONTEXT)
        if not low <= number <= high:
            raise _Refusal("number outside the column type's range; use BIGNUMERIC")
        return number

    def to_json(value: Any) -> str:
        return format(to_avro(value), "f")

    return to_json, to_avro


def _json_tree(value: Any, depth: int = 0) -> Any:
    """`value` as plain JSON types; refuses what JSON cannot say exactly."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        if not INT64_MIN <= value < 2**64:
            raise _Refusal("JSON value holds an int beyond 64 bits; store it as str")
        return int(value)
    if isinstance(value, float):
        if value - value != 0.0:
            raise _Refusal("JSON value holds NaN or Infinity, which JSON cannot say")
        return float(value)
    if depth >= MAX_JSON_NESTING:
        raise _Refusal(f"JSON value nests deeper than {MAX_JSON_NESTING} levels")
    if isinstance(value, Mapping):
        tree: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Refusal("JSON value holds an object key that is not str")
            tree[_string(key)] = _json_tree(item, depth + 1)
        return tree
    if isinstance(value, list | tuple):
        items = []  # a loop, not a comprehension: one stack frame per level
        for item in value:
            items.append(_json_tree(item, depth + 1))
        return items
    raise _wrong(
        "JSON-serialisable data", value, "pass dict, list, str, number or bool"
    )


def _json_text(value: Any) -> str:
    return json.dumps(_json_tree(value), ensure_ascii=False, separators=(",", ":"))


_WKT = re.compile(
    r"\s*(POINT|LINESTRING|POLYGON|MULTIPOINT|MULTILINESTRING|MULTIPOLYGON"
    r"|GEOMETRYCOLLECTION)\b",
    re.ASCII | re.IGNORECASE,
)


def _geography(value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong("a WKT str", value, "pass the geography as WKT text")
    if not _WKT.match(value):
        raise _Refusal("got a str that is not WKT; pass text such as POINT(1 2)")
    return _string(value)


_SCALARS: dict[str, tuple[_Converter, _Converter]] = {
    "STRING": (_string, _string),
    "BYTES": (_bytes_json, _bytes_avro),
    "INTEGER": (_integer_json, _integer),
    "FLOAT": (_float_json, _float),
    "NUMERIC": _numeric(9, NUMERIC_MIN, NUMERIC_MAX),
    "BIGNUMERIC": _numeric(38, BIGNUMERIC_MIN, BIGNUMERIC_MAX),
    "BOOLEAN": (_boolean, _boolean),
    "TIMESTAMP": (_timestamp_json, _timestamp_avro),
    "DATE": (_date_json, _date_avro),
    "TIME": (_time_json, _time_avro),
    "DATETIME": (_datetime_text, _datetime_text),
    "JSON": (_json_tree, _json_text),
    "GEOGRAPHY": (_geography, _geography),
}
"""Per type: the NDJSON converter, then the Avro converter."""

_AVRO_TYPES: dict[str, Any] = {
    "STRING": "string",
    "BYTES": "bytes",
    "INTEGER": "long",
    "FLOAT": "double",
    "BOOLEAN": "boolean",
    "NUMERIC": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 9},
    "BIGNUMERIC": {  # 77 digits: the 39th integer digit of BIGNUMERIC is partial
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 77,
        "scale": 38,
    },
    "TIMESTAMP": {"type": "long", "logicalType": "timestamp-micros"},
    "DATE": {"type": "int", "logicalType": "date"},
    "TIME": {"type": "long", "logicalType": "time-micros"},
    "DATETIME": {"type": "string", "logicalType": "datetime"},
    "JSON": {"type": "string", "sqlType": "JSON"},
    "GEOGRAPHY": {"type": "string", "sqlType": "GEOGRAPHY"},
}
"""Avro types BigQuery reads into each column type with use_avro_logical_types."""


def avro_schema_for(table: str, fields: Sequence[SchemaField]) -> dict[str, Any]:
    """The Avro record schema for a table's rows, with unique nested type names."""
    used: set[str] = set()
    name = _avro_name(re.sub(r"[^A-Za-z0-9_]", "_", table), used)
    return _avro_record(name, fields, used)


def _avro_name(wanted: str, used: set[str]) -> str:
    base = wanted if _NAME.fullmatch(wanted) else "_" + wanted
    name, number = base, 1
    while name in used:
        number += 1
        name = f"{base}_{number}"
    used.add(name)
    return name


def _avro_record(
    name: str, fields: Sequence[SchemaField], used: set[str]
) -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "fields": [_avro_field(field, name, used) for field in fields],
    }


def _avro_field(field: SchemaField, parent: str, used: set[str]) -> dict[str, Any]:
    if field.field_type == "RECORD":
        inner = _avro_record(
            _avro_name(f"{parent}_{field.name}", used), field.fields, used
        )
    else:
        inner = json.loads(json.dumps(_AVRO_TYPES[field.field_type]))
    if field.mode == "REPEATED":
        return {"name": field.name, "type": {"type": "array", "items": inner}}
    if field.mode == "NULLABLE":
        return {"name": field.name, "type": ["null", inner], "default": None}
    return {"name": field.name, "type": inner}


_DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "BYTES": "BLOB",
    "INTEGER": "BIGINT",
    "FLOAT": "DOUBLE",
    "NUMERIC": "DECIMAL(38,9)",
    "BIGNUMERIC": "VARCHAR",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMPTZ",
    "DATE": "DATE",
    "TIME": "TIME",
    "DATETIME": "TIMESTAMP",
    "JSON": "JSON",
    "GEOGRAPHY": "VARCHAR",
}
"""DuckDB's DECIMAL stops at 38 digits, so BIGNUMERIC keeps its exact text."""


def duckdb_type(field: SchemaField) -> str:
    """The DuckDB column type for a field; STRUCT member names are quoted."""
    if field.field_type == "RECORD":
        members = ", ".join(
            f"{_quote(sub.name)} {duckdb_type(sub)}" for sub in field.fields
        )
        kind = f"STRUCT({members})"
    else:
        kind = _DUCKDB_TYPES[field.field_type]
    return f"{kind}[]" if field.mode == "REPEATED" else kind


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
