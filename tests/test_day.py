"""A simulated day of the workload that once broke a real pipeline.

Four tables get 1,321, 575, 570 and 432 records a day from 50 writers (50
Stager objects per table in this process, standing in for 50 writer processes;
each flushes its share every step, one shard per writer and step). The clock is
under the test's control: the DuckDB ledger and the loader read it, and a
run-once tick comes every step as from cron. Nothing sleeps. Steps are an hour
(30 minutes under a budget) to keep the run short; the bound is 1440 / interval
whatever the interval.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dropload import Loader, Stager, TickReport
from dropload.config import Config
from dropload.quota import WINDOW
from dropload.warehouse.duckdb import DuckDBWarehouse
from embedded import make_project, toml_section

DAILY_RECORDS = {"orders": 1321, "clicks": 575, "views": 570, "signups": 432}
WRITERS = 50
DAY = timedelta(days=1)


class Day:
    """The simulated clock, the writers of every table and the loader."""

    def __init__(
        self, folder: Path, factor: int, budget: int | None, minutes: int
    ) -> None:
        self.step = timedelta(minutes=minutes)
        self.steps_per_day = int(DAY / self.step)
        tables = {
            name: {"destination": f"ds.{name}", "interval_minutes": minutes}
            | ({"daily_job_budget": budget} if budget else {})
            for name in DAILY_RECORDS
        }
        project = make_project(folder, tables=tables, stager={"max_age_seconds": 3600})
        reserve = {"replay_reserve": 4} if budget else {}
        with project.config_path.open("a") as config:
            config.write(toml_section("loader", {"max_workers": 4, **reserve}))
        self.config: Config = project.config
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.start = self.now
        self.warehouse = DuckDBWarehouse(project.warehouse_path, clock=self.clock)
        self.loader = Loader(self.config, warehouse=self.warehouse, clock=self.clock)
        self.writers = {
            name: [Stager(self.config, name) for _ in range(WRITERS)]
            for name in DAILY_RECORDS
        }
        self.daily = {name: n * factor for name, n in DAILY_RECORDS.items()}
        self.sent = dict.fromkeys(DAILY_RECORDS, 0)
        self.reports: list[TickReport] = []

    def clock(self) -> datetime:
        """The simulated time."""
        return self.now

    def write_step(self, step: int) -> None:
        """Each table's records of one step, spread over its writers."""
        for name, writers in self.writers.items():
            due = self.daily[name] * (step + 1) // self.steps_per_day - self.sent[name]
            ids = range(self.sent[name], self.sent[name] + due)
            for number, writer in enumerate(writers):
                share = ids[number::WRITERS]
                writer.extend({"id": i, "name": name} for i in share)
                if share:
                    writer.flush()
            self.sent[name] += due

    def tick(self) -> None:
        """One run-once tick of every table at the simulated time."""
        self.reports.extend(self.loader.run_once())

    def run(self, steps: int, *, write: bool = True) -> None:
        """`steps` steps: write, advance the clock by a step, tick."""
        for step in range(steps):
            if write:
                self.write_step(step)
            self.now += self.step
            self.tick()

    def close(self) -> None:
        """Close every writer and the loader."""
        for writers in self.writers.values():
            for writer in writers:
                writer.close()
        self.loader.close()

    def ids(self, table: str) -> list[int]:
        """The ids in a table, duplicates kept."""
        rows = self.warehouse.query(f"SELECT id FROM ds.{table} ORDER BY id")
        return [row[0] for row in rows]

    def job_times(self, table: str) -> list[datetime]:
        """When each load job into the table was created, failed ones too."""
        jobs = self.warehouse.list_load_jobs(f"ds.{table}", self.start)
        return sorted(j.created for j in jobs if j.created is not None)


@pytest.fixture
def memory_path(tmp_path: Path) -> Iterator[Path]:
    """A folder in /dev/shm where there is one (fsync of thousands of shards
    would dominate the run on disk), else the test's tmp_path."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="dropload-day-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def make_day(memory_path: Path) -> Iterator[object]:
    """Build a Day; close it afterwards."""
    days: list[Day] = []
    tmp_path = memory_path

    def build(factor: int, minutes: int, budget: int | None = None) -> Day:
        day = Day(tmp_path / f"day-{len(days)}", factor, budget, minutes)
        days.append(day)
        return day

    yield build
    for day in days:
        day.close()


def _most_in_any_window(times: list[datetime]) -> int:
    return max(
        (sum(1 for t in times if start - WINDOW < t <= start) for start in times),
        default=0,
    )


@pytest.mark.slow
@pytest.mark.parametrize("factor", [1, 100])
def test_a_day_loads_every_record_once_within_1440_over_the_interval(
    make_day: object, factor: int
) -> None:
    """At 1x and 100x: at most 1440 / 60 jobs a table a day, every record once."""
    day = make_day(factor, 60)  # type: ignore[operator]
    day.run(day.steps_per_day)

    for table, daily in day.daily.items():
        assert day.ids(table) == list(range(daily)), table
        assert len(day.job_times(table)) <= 1440 // 60, table


@pytest.mark.slow
def test_a_day_under_a_budget_of_40_stretches_the_interval_and_loses_nothing(
    make_day: object,
) -> None:
    """Budget 40: at most 40 jobs in any 24 h, interval 40 min, nothing lost."""
    day = make_day(1, 30, budget=40)  # type: ignore[operator]
    day.run(day.steps_per_day)
    day.run(4, write=False)

    for table, daily in day.daily.items():
        assert day.ids(table) == list(range(daily)), table
        assert _most_in_any_window(day.job_times(table)) <= 40, table
    reports = day.reports
    assert min(r.interval_minutes for r in reports) == pytest.approx(40.0)
    waited = [r for r in reports if r.status == "waiting"]
    assert len(waited) >= day.steps_per_day
