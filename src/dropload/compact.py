"""Archive compaction: merge each archived day's small shards into a few large files.

For each group of batches (one archive day, one set of partitions, one format)
the steps are, each safe to repeat:

1. write the merged parts under `<table>/archive/<day>/compact-<key>/`
   (NDJSON composed server-side, Avro rewritten), create-if-absent;
2. write the compacted manifest naming the parts and the batches they replace;
3. delete the replaced batches' shards, then their manifests.

A reader that finds a compacted manifest ignores the manifests it replaces
(`archive.read_archive`), so a kill anywhere loses no row and reads none twice;
the next run finishes step 3 and removes parts that no manifest names.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import fastavro

from dropload import layout
from dropload.archive import COMPACTED_FROM, ArchivedBatch, read_archive
from dropload.errors import ObjectExists, ObjectNotFound
from dropload.lease import Lease
from dropload.manifest import Manifest, ShardEntry
from dropload.partition import avro_records
from dropload.store.base import MAX_COMPOSE_SOURCES, ObjectInfo, Store

logger = logging.getLogger(__name__)

COMPACT_PREFIX = "compact-"
"""Batch ids of compacted batches start so."""

NDJSON_PART_BYTES = 1024**3
"""Merged NDJSON file size: far under BigQuery's limit on uncompressed files."""

AVRO_PART_BYTES = 64 * 1024**2
"""Merged Avro file size; Avro parts are rewritten in memory, so smaller."""


@dataclass
class CompactReport:
    """What one compaction did (or would do) to one table's archive."""

    table: str
    days: int = 0
    groups: int = 0
    batches: int = 0
    shards: int = 0
    files: int = 0
    bytes: int = 0


def compact_archive(
    store: Store,
    table: str,
    older_than_days: int,
    *,
    owner: str,
    lease_seconds: float,
    dry_run: bool = False,
) -> CompactReport:
    """Compact the archive days at least `older_than_days` old (0: today too).

    Runs under the table's compaction lease (`<table>/compact/lease.json`), so
    two compactions never meet; raises LeaseHeld when another one runs.
    """
    cutoff = (datetime.now(UTC) - timedelta(days=older_than_days)).date()
    lease = Lease.acquire(store, f"{table}/compact", owner, lease_seconds)
    stop = lease.keep_alive()
    try:
        return _Compaction(store, table, cutoff, dry_run).run()
    finally:
        stop.set()
        lease.release()


@dataclass
class _Compaction:
    store: Store
    table: str
    cutoff: date
    dry_run: bool

    def run(self) -> CompactReport:
        report = CompactReport(self.table)
        if not self.dry_run:
            self._finish_earlier()
        listing = {i.name: i for i in self.store.list(layout.archive(self.table))}
        days: set[str] = set()
        for day, batches in self._groups(listing):
            days.add(day)
            report.groups += 1
            report.batches += len(batches)
            report.shards += sum(len(b.manifest.shards) for b in batches)
            report.bytes += sum(b.manifest.byte_count for b in batches)
            if not self.dry_run:
                report.files += len(self._compact(day, batches, listing).shards)
        report.days = len(days)
        logger.info(
            "table %s: compacted %d shards of %d batches into %d files",
            self.table,
            report.shards,
            report.batches,
            report.files,
        )
        return report

    def _groups(
        self, listing: dict[str, ObjectInfo]
    ) -> Iterator[tuple[str, list[ArchivedBatch]]]:
        """Batches to merge: by day, then partitions and format; complete ones only."""
        grouped: dict[tuple[str, tuple[str, ...], str], list[ArchivedBatch]]
        grouped = defaultdict(list)
        for batch in read_archive(self.store, self.table):
            m = batch.manifest
            if date.fromisoformat(m.day) > self.cutoff or batch.compacted_from:
                continue
            if all(batch.prefix + s.name in listing for s in m.shards):
                grouped[(m.day, m.partitions, m.format)].append(batch)
        for (day, _, _), batches in sorted(grouped.items()):
            if sum(len(b.manifest.shards) for b in batches) > 1:
                yield day, sorted(batches, key=lambda b: b.manifest.batch_id)

    def _compact(
        self, day: str, batches: list[ArchivedBatch], listing: dict[str, ObjectInfo]
    ) -> Manifest:
        ids = [b.manifest.batch_id for b in batches]
        material = json.dumps([self.table, day, ids]).encode()
        key = hashlib.blake2s(material, digest_size=8).hexdigest()
        batch_id = COMPACT_PREFIX + key
        folder = layout.archived_batch(self.table, day, batch_id)
        fmt = batches[0].manifest.format
        sources = [
            (listing[b.prefix + s.name], s) for b in batches for s in b.manifest.shards
        ]
        if fmt == "avro":
            parts = self._rewrite_avro(folder, sources)
        else:
            parts = self._compose_ndjson(folder, key, sources)
        manifest = _merged_manifest(batches, batch_id, parts)
        try:
            self.store.write(
                layout.manifest(self.table, day, batch_id), manifest.to_json()
            )
        except ObjectExists:
            logger.debug(
                "table %s: manifest of %s written before", self.table, batch_id
            )
        self._delete_replaced(batches)
        self._delete_prefix(layout.compact(self.table, key))
        return manifest

    def _compose_ndjson(
        self, folder: str, key: str, sources: list[tuple[ObjectInfo, ShardEntry]]
    ) -> list[ShardEntry]:
        parts = []
        for number, chunk in enumerate(_by_size(sources, NDJSON_PART_BYTES)):
            name = f"{folder}part-{number:04d}.ndjson"
            scratch = f"{layout.compact(self.table, key)}{number:04d}-"
            info = self._compose_tree([i for i, _ in chunk], name, scratch)
            parts.append(_entry(info, chunk))
        return parts

    def _compose_tree(
        self, infos: list[ObjectInfo], dst: str, scratch: str
    ) -> ObjectInfo:
        """Compose more than 32 sources through intermediate objects."""
        level = 0
        while len(infos) > MAX_COMPOSE_SOURCES:
            infos = [
                self._compose_once(chunk, f"{scratch}{level}-{n:05d}")
                for n, chunk in enumerate(_chunks(infos, MAX_COMPOSE_SOURCES))
            ]
            level += 1
        return self._compose_once(infos, dst)

    def _compose_once(self, infos: Sequence[ObjectInfo], dst: str) -> ObjectInfo:
        try:
            return self.store.compose(infos, dst)
        except ObjectExists:
            existing = self.store.stat(dst)
            if existing is None:
                raise
            return existing

    def _rewrite_avro(
        self, folder: str, sources: list[tuple[ObjectInfo, ShardEntry]]
    ) -> list[ShardEntry]:
        parts: list[ShardEntry] = []
        for chunk in _by_size(sources, AVRO_PART_BYTES):
            for schema, records, members in self._avro_runs(chunk):
                name = f"{folder}part-{len(parts):04d}.avro"
                buffer = io.BytesIO()
                fastavro.writer(buffer, schema, records, codec="deflate")
                info = self._write_once(name, buffer.getvalue())
                parts.append(_entry(info, members))
        return parts

    def _avro_runs(
        self, chunk: list[tuple[ObjectInfo, ShardEntry]]
    ) -> Iterator[tuple[Any, list[Any], list[tuple[ObjectInfo, ShardEntry]]]]:
        """Consecutive shards written with one schema, with their records."""
        schema: Any = None
        records: list[Any] = []
        members: list[tuple[ObjectInfo, ShardEntry]] = []
        for info, entry in chunk:
            mine, rows = avro_records(self.store.read(info.name))
            if members and mine != schema:
                yield schema, records, members
                records, members = [], []
            schema = mine
            records.extend(rows)
            members.append((info, entry))
        if members:
            yield schema, records, members

    def _write_once(self, name: str, data: bytes) -> ObjectInfo:
        try:
            return self.store.write(name, data)
        except ObjectExists:
            existing = self.store.stat(name)
            if existing is None:
                raise
            return existing

    def _finish_earlier(self) -> None:
        """Finish step 3 of earlier runs; drop parts and scratch no manifest names."""
        listing = self.store.list(layout.archive(self.table))
        manifests = {i.name for i in listing if i.name.endswith(layout.MANIFEST_SUFFIX)}
        live = read_archive(self.store, self.table)
        replaced = [(b.manifest.day, bid) for b in live for bid in b.compacted_from]
        doomed = [
            info
            for info in listing
            if _replaced(self.table, info.name, replaced)
            or _orphan_part(self.table, info.name, manifests)
        ]
        self._delete(doomed)
        for info in self.store.list(f"{self.table}/compact/"):
            if info.name != layout.lease(f"{self.table}/compact"):
                self._delete([info])

    def _delete_replaced(self, batches: list[ArchivedBatch]) -> None:
        for batch in batches:
            self._delete(self.store.list(batch.prefix))
        for batch in batches:
            self._delete([_named(batch.name)])

    def _delete_prefix(self, prefix: str) -> None:
        self._delete(self.store.list(prefix))

    def _delete(self, infos: Sequence[ObjectInfo]) -> None:
        """Shards before manifests, so no manifest names a missing shard."""
        ordered = sorted(infos, key=lambda i: i.name.endswith(layout.MANIFEST_SUFFIX))
        for info in ordered:
            try:
                self.store.delete(info.name)
            except ObjectNotFound:
                continue


def _replaced(table: str, name: str, replaced: list[tuple[str, str]]) -> bool:
    for day, batch_id in replaced:
        if name.startswith(layout.archived_batch(table, day, batch_id)):
            return True
        if name == layout.manifest(table, day, batch_id):
            return True
    return False


def _orphan_part(table: str, name: str, manifests: set[str]) -> bool:
    """A file of a compacted batch whose manifest was never written."""
    rest = name.removeprefix(layout.archive(table)).split("/")
    if len(rest) != 3 or not rest[1].startswith(COMPACT_PREFIX):
        return False
    return layout.manifest(table, rest[0], rest[1]) not in manifests


def _named(name: str) -> ObjectInfo:
    return ObjectInfo(name=name, size=0, generation=0, updated=datetime.now(UTC))


def _entry(
    info: ObjectInfo, members: Sequence[tuple[ObjectInfo, ShardEntry]]
) -> ShardEntry:
    rows = [e.rows for _, e in members]
    parts = {p for _, e in members for p in (e.partitions or ())}
    return ShardEntry(
        name=info.basename,
        generation=info.generation,
        size=info.size,
        rows=None if None in rows else sum(r or 0 for r in rows),
        partitions=tuple(sorted(parts)) if parts else None,
    )


def _merged_manifest(
    batches: list[ArchivedBatch], batch_id: str, parts: list[ShardEntry]
) -> Manifest:
    first = batches[0].manifest
    return Manifest(
        table=first.table,
        destination=first.destination,
        batch_id=batch_id,
        job_id=first.job_id,
        attempt=first.attempt,
        day=first.day,
        shards=tuple(parts),
        rows=sum(b.manifest.rows for b in batches),
        byte_count=sum(p.size for p in parts),
        format=first.format,
        claimed_at=min(b.manifest.claimed_at for b in batches),
        loaded_at=max(b.manifest.loaded_at for b in batches),
        partitions=first.partitions,
        extra={
            COMPACTED_FROM: [b.manifest.batch_id for b in batches],
            "job_ids": [b.manifest.job_id for b in batches],
            "source_shards": sum(len(b.manifest.shards) for b in batches),
        },
    )


def _by_size(
    sources: list[tuple[ObjectInfo, ShardEntry]], limit: int
) -> Iterator[list[tuple[ObjectInfo, ShardEntry]]]:
    chunk: list[tuple[ObjectInfo, ShardEntry]] = []
    size = 0
    for item in sources:
        if chunk and size + item[0].size > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item[0].size
    if chunk:
        yield chunk


def _chunks(items: list[ObjectInfo], size: int) -> Iterator[list[ObjectInfo]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
