"""Shard file bytes: NDJSON lines or an Avro container, and reading them back.

Rows come from `RecordCodec`, so they hold only values these encoders accept.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import fastavro

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a runtime dependency
    orjson = None  # type: ignore[assignment]

FORMATS = ("ndjson", "avro")
"""Shard formats, as BigQuery's NEWLINE_DELIMITED_JSON and AVRO source formats."""

NDJSON_SUFFIX = ".ndjson"
AVRO_SUFFIX = ".avro"

AVRO_CODECS = ("null", "deflate", "snappy")
"""Avro block codecs BigQuery documents for loads; snappy needs cramjam installed."""

_Reviver = Callable[[Any], Any]


def suffix_for(fmt: str) -> str:
    """The file name suffix of shards in `fmt`, with its dot.

    Raises ValueError for a format outside FORMATS.
    """
    if fmt == "ndjson":
        return NDJSON_SUFFIX
    if fmt == "avro":
        return AVRO_SUFFIX
    raise ValueError(f"unknown shard format {fmt!r}; use one of {', '.join(FORMATS)}")


def _json_line(row: dict[str, Any]) -> bytes:
    text = json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8") + b"\n"


if orjson is not None:
    _ORJSON_OPTIONS = orjson.OPT_APPEND_NEWLINE

    def ndjson_line(row: dict[str, Any]) -> bytes:
        """One row as a compact UTF-8 JSON object ending in a newline.

        Raises TypeError for a value JSON cannot hold (rows from RecordCodec have none).
        """
        return orjson.dumps(row, option=_ORJSON_OPTIONS)

    _loads: Callable[[bytes], Any] = orjson.loads
else:  # pragma: no cover - orjson is a runtime dependency
    ndjson_line = _json_line
    _loads = json.loads


def encode_ndjson(rows: Sequence[dict[str, Any]]) -> bytes:
    """The rows as an NDJSON shard: one line per row, each ending in a newline.

    Raises TypeError for a value JSON cannot hold.
    """
    return b"".join([ndjson_line(row) for row in rows])


def encode_avro(
    avro_schema: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    *,
    codec: str = "deflate",
) -> bytes:
    """The rows as an Avro container file written with `avro_schema`.

    Raises ValueError for an unknown codec or a row that does not fit the schema.
    """
    if codec not in AVRO_CODECS:
        raise ValueError(f"unknown Avro codec {codec!r}; use one of {AVRO_CODECS}")

    parsed = _parsed_schema(json.dumps(avro_schema, sort_keys=True))
    buffer = io.BytesIO()
    fastavro.writer(buffer, parsed, rows, codec=codec)
    return buffer.getvalue()


@functools.lru_cache(maxsize=128)
def _parsed_schema(schema_text: str) -> Any:
    """fastavro's parsed schema, cached by the schema's canonical JSON text."""
    return fastavro.parse_schema(json.loads(schema_text))


def decode_shard(fmt: str, data: bytes) -> Iterator[dict[str, Any]]:
    """The rows of a shard; JSON columns of Avro shards come back parsed.

    Raises ValueError for an unknown format or bytes that are not such a shard,
    naming the line number for NDJSON.
    """
    if fmt == "ndjson":
        return _decode_ndjson(data)
    if fmt == "avro":
        return _decode_avro(data)
    raise ValueError(f"unknown shard format {fmt!r}; use one of {', '.join(FORMATS)}")


def _decode_ndjson(data: bytes) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = _loads(line)
        except ValueError as exc:
            problem = exc.msg if isinstance(exc, json.JSONDecodeError) else "bad text"
            raise ValueError(
                f"NDJSON line {number}: not valid JSON ({problem})"
            ) from None
        if not isinstance(row, dict):
            kind = type(row).__name__
            raise ValueError(
                f"NDJSON line {number}: expected a JSON object, got {kind}"
            )
        yield row


def _decode_avro(data: bytes) -> Iterator[dict[str, Any]]:
    try:
        reader = fastavro.reader(io.BytesIO(data))
        schema = json.loads(reader.metadata["avro.schema"])
    except (ValueError, EOFError, KeyError, TypeError) as exc:
        raise ValueError(f"not an Avro container file: {exc}") from None

    revive = _reviver(schema, {})
    for row in reader:
        if not isinstance(row, dict):
            raise ValueError("Avro shard holds values that are not records")
        yield revive(row) if revive is not None else row


def _reviver(node: Any, named: dict[str, Any]) -> _Reviver | None:
    """A function parsing the JSON text of `sqlType: JSON` strings under `node`."""
    if isinstance(node, str):
        return _reviver(named[node], named) if node in named else None
    if isinstance(node, list):
        return _union_reviver(node, named)
    kind = node.get("type")
    if kind == "string" and node.get("sqlType") == "JSON":
        return json.loads
    if kind == "array":
        return _array_reviver(_reviver(node["items"], named))
    if kind == "record":
        named[node["name"]] = node
        return _record_reviver(node["fields"], named)
    return _reviver(kind, named) if isinstance(kind, dict | list) else None


def _union_reviver(branches: list[Any], named: dict[str, Any]) -> _Reviver | None:
    revivers = [_reviver(branch, named) for branch in branches if branch != "null"]
    if len(revivers) != 1 or revivers[0] is None:
        return None
    only = revivers[0]
    return lambda value: None if value is None else only(value)


def _array_reviver(item: _Reviver | None) -> _Reviver | None:
    if item is None:
        return None
    return lambda values: [item(value) for value in values]


def _record_reviver(fields: list[Any], named: dict[str, Any]) -> _Reviver | None:
    revivers = {f["name"]: _reviver(f["type"], named) for f in fields}
    active = {name: fn for name, fn in revivers.items() if fn is not None}
    if not active:
        return None

    def revive(row: dict[str, Any]) -> dict[str, Any]:
        for name, fn in active.items():
            row[name] = fn(row.get(name))
        return row

    return revive
