"""The embedded warehouse: a DuckDB file whose job ledger mirrors BigQuery's jobs.

A load is one transaction that inserts the rows and records the job id in the
ledger, so a job id is applied at most once, whatever crashes. Failed jobs are
recorded too, since BigQuery counts them against the daily limit.
"""

from __future__ import annotations

import glob
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from dropload.encoding import decode_shard, encode_ndjson
from dropload.errors import WarehouseError
from dropload.schema import RecordCodec, SchemaField, duckdb_type
from dropload.warehouse import duckdb_partitions as partitioning
from dropload.warehouse.base import (
    MAX_NDJSON_ROW_BYTES,
    JobResult,
    LoadRequest,
    Warehouse,
    check_job_id,
)

logger = logging.getLogger(__name__)

LEDGER = "_dropload_jobs"
"""The job ledger table, in the main schema of the DuckDB file."""

_TABLES_DDL = f"""
CREATE TABLE IF NOT EXISTS {partitioning.TABLES} (
    destination VARCHAR PRIMARY KEY,
    partition_type VARCHAR,
    partition_field VARCHAR,
    expiration_days DOUBLE,
    clustering VARCHAR[]
)"""

_LOCK_WAIT_SECONDS = 120.0
"""How long to wait for another process to let go of the DuckDB file."""

_LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {LEDGER} (
    job_id VARCHAR PRIMARY KEY,
    destination VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    error_reason VARCHAR,
    error_message VARCHAR,
    output_rows BIGINT,
    bad_records BIGINT,
    input_files BIGINT,
    created TIMESTAMPTZ NOT NULL,
    ended TIMESTAMPTZ
)"""


_write_locks: dict[Path, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    """The process's lock for writes to the DuckDB file at `path`."""
    # Connections of one process share one database, where two writing
    # transactions at once conflict; DuckDB's file lock keeps other processes out.
    with _write_locks_guard:
        return _write_locks.setdefault(path, threading.Lock())


class _LoadError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class DuckDBWarehouse(Warehouse):
    """Tables in a DuckDB file; `dataset.table` maps to schema `dataset`."""

    def __init__(
        self, path: str | Path, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        """Open (or create) the file; `clock` stamps jobs (tests run a fake day)."""
        self.path = Path(path).expanduser().resolve()
        self._clock = clock or (lambda: datetime.now(UTC))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(f"DuckDB file {self.path}: {exc.strerror}") from None
        with _write_lock(self.path), self._connect() as con:
            con.execute(_LEDGER_DDL)
            con.execute(_TABLES_DDL)

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        """Run the load in one transaction with its ledger row."""
        check_job_id(request.job_id)
        created = self._clock()
        with _write_lock(self.path), self._connect() as con:
            existing = self._job(con, request.job_id)
            if existing is not None:
                logger.info("job %s: exists already, not run again", request.job_id)
                return existing
            try:
                rows, files, bad = self._load_rows(con, request)
            except (_LoadError, duckdb.Error) as exc:
                _rollback(con)
                return self._record_failure(con, request, created, exc)
            result = JobResult(
                job_id=request.job_id,
                state="DONE",
                destination=request.target,
                output_rows=rows,
                bad_records=bad,
                input_files=files,
                created=created,
                ended=self._clock(),
            )
            self._insert_job(con, result)
            con.execute("COMMIT")
        return result

    def get_job(self, job_id: str) -> JobResult | None:
        """The ledger row for `job_id`."""
        with self._connect() as con:
            return self._job(con, job_id)

    def list_load_jobs(self, destination: str, since: datetime) -> list[JobResult]:
        """Ledger rows for `destination` created since `since`."""
        with self._connect() as con:
            rows = con.execute(
                f"SELECT * FROM {LEDGER} WHERE destination = ? AND created >= ?"
                " ORDER BY created",
                [destination, since],
            ).fetchall()
        return [_result(row) for row in rows]

    def row_count(self, destination: str) -> int:
        """COUNT(*) of the table, 0 when it is missing."""
        schema, table = _split(destination)
        with self._connect() as con:
            if not _table_exists(con, schema, table):
                return 0
            count = con.execute(f"SELECT count(*) FROM {_qualified(destination)}")
            return int(count.fetchone()[0])  # type: ignore[index]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run SQL and fetch every row."""
        with self._connect() as con:
            return con.execute(sql).fetchall()

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        while True:
            try:
                con = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise WarehouseError(f"DuckDB file {self.path}: {exc}") from None
                time.sleep(0.05)
        try:
            yield con
        finally:
            con.close()

    def _job(self, con: duckdb.DuckDBPyConnection, job_id: str) -> JobResult | None:
        row = con.execute(f"SELECT * FROM {LEDGER} WHERE job_id = ?", [job_id])
        found = row.fetchone()
        return None if found is None else _result(found)

    def _load_rows(
        self, con: duckdb.DuckDBPyConnection, request: LoadRequest
    ) -> tuple[int, int, int]:
        files = _expand(request.source_uris)
        con.execute("BEGIN TRANSACTION")
        _ensure_schema(con, request)
        guard = _apply_disposition(con, request)
        if request.table.format == "avro":
            loaded = self._insert_avro(con, request, files)
        else:
            loaded = _insert_ndjson(con, request, files), len(files), 0
        if guard is not None:
            try:
                guard.check(con)
            except ValueError as exc:
                raise _LoadError("invalid", str(exc)) from None
        partitioning.expire_partitions(con, request.target)
        return loaded

    def _insert_avro(
        self, con: duckdb.DuckDBPyConnection, request: LoadRequest, files: list[str]
    ) -> tuple[int, int, int]:
        codec = RecordCodec(request.table.name, request.fields)
        with tempfile.TemporaryDirectory(prefix="dropload-avro-") as tmp:
            converted = []
            for number, file in enumerate(files):
                rows = [codec.to_json_row(r) for r in _read_avro(file)]
                target = Path(tmp) / f"{number:08d}.ndjson"
                target.write_bytes(encode_ndjson(rows))
                converted.append(str(target))
            return _insert_ndjson(con, request, converted), len(files), 0

    def _record_failure(
        self,
        con: duckdb.DuckDBPyConnection,
        request: LoadRequest,
        created: datetime,
        exc: Exception,
    ) -> JobResult:
        reason = exc.reason if isinstance(exc, _LoadError) else "invalid"
        message = exc.message if isinstance(exc, _LoadError) else str(exc)
        result = JobResult(
            job_id=request.job_id,
            state="DONE",
            destination=request.target,
            error_reason=reason,
            error_message=message.splitlines()[0][:1000] if message else reason,
            created=created,
            ended=self._clock(),
        )
        self._insert_job(con, result)
        return result

    def _insert_job(self, con: duckdb.DuckDBPyConnection, result: JobResult) -> None:
        con.execute(
            f"INSERT INTO {LEDGER} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                result.job_id,
                result.destination,
                result.state,
                result.error_reason,
                result.error_message,
                result.output_rows,
                result.bad_records,
                result.input_files,
                result.created,
                result.ended,
            ],
        )


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the load's transaction, if it got as far as opening one."""
    with suppress(duckdb.TransactionException):
        con.execute("ROLLBACK")


def _expand(source_uris: tuple[str, ...]) -> list[str]:
    files: list[str] = []
    for uri in source_uris:
        matched = sorted(glob.glob(uri)) if "*" in uri else [uri]
        if not matched or not all(Path(f).is_file() for f in matched):
            raise _LoadError("notFound", f"Not found: URI {uri}")
        files.extend(matched)
    return files


def _read_avro(file: str) -> list[dict[str, Any]]:
    return list(decode_shard("avro", Path(file).read_bytes()))


def _insert_ndjson(
    con: duckdb.DuckDBPyConnection, request: LoadRequest, files: list[str]
) -> int:
    columns = {f.name: _read_type(f) for f in request.fields}
    select = ", ".join(_select_expr(f) for f in request.fields)
    names = ", ".join(_quote(f.name) for f in request.fields)
    options = f"format='newline_delimited', maximum_object_size={MAX_NDJSON_ROW_BYTES}"
    before = _count(con, request.target)
    con.execute(
        f"INSERT INTO {_qualified(request.target)} ({names}) SELECT {select}"
        f" FROM read_json(?, columns={_struct_literal(columns)}, {options})",
        [files],
    )
    return _count(con, request.target) - before


def _count(con: duckdb.DuckDBPyConnection, destination: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {_qualified(destination)}").fetchone()
    return int(row[0]) if row else 0


def _read_type(field: SchemaField) -> str:
    if field.field_type == "BYTES" and field.mode != "REPEATED":
        return "VARCHAR"
    return duckdb_type(field)


def _select_expr(field: SchemaField) -> str:
    name = _quote(field.name)
    if field.field_type == "BYTES" and field.mode != "REPEATED":
        return f"from_base64({name})"
    return name


def _struct_literal(columns: dict[str, str]) -> str:
    body = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    return "{" + body + "}"


def _ensure_schema(con: duckdb.DuckDBPyConnection, request: LoadRequest) -> None:
    schema, table = _split(request.target)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
    if not _table_exists(con, schema, table):
        if request.table.create_disposition == "CREATE_NEVER":
            raise _LoadError("notFound", f"Not found: Table {request.target}")
        cols = ", ".join(f"{_quote(f.name)} {_column(f)}" for f in request.fields)
        con.execute(f"CREATE TABLE {_qualified(request.target)} ({cols})")
        partitioning.record_table(con, request)
        return
    _add_new_fields(con, request, schema, table)


def _add_new_fields(
    con: duckdb.DuckDBPyConnection, request: LoadRequest, schema: str, table: str
) -> None:
    present = {
        row[0].lower()
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
    }
    added = [f for f in request.fields if f.name.lower() not in present]
    if added and "ALLOW_FIELD_ADDITION" not in request.table.schema_update_options:
        names = ", ".join(f.name for f in added)
        raise _LoadError(
            "invalid",
            f"Provided Schema does not match Table {request.target}."
            f" Cannot add fields (field: {names})",
        )
    for f in added:
        if f.mode == "REQUIRED":
            raise _LoadError(
                "invalid", f"Cannot add REQUIRED field {f.name} to {request.target}"
            )
        con.execute(
            f"ALTER TABLE {_qualified(request.target)}"
            f" ADD COLUMN {_quote(f.name)} {duckdb_type(f)}"
        )


def _apply_disposition(
    con: duckdb.DuckDBPyConnection, request: LoadRequest
) -> partitioning.PartitionGuard | None:
    """Empty what the disposition replaces; a partition load gets a guard."""
    disposition = request.write_disposition or request.table.write_disposition
    target = _qualified(request.target)
    guard = None
    if request.partition is not None:
        try:
            guard = partitioning.PartitionGuard.open(con, request)
        except ValueError as exc:
            raise _LoadError("invalid", str(exc)) from None
    if disposition == "WRITE_TRUNCATE" and guard is not None:
        guard.truncate(con)
    elif disposition == "WRITE_TRUNCATE":
        con.execute(f"DELETE FROM {target}")
    elif disposition == "WRITE_EMPTY" and _count(con, request.target):
        raise _LoadError("duplicate", f"Already Exists: Table {request.target}")
    return guard


def _column(field: SchemaField) -> str:
    kind = duckdb_type(field)
    return f"{kind} NOT NULL" if field.mode == "REQUIRED" else kind


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def _split(destination: str) -> tuple[str, str]:
    parts = destination.split(".")
    return parts[-2], parts[-1]


def _qualified(destination: str) -> str:
    schema, table = _split(destination)
    return f"{_quote(schema)}.{_quote(table)}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _result(row: tuple[Any, ...]) -> JobResult:
    return JobResult(
        job_id=row[0],
        destination=row[1],
        state=row[2],
        error_reason=row[3],
        error_message=row[4],
        output_rows=row[5],
        bad_records=row[6] or 0,
        input_files=row[7],
        created=row[8],
        ended=row[9],
    )
