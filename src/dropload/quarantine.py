"""Shards set aside because a load failed on their data, and their error notes.

A quarantined shard lives at `<table>/quarantine/<shard>` beside
`<shard>.error.json` (the error, the job id and the time). Releasing it moves it
back to staging, where the next tick loads it with the rest.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from dropload import layout
from dropload.errors import ObjectExists, ObjectNotFound
from dropload.store.base import ObjectInfo, Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuarantinedShard:
    """One shard in a table's quarantine, with its note."""

    table: str
    shard: str
    size: int
    error: str
    job_id: str
    quarantined_at: str


def note_name(table: str, shard: str) -> str:
    """The error note of a quarantined shard."""
    return layout.quarantine(table) + shard + layout.ERROR_SUFFIX


def quarantine_shard(
    store: Store, src: ObjectInfo, *, error: str, job_id: str, now: datetime
) -> None:
    """Move `src` (a claimed shard) into its table's quarantine with a note.

    The note goes first, so a shard in quarantine always says why; a repeat
    after a crash finds the note and the moved shard and changes nothing.
    """
    table = src.name.split("/", 1)[0]
    note = {"shard": src.basename, "error": error, "job_id": job_id}
    body = json.dumps({**note, "quarantined_at": now.isoformat()}, indent=1)
    with contextlib.suppress(ObjectExists):
        store.write(note_name(table, src.basename), body.encode())
    store.move(src, layout.quarantine(table) + src.basename)
    # The error may quote row values: it goes to the note, never to the log.
    logger.warning(
        "table %s: shard %s quarantined after job %s; the reason is in %s",
        table,
        src.basename,
        job_id,
        note_name(table, src.basename),
    )


def list_quarantined(store: Store, table: str) -> list[QuarantinedShard]:
    """The table's quarantined shards, oldest name first."""
    listed = store.list(layout.quarantine(table))
    notes = {i.name for i in listed if i.name.endswith(layout.ERROR_SUFFIX)}
    found = []
    for info in listed:
        if info.name.endswith(layout.ERROR_SUFFIX):
            continue
        note = _read_note(store, info.name + layout.ERROR_SUFFIX, notes)
        found.append(
            QuarantinedShard(
                table=table,
                shard=info.basename,
                size=info.size,
                error=str(note.get("error", "no error note")),
                job_id=str(note.get("job_id", "")),
                quarantined_at=str(note.get("quarantined_at", "")),
            )
        )
    return found


def release_shard(store: Store, table: str, shard: str) -> None:
    """Move a quarantined shard back to staging and drop its note.

    Raises ObjectNotFound when the table's quarantine holds no such shard.
    """
    src = store.stat(layout.quarantine(table) + shard)
    if src is None:
        raise ObjectNotFound(layout.quarantine(table) + shard)
    store.move(src, layout.staging(table) + shard)
    with contextlib.suppress(ObjectNotFound):
        store.delete(note_name(table, shard))
    logger.info("table %s: shard %s released to staging", table, shard)


def _read_note(store: Store, name: str, notes: set[str]) -> dict[str, object]:
    if name not in notes:
        return {}
    try:
        raw = json.loads(store.read(name))
    except (ObjectNotFound, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}
