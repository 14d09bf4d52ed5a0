"""`loader run-once` and `loader serve`."""

from __future__ import annotations

import click

from dropload.cli.context import AppContext
from dropload.cli.output import FORMAT_OPTION, emit
from dropload.loader.schedule import serve as serve_forever

_COLUMNS = ("table", "status", "jobs", "batches", "shards", "rows", "bytes", "error")


@click.command("run-once")
@click.option(
    "--table",
    "tables",
    multiple=True,
    help="Only this table (repeatable); default every configured table.",
)
@FORMAT_OPTION
@click.pass_obj
def run_once(app: AppContext, tables: tuple[str, ...], fmt: str) -> None:
    """One tick of every table: claim staged shards, load, archive.

    Exits 1 when a table failed (named on stderr), 0 otherwise.
    """
    reports = app.loader.run_once(list(tables))
    rows = [{**vars(r), "jobs": len(r.jobs), "job_ids": list(r.jobs)} for r in reports]
    emit(rows, fmt, _COLUMNS)
    failed = [r for r in reports if r.failed]
    for report in failed:
        click.echo(f"table {report.table}: {report.error}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


@click.command()
@click.pass_obj
def serve(app: AppContext) -> None:
    """Tick every table at its interval until SIGTERM or SIGINT."""
    for name in app.config.tables:
        app.loader.fields(name)
    serve_forever(app.loader)
