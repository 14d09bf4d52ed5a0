"""`loader run-once` and `loader serve`."""

from __future__ import annotations

import click

from dropload.cli.context import AppContext
from dropload.cli.output import FORMAT_OPTION, emit
from dropload.loader.schedule import serve as serve_forever
from dropload.metrics import start_metrics_server

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
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics on this port (config [metrics] port).",
)
@click.option(
    "--metrics-host",
    default=None,
    help="Address the metrics port binds (config [metrics] host; 127.0.0.1).",
)
@click.pass_obj
def serve(app: AppContext, metrics_port: int | None, metrics_host: str | None) -> None:
    """Tick every table at its interval until SIGTERM or SIGINT."""
    settings = app.config.metrics
    port = metrics_port if metrics_port is not None else settings.port
    server = None
    if port is not None:
        metrics = app.enable_metrics()
        server, _ = start_metrics_server(metrics, metrics_host or settings.host, port)
    try:
        for name in app.config.tables:
            app.loader.fields(name)
        serve_forever(app.loader)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
