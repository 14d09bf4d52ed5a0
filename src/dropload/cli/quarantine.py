"""`loader quarantine list` and `loader quarantine release SHARD...`."""

from __future__ import annotations

from dataclasses import asdict

import click

from dropload.cli.context import AppContext
from dropload.cli.output import FORMAT_OPTION, emit
from dropload.errors import ObjectNotFound
from dropload.quarantine import list_quarantined, release_shard

_COLUMNS = ("table", "shard", "size", "job_id", "quarantined_at", "error")


@click.group()
def quarantine() -> None:
    """Shards set aside because a load failed on their data."""


@quarantine.command("list")
@click.option("--table", "tables", multiple=True, help="Only this table.")
@FORMAT_OPTION
@click.pass_obj
def list_command(app: AppContext, tables: tuple[str, ...], fmt: str) -> None:
    """Every quarantined shard with the error that put it there."""
    names = [app.config.table(n).name for n in tables or app.config.tables]
    store = app.loader.store
    rows = [asdict(q) for name in names for q in list_quarantined(store, name)]
    emit(rows, fmt, _COLUMNS)


@quarantine.command()
@click.option("--table", "tables", multiple=True, help="Look only in this table.")
@click.argument("shards", nargs=-1, required=True)
@click.pass_obj
def release(app: AppContext, tables: tuple[str, ...], shards: tuple[str, ...]) -> None:
    """Move SHARDS (base names) back to staging; the next tick loads them.

    Exits 1 when a shard is in no table's quarantine (the others are released).
    """
    names = [app.config.table(n).name for n in tables or app.config.tables]
    missing = [s for s in shards if not _release(app, names, s.rsplit("/", 1)[-1])]
    for shard in missing:
        click.echo(
            f"shard {shard}: not in the quarantine of {', '.join(names)}", err=True
        )
    if missing:
        raise click.exceptions.Exit(1)


def _release(app: AppContext, tables: list[str], shard: str) -> bool:
    for table in tables:
        try:
            release_shard(app.loader.store, table, shard)
        except ObjectNotFound:
            continue
        click.echo(f"table {table}: released {shard} to staging", err=True)
        return True
    return False
