"""Split a table's staged shards into batches that one load job each can take.

Oldest shards first (names start with their time), gzip'd and plain shards never
in one batch, and every batch within BigQuery's per-job limits. The split only
depends on the listing, so a tick that is repeated rebuilds the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dropload.store.base import ObjectInfo
from dropload.warehouse.base import (
    MAX_BYTES_PER_JOB,
    MAX_FILES_PER_JOB,
    MAX_SOURCE_URIS,
)

MAX_SHARDS_PER_BATCH = 10_000
"""Shards one batch claims: bounds a tick's moves, and lets a batch be named by
one URI per shard (BigQuery takes at most 10,000 source URIs)."""

COMPRESSION_METADATA = "dropload-compression"
"""Object metadata naming a shard's compression (`gzip`); absent means plain."""


@dataclass(frozen=True)
class Limits:
    """What one batch may hold."""

    shards: int = min(MAX_SHARDS_PER_BATCH, MAX_SOURCE_URIS, MAX_FILES_PER_JOB)
    bytes: int = MAX_BYTES_PER_JOB


def compression(info: ObjectInfo) -> str:
    """`gzip` for a gzip'd shard, else `none`."""
    return "gzip" if info.metadata.get(COMPRESSION_METADATA) == "gzip" else "none"


def plan_batches(
    staged: Sequence[ObjectInfo], limits: Limits | None = None
) -> list[list[ObjectInfo]]:
    """Batches of `staged`, oldest first, each within `limits`.

    Within each kind (gzip'd or plain) a batch closes when the next shard
    would break a limit; batches come in the order of their oldest shard.
    """
    limits = limits or Limits()
    ordered = sorted(staged, key=lambda i: i.name)
    batches: list[list[ObjectInfo]] = []
    for kind in ("none", "gzip"):
        batches.extend(_pack([i for i in ordered if compression(i) == kind], limits))
    return sorted(batches, key=lambda batch: batch[0].name)


def _pack(shards: Sequence[ObjectInfo], limits: Limits) -> list[list[ObjectInfo]]:
    batches: list[list[ObjectInfo]] = []
    current: list[ObjectInfo] = []
    size = 0
    for info in shards:
        if current and (
            len(current) >= limits.shards or size + info.size > limits.bytes
        ):
            batches.append(current)
            current, size = [], 0
        current.append(info)
        size += info.size
    if current:
        batches.append(current)
    return batches
