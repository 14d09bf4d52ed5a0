"""The writers' API: validate records, buffer them, write shards to staging."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from dropload import layout
from dropload.config import Config, load_config
from dropload.encoding import encode_avro, ndjson_line
from dropload.errors import DroploadError, ObjectExists, StoreError
from dropload.partition import PARTITIONS_METADATA, encode_partitions, partition_spec
from dropload.schema import RecordCodec, load_schema_file
from dropload.shard import new_shard_name
from dropload.stager import lifecycle
from dropload.stager.spool import Spool, default_spool_root
from dropload.store import ROWS_METADATA, Store, open_store

logger = logging.getLogger(__name__)


class BufferFull(DroploadError):
    """append() found the buffer at its memory ceiling (when_full = "raise")."""

    def __init__(self, table: str, limit: int) -> None:
        self.table = table
        self.limit = limit
        super().__init__(
            f"table {table}: stager buffer is at its ceiling of {limit} bytes;"
            " the store is slow or down; retry later or raise max_buffer_bytes"
        )


class Stager:
    """Stages records for one table; thread-safe; use one per process and table.

    Records are validated at `append` and written as shard files when the buffer
    reaches `max_records`, `max_bytes` or `max_age_seconds`. Once `flush()` or
    `close()` returns, every record appended before it is in the store (or, if
    the store is unreachable, in the local spool, uploaded by a later flush).
    """

    def __init__(
        self,
        config: Config | str | Path,
        table: str,
        *,
        store: Store | None = None,
    ) -> None:
        self.config = config if isinstance(config, Config) else load_config(config)
        self.table = self.config.table(table)
        self.settings = self.config.stager
        fields = load_schema_file(self.config.resolve(self.table.schema_file))
        self._codec = RecordCodec(table, fields)
        self._spec = partition_spec(self.table, fields)
        self._store = store or open_store(
            self.config, deadline=self.settings.upload_deadline_seconds
        )
        spool_root = (
            self.config.resolve(self.settings.spool_dir)
            if self.settings.spool_dir
            else default_spool_root()
        )
        self._spool = Spool(spool_root, self._store.url, table)
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._upload_lock = threading.Lock()
        self._items: list[Any] = []
        self._partitions: set[str] = set()
        """Partition ids of the buffered records (column-partitioned tables)."""
        self._bytes = 0
        self._in_flight = 0
        self._taken = 0
        self._uploading: set[int] = set()
        """Numbers of the batches taken from the buffer and not yet written."""
        self._oldest: float | None = None
        self._closed = False
        self.shards_written = 0
        self.records_written = 0
        self.peak_buffered_bytes = 0
        """Most bytes held at once (buffered and being uploaded)."""
        self._spool.drain(self._store)
        lifecycle.register(self)

    def append(self, record: Mapping[str, Any]) -> None:
        """Validate and buffer one record.

        Raises RecordError (naming the table and field) when it does not fit the
        schema, BufferFull at the memory ceiling when configured to raise.
        """
        item, size, partition = self._encode(record)
        batch = None
        with self._lock:
            self._check_open()
            self._wait_for_room(size)
            self._items.append(item)
            if partition is not None:
                self._partitions.add(partition)
            self._bytes += size
            self.peak_buffered_bytes = max(
                self.peak_buffered_bytes, self._bytes + self._in_flight
            )
            if self._oldest is None:
                self._oldest = time.monotonic()
            if self._full():
                batch = self._take()
        if batch is not None:
            self._upload(*batch)

    def extend(self, records: Iterable[Mapping[str, Any]]) -> None:
        """append() every record in order; stops at the first refused one."""
        for record in records:
            self.append(record)

    def flush(self) -> None:
        """Write what is buffered; on return it is durable. Raises nothing new.

        Batches other threads took from the buffer before this call are waited
        for too, so every record appended before flush() is durable on return.
        """
        with self._lock:
            batch = self._take() if self._items else None
            earlier = set(self._uploading)
        if batch is not None:
            self._upload(*batch)
        elif len(self._spool):
            with self._upload_lock:
                self._spool.drain(self._store)
        self._wait_for(earlier)

    def close(self) -> None:
        """Flush and stop; later appends raise. Safe to call twice."""
        with self._lock:
            self._closed = True
        self.flush()
        lifecycle.unregister(self)

    def __enter__(self) -> Stager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def spooled(self) -> int:
        """Shards waiting in the local spool for the store to come back."""
        return len(self._spool)

    def forget_after_fork(self) -> None:
        """In a forked child: drop the buffer (the parent writes it) and close."""
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._upload_lock = threading.Lock()
        self._items, self._bytes, self._oldest = [], 0, None
        self._in_flight, self._uploading = 0, set()
        self._closed = True

    def flush_if_old(self, now: float) -> None:
        """Flush when the oldest buffered record is older than max_age_seconds."""
        with self._lock:
            old = self._oldest is not None and (
                now - self._oldest >= self.settings.max_age_seconds
            )
            batch = self._take() if old and self._items else None
        if batch is not None:
            self._upload(*batch)

    def _encode(self, record: Mapping[str, Any]) -> tuple[Any, int, str | None]:
        if self.table.format == "avro":
            row = self._codec.to_avro_row(record)
            return row, _avro_size(row), self._partition_of(row)
        json_row = self._codec.to_json_row(record)
        # orjson hands back its whole working buffer (4 KiB or more) as the bytes
        # object; a buffer of 50,000 of those held 26 times the shard's size.
        line = bytes(memoryview(ndjson_line(json_row)))
        return line, len(line), self._partition_of(json_row)

    def _partition_of(self, row: Mapping[str, Any]) -> str | None:
        if self._spec is None or self._spec.field is None:
            return None
        return self._spec.id_of(row.get(self._spec.field))

    def _check_open(self) -> None:
        if self._closed:
            raise DroploadError(f"table {self.table.name}: stager is closed")

    def _wait_for_room(self, size: int) -> None:
        # Only an upload under way frees room; with none, the caller writes the
        # buffer itself once it reaches the ceiling (see _full).
        limit = self.settings.max_buffer_bytes
        while self._in_flight and self._bytes + self._in_flight + size > limit:
            if self.settings.when_full == "raise":
                raise BufferFull(self.table.name, limit)
            self._room.wait(timeout=1.0)

    def _full(self) -> bool:
        return (
            len(self._items) >= self.settings.max_records
            or self._bytes >= self.settings.max_bytes
            or self._bytes >= self.settings.max_buffer_bytes
        )

    def _take(self) -> tuple[list[Any], int, int, frozenset[str]]:
        items, size, parts = self._items, self._bytes, frozenset(self._partitions)
        self._items, self._bytes, self._oldest = [], 0, None
        self._partitions = set()
        self._in_flight += size
        self._taken += 1
        self._uploading.add(self._taken)
        return items, size, self._taken, parts

    def _upload(
        self, items: list[Any], size: int, number: int, parts: frozenset[str]
    ) -> None:
        try:
            data = self._serialise(items)
            with self._upload_lock:
                if len(self._spool):
                    self._spool.drain(self._store)
                self._write_shard(data, len(items), parts)
        finally:
            with self._lock:
                self._in_flight -= size
                self._uploading.discard(number)
                self._room.notify_all()

    def _wait_for(self, batches: set[int]) -> None:
        """Block until the numbered batches are written (or spooled)."""
        with self._lock:
            while batches & self._uploading:
                self._room.wait()

    def _serialise(self, items: list[Any]) -> bytes:
        if self.table.format == "avro":
            return encode_avro(self._codec.avro_schema, items)
        return b"".join(items)

    def _write_shard(self, data: bytes, rows: int, parts: frozenset[str]) -> None:
        name = layout.staging(self.table.name) + new_shard_name(self.table.format)
        metadata = {ROWS_METADATA: str(rows)}
        if self._spec is not None and self._spec.field is not None:
            metadata[PARTITIONS_METADATA] = encode_partitions(parts)
        try:
            self._store.write(name, data, metadata=metadata)
        except ObjectExists:
            if not self._is_ours(name, data):
                self._write_shard(data, rows, parts)
                return
        except StoreError as exc:
            self._spool.put(name, data, rows)
            logger.warning(
                "table %s: store unreachable (%s); shard kept in the local spool",
                self.table.name,
                type(exc).__name__,
            )
            return
        self.shards_written += 1
        self.records_written += rows

    def _is_ours(self, name: str, data: bytes) -> bool:
        """A create that answered 'exists' may be our own earlier attempt."""
        import hashlib

        existing = self._store.stat(name)
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return existing is not None and existing.md5_hash == digest


def _avro_size(row: Mapping[str, Any]) -> int:
    size = 16
    for value in row.values():
        if isinstance(value, str | bytes):
            size += len(value) + 2
        elif isinstance(value, Mapping):
            size += _avro_size(value)
        elif isinstance(value, list):
            size += sum(_avro_size(v) if isinstance(v, Mapping) else 9 for v in value)
        else:
            size += 9
    return size
