"""The load-job budget: counting, pacing, the quotaExceeded pause, `loader quota`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dropload import BudgetExhausted, Loader, Stager, layout
from dropload.cli import main
from dropload.loader.schedule import build_scheduler, paced_tick
from dropload.quota import WINDOW, Budget, read_pause
from dropload.schema import SchemaField
from dropload.warehouse.base import JobResult, LoadRequest
from dropload.warehouse.duckdb import DuckDBWarehouse
from embedded import TABLE, Project, make_project, records, table_ids
from seams import SeamWarehouse

NOW = datetime(2026, 1, 26, 12, 0, tzinfo=UTC)


def _jobs(count: int, *, ours: bool = True, every: float = 10.0) -> list[JobResult]:
    """`count` jobs ending at NOW, `every` minutes apart."""
    return [
        JobResult(
            job_id=f"job-{ours}-{n}",
            state="DONE",
            created=NOW - timedelta(minutes=every * (count - n)),
            ours=ours,
        )
        for n in range(count)
    ]


def _budget(jobs: list[JobResult], budget: int = 1000, base: float = 15.0) -> Budget:
    return Budget(
        table="events",
        budget=budget,
        reserve=budget // 10,
        base_minutes=base,
        now=NOW,
        jobs=jobs,
    )


def test_interval_stays_at_the_base_far_from_the_budget() -> None:
    """96 jobs a day at 15 minutes fit 900 live jobs: no stretch, no hold."""
    budget = _budget(_jobs(96, every=15))
    assert budget.interval_minutes() == 15.0
    assert budget.hold() is None


def test_interval_stretches_so_a_day_fits_the_live_budget() -> None:
    """With 40 jobs (4 reserved) a day, ticks stretch to 1440 / 36 = 40 minutes."""
    budget = _budget([], budget=40)
    assert budget.live == 36
    assert budget.interval_minutes() == pytest.approx(40.0)


def test_other_tools_jobs_leave_less_room() -> None:
    """Jobs of other tools count: 600 of theirs leave 300 of 900 for ours."""
    budget = _budget(_jobs(600, ours=False, every=2), base=1.0)
    assert budget.others == 600
    assert budget.interval_minutes() == pytest.approx(1440 / 300)


def test_near_the_budget_the_rest_spreads_until_the_window_frees() -> None:
    """At 880 of 900 jobs the 20 left spread until the oldest job leaves the window."""
    jobs = _jobs(880, every=1)
    budget = _budget(jobs, base=1.0)
    frees = (jobs[0].created + WINDOW - NOW).total_seconds() / 60
    assert budget.interval_minutes() == pytest.approx(frees / 20)


def test_spend_refuses_past_the_live_budget_but_replays_use_the_reserve() -> None:
    """The live flow stops at budget - reserve; a replay may use the reserve."""
    budget = _budget(_jobs(35), budget=40)
    budget.spend()
    with pytest.raises(BudgetExhausted, match="36 load jobs in the last 24 hours"):
        budget.spend()
    budget.spend(replay=True)
    assert budget.used == 37
    assert budget.hold() is not None


def test_hold_waits_for_the_stretched_interval_after_the_last_job() -> None:
    """A stretched interval holds the table until it has passed since our job."""
    budget = _budget(_jobs(1, every=20), budget=40)
    assert "interval stretched to 40 minutes" in (budget.hold() or "")
    later = _budget(_jobs(1, every=39), budget=40)
    assert later.hold() is None


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """One table, 5 records a shard."""
    return make_project(tmp_path, stager={"max_records": 5})


def _stage(project: Project, start: int, stop: int) -> None:
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(start, stop))


def _failing(reason: str, message: str, times: int) -> Any:
    left = [times]

    def answer(request: LoadRequest) -> JobResult | None:
        if left[0] == 0:
            return None
        left[0] -= 1
        return JobResult(
            request.job_id, "DONE", error_reason=reason, error_message=message
        )

    return answer


def test_quota_exceeded_pauses_the_table_across_runs_and_resumes(
    project: Project,
) -> None:
    """quotaExceeded pauses the table across run-onces, then resumes; nothing lost."""
    _stage(project, 0, 10)
    now = [NOW]
    warehouse = SeamWarehouse(DuckDBWarehouse(project.warehouse_path))
    warehouse.before_load = _failing("quotaExceeded", "Quota exceeded: imports", 1)

    [paused] = Loader(
        project.config, warehouse=warehouse, clock=lambda: now[0]
    ).run_once()
    pause = read_pause(project.store(), TABLE)
    now[0] += timedelta(minutes=30)
    [cron] = Loader(
        project.config, warehouse=warehouse, clock=lambda: now[0]
    ).run_once()

    assert paused.status == "paused"
    assert pause is not None
    assert pause.until > NOW + timedelta(minutes=30)
    assert (cron.status, cron.jobs) == ("paused", [])
    now[0] = pause.until + timedelta(seconds=1)
    [resumed] = Loader(
        project.config, warehouse=warehouse, clock=lambda: now[0]
    ).run_once()
    assert (resumed.status, resumed.rows) == ("loaded", 10)
    assert read_pause(project.store(), TABLE) is None
    assert table_ids(project.warehouse()) == list(range(10))


def test_too_many_table_updates_is_retried_with_backoff(project: Project) -> None:
    """Too many table updates: retried after 2 s and 4 s, new job ids, then loaded."""
    _stage(project, 0, 5)
    warehouse = SeamWarehouse(project.warehouse())
    message = "Exceeded rate limits: too many table update operations for this table"
    warehouse.before_load = _failing("quotaExceeded", message, 2)
    waits: list[float] = []

    [report] = Loader(
        project.config, warehouse=warehouse, sleep=waits.append
    ).run_once()

    assert (report.status, len(report.jobs)) == ("loaded", 3)
    assert waits == [2.0, 4.0]
    assert read_pause(project.store(), TABLE) is None
    assert table_ids(project.warehouse()) == list(range(5))


def _run_jobs(project: Project, good: int, bad: int) -> None:
    """Run real load jobs into the table through the warehouse (another tool)."""
    folder = project.folder / "other"
    folder.mkdir(exist_ok=True)
    (folder / "good.ndjson").write_text('{"id": 1}\n')
    (folder / "bad.ndjson").write_text("not json\n")
    warehouse = project.warehouse()
    table = project.config.table(TABLE)
    fields = (SchemaField("id", "INTEGER"),)
    for n in range(good + bad):
        source = folder / ("good.ndjson" if n < good else "bad.ndjson")
        request = LoadRequest(f"other-{n}", table, fields, (str(source),))
        warehouse.load(request, timeout=60)


@pytest.mark.parametrize(
    ("good", "bad", "level", "code"),
    [(3, 1, "ok", 0), (7, 1, "warning", 3), (9, 1, "critical", 4)],
)
def test_quota_command_levels_and_exit_codes(
    tmp_path: Path, good: int, bad: int, level: str, code: int
) -> None:
    """`loader quota` against a budget of 10: ok exits 0, warning 3, critical 4."""
    project = make_project(
        tmp_path, tables={TABLE: {"destination": "ds.events", "daily_job_budget": 10}}
    )
    text = project.config_path.read_text() + "[loader]\nreplay_reserve = 1\n"
    project.config_path.write_text(text)
    _run_jobs(project, good, bad)

    result = CliRunner().invoke(
        main, ["--config", str(project.config_path), "quota", "--format", "json"]
    )

    assert result.exit_code == code, result.output
    [row] = json.loads(result.stdout)
    assert (row["jobs"], row["succeeded"], row["failed"]) == (good + bad, good, bad)
    assert (row["budget"], row["level"]) == (10, level)
    assert row["share_of_limit"] == pytest.approx(100 * (good + bad) / 1500, abs=0.1)
    assert row["interval_minutes"] >= 1440 / 9


def test_quota_command_reports_a_paused_table_as_critical(project: Project) -> None:
    """A table paused after quotaExceeded is critical (exit 4) in text output."""
    _stage(project, 0, 5)
    warehouse = SeamWarehouse(project.warehouse())
    warehouse.before_load = _failing("quotaExceeded", "Quota exceeded", 1)
    Loader(project.config, warehouse=warehouse).run_once()

    result = CliRunner().invoke(main, ["--config", str(project.config_path), "quota"])

    assert result.exit_code == 4
    header, line = result.stdout.splitlines()
    assert header.split()[0] == "table"
    assert line.split()[-1] == "critical"


def test_serve_reschedules_a_table_whose_interval_stretched(tmp_path: Path) -> None:
    """serve moves a table near its budget to the stretched interval, not the rest."""
    project = make_project(
        tmp_path,
        tables={
            "events": {"destination": "ds.events", "daily_job_budget": 40},
            "calm": {"destination": "ds.calm"},
        },
    )
    text = project.config_path.read_text() + "[loader]\nreplay_reserve = 4\n"
    project.config_path.write_text(text)
    loader = Loader(project.config)
    scheduler = build_scheduler(loader)

    paced_tick(scheduler, loader, "events")
    paced_tick(scheduler, loader, "calm")

    events, calm = scheduler.get_job("tick-events"), scheduler.get_job("tick-calm")
    assert events.trigger.interval == timedelta(minutes=40)
    assert calm.trigger.interval == timedelta(minutes=15)
    assert layout.pause("events") not in [i.name for i in loader.store.list("events/")]


def test_quota_constants_pinned() -> None:
    """Window, levels, exit codes, pause, slack, backoff and isolation constants."""
    from dropload import quota, retry
    from dropload.config import LoaderConfig

    assert timedelta(hours=24) == quota.WINDOW
    assert (quota.WARNING_SHARE, quota.CRITICAL_SHARE) == (0.80, 0.95)
    assert quota.LEVEL_EXIT_CODES == {"ok": 0, "warning": 3, "critical": 4}
    assert timedelta(hours=1) == quota.PAUSE_FALLBACK
    assert quota.PACE_SLACK == 0.05
    assert [retry.job_backoff(n) for n in range(1, 7)] == [2, 4, 8, 16, 32, 32]
    assert LoaderConfig().isolation_jobs == 3
    assert frozenset({"invalid"}) == retry.DATA_REASONS
    assert not retry.is_data_reason("invalid", "Provided Schema does not match Table")
