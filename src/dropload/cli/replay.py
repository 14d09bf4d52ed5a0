"""`loader replay`: load archived batches again, for backfills and rebuilt tables."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import click

from dropload.cli.context import AppContext
from dropload.cli.output import FORMAT_OPTION, emit
from dropload.errors import ReplayRefused
from dropload.replay import ReplayPlan, ReplayRequest, describe_batches
from dropload.replay import plan_replay as make_plan
from dropload.replay_jobs import ReplayReport, run_replay
from dropload.schema import load_schema_file

_DATE = click.DateTime(formats=["%Y-%m-%d"])
_BATCH_COLUMNS = ("batch_id", "day", "shards", "rows", "bytes", "partitions", "split")
_JOB_COLUMNS = (
    "job_id",
    "destination",
    "write_disposition",
    "source_uris",
    "batches",
    "shards",
    "rows",
    "bytes",
)


@click.command()
@click.option("--table", required=True, help="The configured table to replay.")
@click.option("--from", "start", required=True, type=_DATE, help="First day.")
@click.option("--to", "end", required=True, type=_DATE, help="Last day (inclusive).")
@click.option("--into", default=None, help="Load into DATASET.TABLE instead.")
@click.option(
    "--mode",
    type=click.Choice(["append", "replace"]),
    default="append",
    show_default=True,
    help="append rows, or replace the partitions covered (idempotent).",
)
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Schema file to load with (default: the table's), e.g. with new columns.",
)
@click.option("--label", default="", help="Run an identical replay again, as new.")
@click.option("--dry-run", is_flag=True, help="List batches and jobs; load nothing.")
@FORMAT_OPTION
@click.pass_obj
def replay(
    app: AppContext,
    table: str,
    start: datetime,
    end: datetime,
    into: str | None,
    mode: str,
    schema_path: str | None,
    label: str,
    dry_run: bool,
    fmt: str,
) -> None:
    """Replay the archived batches of a date range.

    On a time-partitioned table the range selects partitions: every archived row
    of the partitions overlapping it is read, whatever day it was loaded. On an
    unpartitioned table it selects the days batches were archived. Exits 0 when
    every job succeeded, 1 when one failed or is still running, 2 when refused.
    """
    loader = app.loader
    fields = load_schema_file(schema_path) if schema_path else loader.fields(table)
    request = ReplayRequest(table, _day(start), _day(end), into, mode, label)
    try:
        plan = make_plan(loader.store, app.config, fields, request)
        if dry_run:
            _show_plan(plan, fmt)
            return
        report = run_replay(
            plan, loader.store, loader.warehouse, app.config, fields, progress=True
        )
    except ReplayRefused as exc:
        raise click.UsageError(str(exc)) from None
    _show_report(report, fmt)
    if report.status in ("failed", "running"):
        click.echo(f"table {table}: {report.error}", err=True)
        raise click.exceptions.Exit(1)


def _day(value: datetime) -> date:
    return value.date()


def _show_plan(plan: ReplayPlan, fmt: str) -> None:
    batches = describe_batches(plan)
    jobs = [job.summary() for job in plan.jobs]
    totals = {
        "table": plan.table.name,
        "replay": plan.key,
        "batches": len(batches),
        "shards": sum(int(str(b["shards"])) for b in batches),
        "rows": sum(int(str(b["rows"])) for b in batches),
        "bytes": sum(int(str(b["bytes"])) for b in batches),
        "splits": len(plan.splits),
        "jobs": len(jobs),
    }
    if fmt == "json":
        click.echo(json.dumps({**totals, "batch_list": batches, "job_list": jobs}))
        return
    click.echo(" ".join(f"{k}={v}" for k, v in totals.items()))
    emit(batches, fmt, _BATCH_COLUMNS)
    click.echo("")
    emit(jobs, fmt, _JOB_COLUMNS)
    if plan.splits:
        click.echo(
            f"{len(plan.splits)} batches span partitions outside a job's target and"
            " are split first; their rows and bytes are upper bounds"
        )


def _show_report(report: ReplayReport, fmt: str) -> None:
    if fmt == "json":
        body: dict[str, Any] = {
            "table": report.table,
            "replay": report.key,
            "status": report.status,
            "rows": report.rows,
            "error": report.error,
            "jobs": report.jobs,
        }
        click.echo(json.dumps(body, default=str))
        return
    click.echo(
        f"table {report.table}: replay {report.key} {report.status},"
        f" {report.rows} rows in {len(report.jobs)} jobs"
    )
    if report.jobs:
        emit(report.jobs, fmt, ("job_id", "destination", "state", "rows", "error"))
