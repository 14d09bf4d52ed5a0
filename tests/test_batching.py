"""Batches within a load job's limits: oldest first, deterministic, never mixed."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dropload import Loader, layout
from dropload.batching import (
    COMPRESSION_METADATA,
    MAX_SHARDS_PER_BATCH,
    Limits,
    plan_batches,
)
from dropload.shard import new_shard_name
from dropload.store.base import ObjectInfo
from dropload.warehouse import base
from embedded import TABLE, make_project, staged, table_ids
from seams import SeamWarehouse

START = datetime(2026, 1, 26, tzinfo=UTC)


def _info(n: int, size: int = 100, gzip: bool = False) -> ObjectInfo:
    name = new_shard_name("ndjson", START + timedelta(seconds=n))
    metadata = {COMPRESSION_METADATA: "gzip"} if gzip else {}
    return ObjectInfo(f"t/staging/{name}", size, n + 1, START, metadata=metadata)


def test_limits_pinned() -> None:
    """Batches: 10,000 shards, 15 TB; a gzip'd file at most 4 GB."""
    assert MAX_SHARDS_PER_BATCH == 10_000
    assert Limits().shards == 10_000
    assert Limits().bytes == base.MAX_BYTES_PER_JOB == 15 * 10**12
    assert base.MAX_GZIP_FILE_BYTES == 4 * 10**9


def test_batches_close_at_the_shard_and_byte_limits_oldest_first() -> None:
    """Shards pack in name (time) order; a batch closes before a limit breaks."""
    shards = [_info(n, size=40) for n in range(10)]
    batches = plan_batches(list(reversed(shards)), Limits(shards=4, bytes=100))

    assert [[s.generation for s in b] for b in batches] == [
        [1, 2],
        [3, 4],
        [5, 6],
        [7, 8],
        [9, 10],
    ]
    batches = plan_batches(shards, Limits(shards=3, bytes=10**6))
    assert [len(b) for b in batches] == [3, 3, 3, 1]


def test_gzip_and_plain_shards_never_share_a_batch() -> None:
    """Gzip'd and plain shards go to separate batches, ordered by oldest shard."""
    shards = [_info(n, gzip=n % 3 == 0) for n in range(9)]
    batches = plan_batches(shards, Limits(shards=100, bytes=10**6))

    kinds = [{s.metadata.get(COMPRESSION_METADATA) for s in b} for b in batches]
    assert kinds == [{"gzip"}, {None}]
    assert [s.generation for s in batches[0]] == [1, 4, 7]


def test_the_same_listing_gives_the_same_batches() -> None:
    """A repeated tick over the same listing (in any order) rebuilds the batches."""
    shards = [_info(n, size=n * 7 % 50) for n in range(200)]
    limits = Limits(shards=17, bytes=400)
    first = plan_batches(shards, limits)
    again = plan_batches(list(reversed(shards)), limits)

    assert [[s.name for s in b] for b in first] == [[s.name for s in b] for b in again]
    assert all(len(b) <= 17 and sum(s.size for s in b) <= 400 for b in first)


@pytest.mark.slow
def test_12000_staged_shards_load_in_batches_within_limits(tmp_path: Path) -> None:
    """12,000 shards load as 10,000 + 2,000 (oldest first), every record once."""
    project = make_project(tmp_path)
    store = project.store()
    folder = store.root / layout.staging(TABLE)
    folder.mkdir(parents=True)
    names = []
    for n in range(12_000):
        names.append(new_shard_name("ndjson", START + timedelta(milliseconds=n)))
        _write_file(folder / names[-1], b'{"id": %d}\n' % n)
    warehouse = SeamWarehouse(project.warehouse())

    [report] = Loader(project.config, warehouse=warehouse).run_once()

    assert (report.status, report.batches, report.shards) == ("loaded", 2, 12_000)
    first, second = (_claimed_files(project.store_root, r) for r in warehouse.loads)
    assert sorted(first) == names[:10_000]
    assert sorted(second) == names[10_000:]
    assert staged(store) == []
    assert table_ids(project.warehouse()) == list(range(12_000))


def _write_file(path: Path, data: bytes) -> None:
    """Put a shard straight into the store folder (no fsync: speed only)."""
    with open(path, "wb") as handle:
        handle.write(data)


def _claimed_files(root: Path, request: base.LoadRequest) -> list[str]:
    """Shards the job read: its batch folder, archived after the load."""
    batch = Path(request.source_uris[0]).parent.name
    archive = root / TABLE / "archive"
    return [f for day in os.listdir(archive) for f in _listing(archive / day / batch)]


def _listing(folder: Path) -> list[str]:
    return os.listdir(folder) if folder.is_dir() else []
