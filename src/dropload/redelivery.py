"""Spooled shards that reached the store twice: find them before they load twice.

A writer whose upload did reach the store but whose answer was lost keeps the
shard in its spool and uploads it again later, marked `dropload-spooled=1`. If
the first copy was claimed in between, create-if-absent cannot refuse the second.
The loader looks for such a shard's name in the open batches and in the archive
from the shard's day onwards (its name carries its time), and in the quarantine.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from dropload import layout
from dropload.errors import ObjectNotFound
from dropload.shard import shard_time
from dropload.stager.spool import SPOOLED_METADATA
from dropload.store.base import ObjectInfo, Store

logger = logging.getLogger(__name__)

CLOCK_SKEW_DAYS = 1
"""A writer's clock may run ahead of the loader's: look one day further back."""


def is_spooled(info: ObjectInfo) -> bool:
    """True for a shard a writer uploaded late from its spool."""
    return info.metadata.get(SPOOLED_METADATA) == "1"


def seen_before(
    store: Store, table: str, staged: Sequence[ObjectInfo], now: datetime
) -> list[ObjectInfo]:
    """The spooled shards of `staged` whose name was claimed already.

    Open batches are listed before the archive: a shard moves from one to the
    other copy-first, so it is seen in at least one of the two listings.
    """
    spooled = [s for s in staged if is_spooled(s)]
    if not spooled:
        return []
    known = {i.basename for i in store.list(layout.batches(table))}
    known |= {i.basename for i in store.list(layout.quarantine(table))}
    first = min(shard_time(s.basename) for s in spooled)
    for day in _days(first - timedelta(days=CLOCK_SKEW_DAYS), now):
        known |= {i.basename for i in store.list(layout.archive_day(table, day))}
    return [s for s in spooled if s.basename in known]


def drop_seen(
    store: Store, table: str, staged: Sequence[ObjectInfo], now: datetime
) -> list[ObjectInfo]:
    """Delete the spooled copies `seen_before` finds; returns the shards left."""
    seen = seen_before(store, table, staged, now)
    for info in seen:
        with contextlib.suppress(ObjectNotFound):
            store.delete(info.name, if_generation_match=info.generation)
        logger.warning(
            "table %s: shard %s uploaded again from a spool; dropped, its first"
            " copy was claimed already",
            table,
            info.basename,
        )
    return [s for s in staged if s not in seen]


def _days(start: datetime, end: datetime) -> list[str]:
    days = []
    moment = start
    while layout.day_of(moment) <= layout.day_of(end):
        days.append(layout.day_of(moment))
        moment += timedelta(days=1)
    return days
