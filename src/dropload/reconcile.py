"""Row-count reconciliation: what a load job loaded against what its shards hold.

The stager records each shard's row count in the object's metadata
(`dropload-rows`). After a job succeeds, the sum over the batch must equal the
job's output rows plus its bad records; when it does not, the shards are read
to name the ones whose metadata disagrees with their content.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import fastavro

from dropload import layout
from dropload.errors import ObjectNotFound
from dropload.manifest import Intent, ShardEntry
from dropload.store.base import ROWS_METADATA, Store
from dropload.warehouse.base import JobResult

logger = logging.getLogger(__name__)

MAX_NAMED_SHARDS = 20
"""Shards a mismatch message names at most; the rest are counted."""


@dataclass(frozen=True)
class ShardCount:
    """One shard whose metadata and content disagree."""

    name: str
    metadata_rows: int | None
    content_rows: int | None
    """None when the shard could not be read or parsed."""

    def describe(self) -> str:
        """`name (metadata 7, content 5)`."""
        content = "unreadable" if self.content_rows is None else self.content_rows
        return f"{self.name} (metadata {self.metadata_rows}, content {content})"


@dataclass(frozen=True)
class Mismatch:
    """A succeeded job whose row count differs from its shards' row counts."""

    table: str
    batch_id: str
    job_id: str
    expected_rows: int
    output_rows: int
    bad_records: int
    shards: tuple[ShardCount, ...]

    @property
    def message(self) -> str:
        """What disagrees, naming the shards, and where the batch stays."""
        head = (
            f"table {self.table}: batch {self.batch_id}: job {self.job_id} loaded"
            f" {self.output_rows} rows and skipped {self.bad_records} bad records,"
            f" but the shards' {ROWS_METADATA} metadata adds up to"
            f" {self.expected_rows}"
        )
        where = (
            f"; the batch stays unarchived in {layout.batch(self.table, self.batch_id)}"
        )
        if not self.shards:
            return head + "; every shard's metadata matches its content" + where
        named = ", ".join(s.describe() for s in self.shards[:MAX_NAMED_SHARDS])
        more = len(self.shards) - MAX_NAMED_SHARDS
        extra = f" and {more} more" if more > 0 else ""
        return f"{head}; metadata disagrees with content in {named}{extra}{where}"


def reconcile_batch(
    store: Store, intent: Intent, result: JobResult, fmt: str
) -> Mismatch | None:
    """None when the job's rows match the batch's shards, else the Mismatch.

    A job without load statistics (output_rows unknown) is not judged. Raises
    StoreError when the store cannot be read.
    """
    if result.output_rows is None:
        logger.debug("job %s: no output_rows; row counts not reconciled", result.job_id)
        return None
    folders = _folders(intent)
    shards = _loaded_shards(store, intent, folders)
    expected = sum(_metadata_or_content(store, folders, s, fmt) for s in shards)
    if expected == result.output_rows + result.bad_records:
        return None
    return Mismatch(
        table=intent.table,
        batch_id=intent.batch_id,
        job_id=result.job_id,
        expected_rows=expected,
        output_rows=result.output_rows,
        bad_records=result.bad_records,
        shards=_disagreeing(store, folders, shards, fmt),
    )


def count_rows(fmt: str, data: bytes) -> int:
    """Rows in a shard's bytes: non-blank NDJSON lines, or Avro records.

    Raises ValueError when the bytes are not such a shard.
    """
    if fmt == "ndjson":
        return sum(1 for line in data.split(b"\n") if line.strip())
    try:
        blocks = fastavro.block_reader(io.BytesIO(data))
        return sum(block.num_records for block in blocks)
    except (ValueError, EOFError, KeyError, TypeError) as exc:
        raise ValueError(f"not an Avro container file: {exc}") from None


def _folders(intent: Intent) -> tuple[str, str]:
    """The batch folder, and its archive folder (an interrupted tick's moves)."""
    day = layout.day_of(intent.created)
    return (
        layout.batch(intent.table, intent.batch_id),
        layout.archived_batch(intent.table, day, intent.batch_id),
    )


def _loaded_shards(
    store: Store, intent: Intent, folders: tuple[str, str]
) -> tuple[ShardEntry, ...]:
    """The intent's shards the job read: those claimed into the batch folder.

    A tick cut short while archiving has moved some on already; the intent
    in the store still lists them, the recovering tick's copy may not.
    """
    try:
        recorded = Intent.from_json(
            store.read(layout.intent(intent.table, intent.batch_id))
        )
        entries = {s.name: s for s in (*recorded.shards, *intent.shards)}
    except (ObjectNotFound, ValueError):
        entries = {s.name: s for s in intent.shards}
    present = {i.basename for folder in folders for i in store.list(folder)}
    return tuple(entry for name, entry in entries.items() if name in present)


def _metadata_or_content(
    store: Store, folders: tuple[str, str], entry: ShardEntry, fmt: str
) -> int:
    if entry.rows is not None:
        return entry.rows
    return _content_rows(store, folders, entry.name, fmt) or 0


def _disagreeing(
    store: Store, folders: tuple[str, str], shards: tuple[ShardEntry, ...], fmt: str
) -> tuple[ShardCount, ...]:
    found = []
    for entry in shards:
        content = _content_rows(store, folders, entry.name, fmt)
        if content is None or (entry.rows is not None and content != entry.rows):
            found.append(ShardCount(entry.name, entry.rows, content))
    return tuple(found)


def _content_rows(
    store: Store, folders: tuple[str, str], name: str, fmt: str
) -> int | None:
    for folder in folders:
        try:
            return count_rows(fmt, store.read(folder + name))
        except ObjectNotFound:
            continue
        except ValueError:
            return None
    return None
