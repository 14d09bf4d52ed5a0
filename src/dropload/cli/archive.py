"""`loader archive prune` and `loader compact`: keep the archive small."""

from __future__ import annotations

from dataclasses import asdict

import click

from dropload.archive import prune_archive
from dropload.cli.context import AppContext
from dropload.cli.output import FORMAT_OPTION, emit
from dropload.compact import compact_archive

_PRUNE_COLUMNS = ("table", "days", "manifests", "objects", "bytes")


@click.group()
def archive() -> None:
    """Manage the archive of loaded shards."""


@archive.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    type=click.IntRange(min=0),
    help="Delete archive days more than this many days old (UTC).",
)
@click.option("--table", "tables", multiple=True, help="Only this table.")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@FORMAT_OPTION
@click.pass_obj
def prune(
    app: AppContext, older_than: int, tables: tuple[str, ...], dry_run: bool, fmt: str
) -> None:
    """Delete archived batches (shards and manifests) of old archive days.

    Only `<table>/archive/` is touched, never staging, batches or quarantine.
    Pruned batches can no longer be replayed.
    """
    names = list(tables) or list(app.config.tables)
    reports = [
        prune_archive(
            app.loader.store, app.config.table(n).name, older_than, dry_run=dry_run
        )
        for n in names
    ]
    rows = [{**asdict(r), "days": len(r.days), "day_list": r.days} for r in reports]
    emit(rows, fmt, _PRUNE_COLUMNS)


_COMPACT_COLUMNS = ("table", "days", "groups", "batches", "shards", "files", "bytes")


@click.command()
@click.option("--table", "tables", multiple=True, help="Only this table.")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    type=click.IntRange(min=0),
    help="Compact archive days at least this many days old (0: today too).",
)
@click.option("--dry-run", is_flag=True, help="Count what would merge; write nothing.")
@FORMAT_OPTION
@click.pass_obj
def compact(
    app: AppContext, tables: tuple[str, ...], older_than: int, dry_run: bool, fmt: str
) -> None:
    """Merge each archived day's small shards into a few large files.

    Manifests are rewritten so replays read the merged files; a compaction cut
    short anywhere is finished by the next run. Exits 1 when another compaction
    of the table holds its lease.
    """
    names = list(tables) or list(app.config.tables)
    reports = [
        compact_archive(
            app.loader.store,
            app.config.table(n).name,
            older_than,
            owner=app.loader.owner,
            lease_seconds=app.config.loader.lease_seconds,
            dry_run=dry_run,
        )
        for n in names
    ]
    emit([asdict(r) for r in reports], fmt, _COMPACT_COLUMNS)
