"""The archive of loaded batches: what each manifest covers, reading it, pruning it.

A compacted manifest (`extra.compacted_from`) supersedes the manifests of the
batches it merged, so a reader that meets both, after a compaction was cut
short, counts every row once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from dropload import layout
from dropload.config import TableConfig
from dropload.errors import ArchiveError, ObjectNotFound
from dropload.manifest import Manifest, ShardEntry
from dropload.partition import PartitionSpec, partition_spec, shard_partitions
from dropload.schema import SchemaField
from dropload.store.base import Store

logger = logging.getLogger(__name__)

COMPACTED_FROM = "compacted_from"
"""Manifest `extra` key: the batch ids a compacted batch replaces."""

_READERS = 8
"""Manifests read in parallel."""


@dataclass(frozen=True)
class ArchivedBatch:
    """One manifest of the archive, where it lies, and the shards it names."""

    manifest: Manifest

    @property
    def table(self) -> str:
        """The table's name in the store."""
        return self.manifest.table

    @property
    def prefix(self) -> str:
        """The folder holding the batch's shards."""
        m = self.manifest
        return layout.archived_batch(m.table, m.day, m.batch_id)

    @property
    def name(self) -> str:
        """The manifest's object name."""
        m = self.manifest
        return layout.manifest(m.table, m.day, m.batch_id)

    @property
    def compacted_from(self) -> tuple[str, ...]:
        """Batch ids this one replaces (empty unless it is a compacted batch)."""
        return tuple(self.manifest.extra.get(COMPACTED_FROM, ()))


def batch_partitions(
    store: Store,
    table: TableConfig,
    fields: Sequence[SchemaField],
    shards: Sequence[ShardEntry],
    folders: Sequence[str],
    loaded_at: datetime,
) -> tuple[str, ...]:
    """The partition ids a batch's rows cover, for its manifest.

    Taken from the shards' metadata; a shard without it (spooled, or staged by an
    older stager) is read from the first of `folders` that holds it.
    """
    spec = partition_spec(table, fields)
    if spec is None:
        return ()
    if spec.field is None:
        return (spec.id_of(loaded_at.astimezone(UTC)),)
    found: set[str] = set()
    for entry in shards:
        if entry.partitions is not None:
            found.update(entry.partitions)
        else:
            found.update(_read_partitions(store, table.format, entry, folders, spec))
    return tuple(sorted(found))


def _read_partitions(
    store: Store,
    fmt: str,
    entry: ShardEntry,
    folders: Sequence[str],
    spec: PartitionSpec,
) -> set[str]:
    for folder in folders:
        try:
            data = store.read(folder + entry.name)
        except ObjectNotFound:
            continue
        return shard_partitions(fmt, data, spec)
    raise ObjectNotFound(folders[0] + entry.name)


def read_archive(store: Store, table: str) -> list[ArchivedBatch]:
    """Every live manifest of the table (superseded ones left out), oldest first.

    Raises ArchiveError for a manifest that cannot be parsed.
    """
    names = [
        info.name
        for info in store.list(layout.archive(table))
        if info.name.endswith(layout.MANIFEST_SUFFIX)
    ]
    with ThreadPoolExecutor(_READERS, thread_name_prefix="manifest") as pool:
        batches = [b for b in pool.map(lambda n: _read(store, n), names) if b]
    replaced = {bid for b in batches for bid in b.compacted_from}
    live = [b for b in batches if b.manifest.batch_id not in replaced]
    return sorted(live, key=lambda b: (b.manifest.day, b.manifest.batch_id))


def _read(store: Store, name: str) -> ArchivedBatch | None:
    try:
        return ArchivedBatch(Manifest.from_json(store.read(name)))
    except ObjectNotFound:
        return None  # deleted by a compaction or a prune since the listing
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(name, f"unreadable ({exc})") from None


@dataclass
class PruneReport:
    """What `prune_archive` removed (or would remove) for one table."""

    table: str
    days: list[str]
    manifests: int = 0
    objects: int = 0
    bytes: int = 0


def prune_archive(
    store: Store, table: str, older_than_days: int, *, dry_run: bool = False
) -> PruneReport:
    """Delete the table's archive days older than `older_than_days` days (UTC).

    Manifests go first, so a prune cut short leaves only shards no manifest
    names (the next prune removes them); staging, batches and quarantine are
    never listed.
    """
    cutoff = (datetime.now(UTC) - timedelta(days=older_than_days)).date()
    listed = store.list(layout.archive(table))
    doomed = [i for i in listed if _archive_day(table, i.name) < cutoff]
    report = PruneReport(table, sorted({_day_text(table, i.name) for i in doomed}))
    report.manifests = sum(i.name.endswith(layout.MANIFEST_SUFFIX) for i in doomed)
    report.objects, report.bytes = len(doomed), sum(i.size for i in doomed)
    if dry_run:
        return report
    ordered = sorted(doomed, key=lambda i: not i.name.endswith(layout.MANIFEST_SUFFIX))
    for info in ordered:
        try:
            store.delete(info.name, if_generation_match=info.generation)
        except ObjectNotFound:
            continue
    logger.info(
        "table %s: pruned %d archive days (%d objects)",
        table,
        len(report.days),
        report.objects,
    )
    return report


def _day_text(table: str, name: str) -> str:
    return name.removeprefix(layout.archive(table)).split("/", 1)[0]


def _archive_day(table: str, name: str) -> date:
    """The archive day of an object; a stray name sorts as the newest day."""
    try:
        return date.fromisoformat(_day_text(table, name))
    except ValueError:
        return date.max
