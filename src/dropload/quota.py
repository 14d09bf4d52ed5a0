"""A table's load-job budget over a rolling 24 hours, its pace and its pause.

Every load job into the table counts, failed ones and other tools' included, as
the warehouse lists them. The live flow may use the budget less the replay
reserve; near it the tick interval stretches so the rest of the window fits,
and a `quotaExceeded` answer pauses the table (a note in the store) until the
window frees up.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dropload import layout
from dropload.config import Config
from dropload.errors import BudgetExhausted, ObjectNotFound
from dropload.store.base import Store
from dropload.warehouse.base import LOADS_PER_TABLE_PER_DAY, JobResult, Warehouse

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Returns the current time (UTC); injected so tests can run a day in seconds."""

WINDOW = timedelta(hours=24)
"""BigQuery's load-job allowance refills over a rolling 24 hours."""

WARNING_SHARE = 0.80
"""`loader quota` warns at 80 % of the budget used; pacing starts there too."""

CRITICAL_SHARE = 0.95
"""`loader quota` reports critical at 95 % of the budget used."""

PAUSE_FALLBACK = timedelta(hours=1)
"""How long a quotaExceeded pause lasts when no job in the window says more."""

PACE_SLACK = 0.05
"""Share of a stretched interval a run-once tick may come early (cron jitter)."""

LEVEL_EXIT_CODES = {"ok": 0, "warning": 3, "critical": 4}
"""`loader quota` exit codes by level, so cron can alert on them."""


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Pause:
    """A table paused after quotaExceeded: until when, and why."""

    until: datetime
    reason: str
    job_id: str

    def to_json(self) -> bytes:
        """Serialise for the store."""
        body = {"until": self.until.isoformat(), "reason": self.reason}
        return json.dumps({**body, "job_id": self.job_id}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Pause:
        """Parse what `to_json` wrote; raises ValueError."""
        try:
            raw = json.loads(data)
            until = datetime.fromisoformat(raw["until"]).astimezone(UTC)
            return cls(until, str(raw["reason"]), str(raw["job_id"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a pause note: {exc}") from None


def read_pause(store: Store, table: str) -> Pause | None:
    """The table's pause note, or None; an unreadable note pauses for the fallback."""
    try:
        data = store.read(layout.pause(table))
    except ObjectNotFound:
        return None
    try:
        return Pause.from_json(data)
    except ValueError:
        logger.warning("table %s: pause note unreadable; treated as expired", table)
        return None


def write_pause(store: Store, table: str, pause: Pause) -> None:
    """Write (or replace) the table's pause note."""
    store.write(layout.pause(table), pause.to_json(), if_generation_match=None)


def clear_pause(store: Store, table: str) -> None:
    """Delete the table's pause note if there is one."""
    with contextlib.suppress(ObjectNotFound):
        store.delete(layout.pause(table))


@dataclass
class Budget:
    """One table's load jobs in the window ending `now`, and what they allow."""

    table: str
    budget: int
    reserve: int
    base_minutes: float
    now: datetime
    jobs: list[JobResult] = field(default_factory=list)
    spent: int = 0
    """Jobs this tick started since the jobs were listed."""

    @classmethod
    def of(
        cls, config: Config, warehouse: Warehouse, table: str, now: datetime
    ) -> Budget:
        """List the table's jobs of the last 24 hours (jobs.list / the ledger)."""
        spec = config.table(table)
        jobs = warehouse.list_load_jobs(spec.destination, now - WINDOW)
        jobs = [j for j in jobs if j.created is None or j.created <= now]
        return cls(
            table=table,
            budget=config.daily_job_budget(table),
            reserve=config.loader.replay_reserve,
            base_minutes=config.interval_minutes(table),
            now=now,
            jobs=sorted(jobs, key=lambda j: j.created or now),
        )

    @property
    def live(self) -> int:
        """Jobs the live flow may use: the budget less the replay reserve."""
        return self.budget - self.reserve

    @property
    def used(self) -> int:
        """Jobs in the window, this tick's included."""
        return len(self.jobs) + self.spent

    @property
    def others(self) -> int:
        """Jobs in the window that another tool ran."""
        return sum(1 for j in self.jobs if not j.ours)

    def spend(self, *, replay: bool = False) -> None:
        """Count one more job; raises BudgetExhausted when none is left."""
        limit = self.budget if replay else self.live
        if self.used >= limit:
            raise BudgetExhausted(self.table, self.used, limit)
        self.spent += 1

    def frees_at(self) -> datetime:
        """When the oldest job in the window leaves it (now when there is none)."""
        dated = [j.created for j in self.jobs if j.created is not None]
        return min(dated) + WINDOW if dated else self.now

    def interval_minutes(self) -> float:
        """The tick interval that keeps the live flow within its budget.

        At least the configured one; long enough that a whole day of ticks fits
        what other tools leave; near the budget, long enough to spread what is
        left until the window starts to free up.
        """
        share = max(self.live - self.others, 1)
        wanted = max(self.base_minutes, WINDOW.total_seconds() / 60 / share)
        left = self.live - self.used
        if left > 0 and self.used >= WARNING_SHARE * self.live:
            until_free = (self.frees_at() - self.now).total_seconds() / 60
            wanted = max(wanted, until_free / left)
        return wanted

    def last_ours(self) -> datetime | None:
        """When our latest job in the window was created."""
        dated = [j.created for j in self.jobs if j.ours and j.created is not None]
        return max(dated, default=None)

    def hold(self) -> str | None:
        """Why the table must not start a job now, or None when it may."""
        if self.used >= self.live:
            return (
                f"{self.used} of {self.live} load jobs for the live flow used in the"
                f" last 24 hours; next slot at {self.frees_at():%Y-%m-%dT%H:%M:%SZ}"
            )
        interval = self.interval_minutes()
        last = self.last_ours()
        if interval <= self.base_minutes or last is None:
            return None
        elapsed = (self.now - last).total_seconds() / 60
        if elapsed >= interval * (1 - PACE_SLACK):
            return None
        return (
            f"interval stretched to {interval:.0f} minutes ({self.used} of"
            f" {self.live} jobs in 24 h); last job {elapsed:.0f} minutes ago"
        )


@dataclass(frozen=True)
class QuotaRow:
    """One table's line of `loader quota`."""

    table: str
    jobs: int
    succeeded: int
    failed: int
    ours: int
    others: int
    budget: int
    share_of_limit: float
    """Jobs in the window as a share of BigQuery's 1,500 (percent)."""
    interval_minutes: float
    projected: int
    """Jobs a day at the current interval, plus other tools' jobs of the window."""
    paused_until: datetime | None
    level: str

    @property
    def exit_code(self) -> int:
        """0 ok, 3 warning, 4 critical."""
        return LEVEL_EXIT_CODES[self.level]


def quota_row(budget: Budget, pause: Pause | None) -> QuotaRow:
    """Summarise a table's budget for `loader quota`."""
    jobs = budget.jobs
    failed = sum(1 for j in jobs if j.error_reason is not None)
    interval = budget.interval_minutes()
    paused = pause.until if pause and pause.until > budget.now else None
    return QuotaRow(
        table=budget.table,
        jobs=len(jobs),
        succeeded=sum(1 for j in jobs if j.succeeded),
        failed=failed,
        ours=len(jobs) - budget.others,
        others=budget.others,
        budget=budget.budget,
        share_of_limit=round(100 * len(jobs) / LOADS_PER_TABLE_PER_DAY, 1),
        interval_minutes=round(interval, 1),
        projected=round(WINDOW.total_seconds() / 60 / interval) + budget.others,
        paused_until=paused,
        level=level_of(len(jobs), budget.budget, paused is not None),
    )


def level_of(used: int, budget: int, paused: bool = False) -> str:
    """ok, warning (80 % of the budget) or critical (95 %, or paused)."""
    if paused or used >= CRITICAL_SHARE * budget:
        return "critical"
    if used >= WARNING_SHARE * budget:
        return "warning"
    return "ok"


def hold_reason(store: Store, budget: Budget) -> tuple[str, str] | None:
    """(status, why) when the table must not load now: paused, or paced.

    An expired pause note is deleted here, so the table resumes by itself.
    """
    pause = read_pause(store, budget.table)
    if pause is not None and pause.until > budget.now:
        until = f"{pause.until:%Y-%m-%dT%H:%M:%SZ}"
        return "paused", f"paused until {until} after quotaExceeded ({pause.job_id})"
    if pause is not None:
        clear_pause(store, budget.table)
        logger.info("table %s: quota pause over, resuming", budget.table)
    why = budget.hold()
    if why is None:
        return None
    return ("paused" if budget.used >= budget.live else "waiting"), why


def check_table(
    config: Config, warehouse: Warehouse, store: Store, table: str, now: datetime
) -> tuple[Budget, tuple[str, str] | None]:
    """Count the table's jobs and say whether it may load now (see hold_reason).

    Logs why when the interval is stretched. Raises WarehouseError when the
    warehouse cannot list the jobs.
    """
    budget = Budget.of(config, warehouse, table, now)
    interval = budget.interval_minutes()
    if interval > budget.base_minutes:
        logger.info(
            "table %s: interval stretched from %.0f to %.0f minutes:"
            " %d of %d load jobs used in the last 24 hours",
            table,
            budget.base_minutes,
            interval,
            budget.used,
            budget.live,
        )
    held = hold_reason(store, budget)
    if held is not None:
        logger.info("table %s: no load this tick: %s", table, held[1])
    return budget, held


def pause_table(store: Store, budget: Budget, job_id: str, message: str) -> str:
    """Persist a pause until the window frees up (cron runs honour it); returns
    the report's error text."""
    until = pause_until(budget)
    write_pause(store, budget.table, Pause(until, message, job_id))
    logger.warning(
        "table %s: paused until %s after quotaExceeded in job %s",
        budget.table,
        until.isoformat(),
        job_id,
    )
    return f"quota exceeded: {message}; paused until {until:%Y-%m-%dT%H:%M}Z"


def pause_until(budget: Budget) -> datetime:
    """When a table that got quotaExceeded may try again."""
    if budget.jobs and budget.frees_at() > budget.now:
        return budget.frees_at()
    return budget.now + PAUSE_FALLBACK


def worst_level(rows: Sequence[QuotaRow]) -> str:
    """The worst level of the rows."""
    return max((r.level for r in rows), key=LEVEL_EXIT_CODES.__getitem__, default="ok")
