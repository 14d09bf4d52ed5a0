"""`loader quota`: load jobs per table in the last 24 hours, against the budget."""

from __future__ import annotations

from dataclasses import asdict

import click

from dropload.cli.context import AppContext
from dropload.cli.output import FORMAT_OPTION, emit
from dropload.quota import (
    LEVEL_EXIT_CODES,
    Budget,
    QuotaRow,
    quota_row,
    read_pause,
    worst_level,
)

_COLUMNS = (
    "table",
    "jobs",
    "succeeded",
    "failed",
    "ours",
    "others",
    "budget",
    "share_of_limit",
    "interval_minutes",
    "projected",
    "paused_until",
    "level",
)


@click.command()
@click.option("--table", "tables", multiple=True, help="Only this table.")
@FORMAT_OPTION
@click.pass_obj
def quota(app: AppContext, tables: tuple[str, ...], fmt: str) -> None:
    """Load jobs per table in the last 24 hours (failed and other tools' ones too).

    Shows the budget, the share of BigQuery's 1,500 used, the jobs a day at the
    current interval and a level. Exits 0 ok, 3 warning (80 % of the budget),
    4 critical (95 %, or paused after quotaExceeded).
    """
    rows = [
        table_quota(app, app.config.table(n).name) for n in tables or app.config.tables
    ]
    emit([asdict(r) for r in rows], fmt, _COLUMNS)
    code = LEVEL_EXIT_CODES[worst_level(rows)]
    if code:
        raise click.exceptions.Exit(code)


def table_quota(app: AppContext, table: str) -> QuotaRow:
    """One table's quota row, from the warehouse's job list and the pause note."""
    loader = app.loader
    budget = Budget.of(app.config, loader.warehouse, table, loader.clock())
    return quota_row(budget, read_pause(loader.store, table))
