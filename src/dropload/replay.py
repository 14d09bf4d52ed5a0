"""Replays of archived batches: the fewest load jobs the limits allow.

A replay reads only the archive (and writes its own temporary files under
`<table>/replay/<key>/`): staging, batches and intents are never touched. Its
job ids derive from the request and the batches it reads, so running the same
replay again resumes it instead of loading twice.

Which rows a replay reads: on a time-partitioned table, every archived row of
the partitions that overlap `--from`..`--to` (whatever day they were loaded);
on an unpartitioned table, every batch archived on those days.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

from dropload import layout
from dropload.archive import ArchivedBatch, batch_partitions, read_archive
from dropload.config import DESTINATION, Config, TableConfig
from dropload.errors import ReplayRefused
from dropload.partition import MAX_PARTITIONS_PER_JOB, PartitionSpec, partition_spec
from dropload.schema import SchemaField
from dropload.store.base import Store
from dropload.warehouse.base import (
    MAX_BYTES_PER_JOB,
    MAX_FILES_PER_JOB,
    MAX_SOURCE_URIS,
)

logger = logging.getLogger(__name__)

REPLAY_JOB_PREFIX = "dropload-replay-"
"""Every replay job id starts so; live loads start `dropload-<table>-`."""

MODES = ("append", "replace")


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay, where to, and how."""

    table: str
    start: date
    end: date
    into: str | None = None
    """`dataset.table` to load into instead of the table's destination."""
    mode: str = "append"
    label: str = ""
    """Makes a new request of an old one, to run it again on purpose."""


@dataclass(frozen=True)
class Split:
    """The rows of one archived batch that fall in some partitions.

    Written shard by shard under `folder` before the jobs run, because a load
    into `table$P` must hold only rows of partition P.
    """

    batch: ArchivedBatch
    partitions: frozenset[str]
    folder: str


@dataclass(frozen=True)
class Source:
    """One source URI of a replay job: a batch's archive folder or a split."""

    name: str
    """Store name, a wildcard over one folder."""
    batch: ArchivedBatch
    split: Split | None = None

    @property
    def partitions(self) -> tuple[str, ...]:
        """Partitions the whole batch covers."""
        return self.batch.manifest.partitions

    @property
    def rows(self) -> int:
        """Rows read (for a split: at most this many)."""
        return self.batch.manifest.rows

    @property
    def shards(self) -> int:
        """Files read (for a split: at most this many)."""
        return len(self.batch.manifest.shards)

    @property
    def size(self) -> int:
        """Bytes read (for a split: at most this many)."""
        return self.batch.manifest.byte_count


@dataclass
class PlannedJob:
    """One replay load job."""

    base_id: str
    destination: str
    partition: str | None
    write_disposition: str
    sources: list[Source] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """True when rows and bytes are exact (no source is a split)."""
        return all(s.split is None for s in self.sources)

    def summary(self) -> dict[str, object]:
        """The job as a report row."""
        target = self.destination + (f"${self.partition}" if self.partition else "")
        return {
            "job_id": f"{self.base_id}-1",
            "destination": target,
            "write_disposition": self.write_disposition,
            "source_uris": len(self.sources),
            "batches": len({s.batch.manifest.batch_id for s in self.sources}),
            "shards": sum(s.shards for s in self.sources),
            "rows": sum(s.rows for s in self.sources),
            "bytes": sum(s.size for s in self.sources),
            "exact": self.exact,
        }


@dataclass
class ReplayPlan:
    """The batches a replay reads, the splits it writes and the jobs it runs."""

    request: ReplayRequest
    table: TableConfig
    """The table's config, its destination set to where the replay loads."""
    key: str
    spec: PartitionSpec | None
    batches: list[ArchivedBatch]
    splits: list[Split]
    jobs: list[PlannedJob]

    @property
    def temp_prefix(self) -> str:
        """Where the replay's own temporary files go."""
        return layout.replay(self.table.name, self.key)


@dataclass(frozen=True)
class _Unit:
    """One batch read for one group (a partition, or the whole replay)."""

    group: str | None
    batch: ArchivedBatch
    keep: frozenset[str] | None
    """Partitions to keep; None reads the whole batch."""


def plan_replay(
    store: Store,
    config: Config,
    fields: Sequence[SchemaField],
    request: ReplayRequest,
) -> ReplayPlan:
    """Find the batches of the request in the archive and lay out the jobs.

    Raises ReplayRefused for a bad range, mode or target, ConfigError for an
    unknown table, ArchiveError for an unreadable manifest.
    """
    table = _target_table(config, request)
    spec = partition_spec(table, fields)
    _check_request(config, table, spec, request)
    archive = read_archive(store, table.name)
    _check_formats(table, archive)
    parts = {b.manifest.batch_id: _partitions(store, table, fields, b) for b in archive}
    units = list(_units(spec, request, archive, parts))
    key = _key(request, table, units)
    splits: dict[tuple[str | None, str], Split] = {}
    jobs = _pack(request, table, key, units, splits)
    batches = {u.batch.manifest.batch_id: u.batch for u in units}
    plan = ReplayPlan(
        request, table, key, spec, list(batches.values()), list(splits.values()), jobs
    )
    logger.info(
        "table %s: replay %s reads %d batches in %d jobs",
        table.name,
        key,
        len(plan.batches),
        len(jobs),
    )
    return plan


def _target_table(config: Config, request: ReplayRequest) -> TableConfig:
    table = config.table(request.table)
    if request.into is None:
        return table
    if not DESTINATION.match(request.into):
        raise ReplayRefused(table.name, f"--into {request.into!r} is not dataset.table")
    return table.model_copy(update={"destination": request.into})


def _check_request(
    config: Config,
    table: TableConfig,
    spec: PartitionSpec | None,
    request: ReplayRequest,
) -> None:
    if request.mode not in MODES:
        raise ReplayRefused(table.name, f"mode must be one of {', '.join(MODES)}")
    if request.start > request.end:
        raise ReplayRefused(table.name, "--from is after --to")
    if request.mode != "replace":
        return
    if spec is None and request.into is None:
        raise ReplayRefused(
            table.name,
            "replace needs a time-partitioned table (it replaces the partitions"
            " it covers); on an unpartitioned table give --into DATASET.TABLE"
            " naming a fresh table",
        )
    if spec is not None and spec.field is None and config.warehouse.kind == "duckdb":
        raise ReplayRefused(
            table.name,
            "the DuckDB warehouse replaces partitions of column-partitioned tables"
            " only; use --mode append",
        )


def _check_formats(table: TableConfig, archive: list[ArchivedBatch]) -> None:
    """A job reads one source format: the table's."""
    for batch in archive:
        if batch.manifest.format != table.format:
            raise ReplayRefused(
                table.name,
                f"batch {batch.manifest.batch_id} is {batch.manifest.format} but the"
                f" table's format is now {table.format}; move that batch's manifest"
                " out of the archive or set the format back for the replay",
            )


def _partitions(
    store: Store,
    table: TableConfig,
    fields: Sequence[SchemaField],
    batch: ArchivedBatch,
) -> frozenset[str]:
    """The batch's partitions from its manifest, or read from its shards."""
    manifest = batch.manifest
    if manifest.partitions or table.time_partitioning is None:
        return frozenset(manifest.partitions)
    logger.warning(
        "table %s: manifest of batch %s names no partitions; reading its shards",
        table.name,
        manifest.batch_id,
    )
    found = batch_partitions(
        store, table, fields, manifest.shards, (batch.prefix,), manifest.loaded_at
    )
    return frozenset(found)


def _units(
    spec: PartitionSpec | None,
    request: ReplayRequest,
    archive: list[ArchivedBatch],
    parts: dict[str, frozenset[str]],
) -> Iterator[_Unit]:
    if spec is None:
        for batch in archive:
            if request.start <= date.fromisoformat(batch.manifest.day) <= request.end:
                yield _Unit(None, batch, None)
        return
    wanted = {
        bid: frozenset(p for p in ps if spec.covers(p, request.start, request.end))
        for bid, ps in parts.items()
    }
    if request.mode == "append":
        for batch in archive:
            keep = wanted[batch.manifest.batch_id]
            whole = keep == parts[batch.manifest.batch_id]
            if keep:
                yield _Unit(None, batch, None if whole else keep)
        return
    for partition in sorted(set().union(*wanted.values())):
        for batch in archive:
            covered = parts[batch.manifest.batch_id]
            if partition in covered:
                whole = covered == {partition}
                yield _Unit(partition, batch, None if whole else frozenset({partition}))


def _key(request: ReplayRequest, table: TableConfig, units: list[_Unit]) -> str:
    ids = sorted({u.batch.manifest.batch_id for u in units})
    material = [
        table.name,
        table.destination,
        request.mode,
        request.start.isoformat(),
        request.end.isoformat(),
        request.label,
        ids,
    ]
    digest = hashlib.blake2s(json.dumps(material).encode(), digest_size=6)
    return digest.hexdigest()


def _pack(
    request: ReplayRequest,
    table: TableConfig,
    key: str,
    units: list[_Unit],
    splits: dict[tuple[str | None, str], Split],
) -> list[PlannedJob]:
    """Units into jobs: one group per partition (replace) or one group in all."""
    jobs: list[PlannedJob] = []
    for group in dict.fromkeys(u.group for u in units):
        sources = [_source(table, key, u, splits) for u in units if u.group == group]
        jobs.extend(_group_jobs(request, table, key, group, sources))
    return jobs


def _source(
    table: TableConfig,
    key: str,
    unit: _Unit,
    splits: dict[tuple[str | None, str], Split],
) -> Source:
    suffix = f"*.{unit.batch.manifest.format}"
    if unit.keep is None:
        return Source(unit.batch.prefix + suffix, unit.batch)
    bid = unit.batch.manifest.batch_id
    folder = f"{layout.replay(table.name, key)}{unit.group or 'range'}/{bid}/"
    split = splits.setdefault((unit.group, bid), Split(unit.batch, unit.keep, folder))
    return Source(folder + suffix, unit.batch, split)


def _group_jobs(
    request: ReplayRequest,
    table: TableConfig,
    key: str,
    group: str | None,
    sources: list[Source],
) -> list[PlannedJob]:
    replace = request.mode == "replace"
    jobs: list[PlannedJob] = []
    for number, chunk in enumerate(_chunks(sources), start=1):
        first = number == 1
        name = group if group is not None else "all"
        jobs.append(
            PlannedJob(
                base_id=f"{REPLAY_JOB_PREFIX}{table.name}-{key}-{name}-{number:04d}",
                destination=table.destination,
                partition=group,
                write_disposition="WRITE_TRUNCATE"
                if replace and first
                else "WRITE_APPEND",
                sources=chunk,
            )
        )
    return jobs


def _chunks(sources: list[Source]) -> Iterator[list[Source]]:
    """Sources cut at BigQuery's per-job limits: URIs, files, bytes, partitions."""
    chunk: list[Source] = []
    files = size = 0
    partitions: set[str] = set()
    for source in sources:
        mine = source.split.partitions if source.split else source.partitions
        full = (
            len(chunk) >= MAX_SOURCE_URIS
            or files + source.shards > MAX_FILES_PER_JOB
            or size + source.size > MAX_BYTES_PER_JOB
            or len(partitions | set(mine)) > MAX_PARTITIONS_PER_JOB
        )
        if chunk and full:
            yield chunk
            chunk, files, size, partitions = [], 0, 0, set()
        chunk.append(source)
        files, size = files + source.shards, size + source.size
        partitions.update(mine)
    if chunk:
        yield chunk


def describe_batches(plan: ReplayPlan) -> list[dict[str, object]]:
    """One report row per batch the replay reads."""
    split_ids = {s.batch.manifest.batch_id for s in plan.splits}
    return [
        {
            "batch_id": b.manifest.batch_id,
            "day": b.manifest.day,
            "shards": len(b.manifest.shards),
            "rows": b.manifest.rows,
            "bytes": b.manifest.byte_count,
            "partitions": ",".join(b.manifest.partitions),
            "split": b.manifest.batch_id in split_ids,
        }
        for b in plan.batches
    ]
