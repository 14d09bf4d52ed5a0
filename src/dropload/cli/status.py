"""`loader status`: what is staged, loaded and archived, per table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from dropload import layout
from dropload.cli.context import AppContext
from dropload.cli.output import FORMAT_OPTION, emit
from dropload.manifest import Manifest
from dropload.shard import is_shard_name
from dropload.store import Store

_COLUMNS = (
    "table",
    "staged_shards",
    "staged_bytes",
    "oldest_staged_seconds",
    "open_batches",
    "archived_batches",
    "last_job_id",
    "last_rows",
    "last_loaded_at",
)


@click.command()
@click.option("--table", "tables", multiple=True, help="Only this table.")
@FORMAT_OPTION
@click.pass_obj
def status(app: AppContext, tables: tuple[str, ...], fmt: str) -> None:
    """Staged shards and bytes, oldest staged age, last load, archived batches."""
    names = list(tables) or list(app.config.tables)
    rows = [table_status(app.loader.store, app.config.table(n).name) for n in names]
    emit(rows, fmt, _COLUMNS)


def table_status(store: Store, table: str) -> dict[str, Any]:
    """One table's status row, read from the store."""
    staged = [s for s in store.list(layout.staging(table)) if is_shard_name(s.basename)]
    now = datetime.now(UTC)
    oldest = min((s.updated for s in staged), default=None)
    manifests = [
        m
        for m in store.list(layout.archive(table))
        if m.name.endswith(layout.MANIFEST_SUFFIX)
    ]
    last = (
        Manifest.from_json(store.read(max(manifests, key=_batch_key).name))
        if manifests
        else None
    )
    return {
        "table": table,
        "staged_shards": len(staged),
        "staged_bytes": sum(s.size for s in staged),
        "oldest_staged_seconds": (now - oldest).total_seconds() if oldest else None,
        "open_batches": len(store.list(layout.intents(table))),
        "archived_batches": len(manifests),
        "last_job_id": last.job_id if last else None,
        "last_rows": last.rows if last else None,
        "last_loaded_at": last.loaded_at.isoformat() if last else None,
    }


def _batch_key(info: Any) -> str:
    return layout.basename(info.name)
