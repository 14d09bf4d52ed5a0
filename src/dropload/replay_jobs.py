"""Running a replay plan: check the budget, write the splits, run the jobs, clean up.

A replay killed anywhere is resumed by running it again: split files are
written create-if-absent, and a job id that exists is fetched, never re-run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tqdm import tqdm

from dropload.config import Config
from dropload.errors import ObjectExists, ObjectNotFound, ReplayRefused
from dropload.partition import split_shard
from dropload.replay import (
    REPLAY_JOB_PREFIX,
    PlannedJob,
    ReplayPlan,
    Split,
)
from dropload.retry import is_transient_reason
from dropload.schema import SchemaField
from dropload.store.base import Store
from dropload.warehouse.base import JobResult, LoadRequest, Warehouse

logger = logging.getLogger(__name__)

REPLAY_ATTEMPTS = 3
"""Attempts (each a new job id) a replay job gets after transient failures."""

_WINDOW = timedelta(hours=24)


@dataclass
class ReplayReport:
    """What a replay did: its jobs and their outcomes."""

    table: str
    key: str
    status: str = "nothing"
    """nothing, done, running (a job outlived the timeout) or failed."""
    jobs: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    error: str | None = None

    @property
    def failed(self) -> bool:
        """A job failed; the replay did not finish."""
        return self.status == "failed"


def run_replay(
    plan: ReplayPlan,
    store: Store,
    warehouse: Warehouse,
    config: Config,
    fields: Sequence[SchemaField],
    *,
    progress: bool = False,
) -> ReplayReport:
    """Run the plan's jobs in order; stops at the first job that does not succeed.

    Raises ReplayRefused when the budget's replay reserve is too small or an
    `--into` table of an unpartitioned replace is not fresh.
    """
    report = ReplayReport(plan.table.name, plan.key)
    if not plan.jobs:
        return report
    _check_fresh(plan, warehouse)
    check_replay_budget(warehouse, config, plan)

    with _progress_bar(plan, progress) as bar:
        for split in plan.splits:
            write_split(store, plan, split, config.loader.max_workers)
            bar.update()
        report.status = "done"
        for job in plan.jobs:
            result = _run_job(job, plan, store, warehouse, config, fields)
            _record(report, job, result)
            bar.update()
            if not result.succeeded:
                break

    if report.status != "running":
        _clean_up(store, plan)
    return report


def _progress_bar(plan: ReplayPlan, progress: bool) -> tqdm[Any]:
    """Splits and jobs as steps on stderr; shown only when stderr is a terminal."""
    return tqdm(
        total=len(plan.splits) + len(plan.jobs),
        desc=f"replay {plan.table.name}",
        unit="step",
        file=sys.stderr,
        disable=None if progress else True,
    )


def check_replay_budget(warehouse: Warehouse, config: Config, plan: ReplayPlan) -> int:
    """Refuse a replay whose jobs would pass the reserve or the daily budget.

    Replay jobs draw on `loader.replay_reserve`, and all jobs into the table in
    24 hours stay within its daily budget; jobs of this replay that exist
    already (a resumed replay) are not counted twice. Returns the jobs needed.
    This is the seam for a shared budget module: it counts with
    `Warehouse.list_load_jobs` itself. Raises ReplayRefused.
    """
    since = datetime.now(UTC) - _WINDOW
    recent = warehouse.list_load_jobs(plan.table.destination, since)
    seen = {r.job_id for r in recent}
    needed = sum(f"{j.base_id}-1" not in seen for j in plan.jobs)
    replays = sum(r.job_id.startswith(REPLAY_JOB_PREFIX) for r in recent)
    reserve = config.loader.replay_reserve
    budget = config.daily_job_budget(plan.request.table)
    if replays + needed > reserve:
        raise ReplayRefused(
            plan.table.name,
            f"needs {needed} load jobs; {replays} replay jobs in the last 24 hours"
            f" leave {max(reserve - replays, 0)} of loader.replay_reserve"
            f" ({reserve}); replay a shorter range or later",
        )
    if len(recent) + needed > budget:
        raise ReplayRefused(
            plan.table.name,
            f"needs {needed} load jobs; {len(recent)} jobs in the last 24 hours"
            f" leave {max(budget - len(recent), 0)} of the daily budget ({budget})",
        )
    return needed


def _check_fresh(plan: ReplayPlan, warehouse: Warehouse) -> None:
    """An unpartitioned replace may only fill a fresh table (or resume doing so)."""
    if plan.request.mode != "replace" or plan.spec is not None:
        return
    if warehouse.row_count(plan.table.destination) == 0:
        return
    first = warehouse.get_job(f"{plan.jobs[0].base_id}-1")
    if first is None or not first.succeeded:
        raise ReplayRefused(
            plan.table.name,
            f"--into {plan.table.destination} holds rows; replace on an"
            " unpartitioned table needs a fresh table",
        )


def write_split(store: Store, plan: ReplayPlan, split: Split, workers: int) -> int:
    """Write the rows of `split` shard by shard under its folder; returns files.

    A file there already (an interrupted replay) is kept: writes are atomic.
    """
    assert plan.spec is not None
    spec, fmt = plan.spec, split.batch.manifest.format
    keep = set(split.partitions)

    def one(shard_name: str) -> int:
        data = store.read(split.batch.prefix + shard_name)
        written = 0
        for partition, body in split_shard(fmt, data, spec, keep=keep).items():
            if body:
                stem = shard_name.rsplit(".", 1)[0]
                _write_once(store, f"{split.folder}{stem}-{partition}.{fmt}", body)
                written += 1
        return written

    names = [s.name for s in split.batch.manifest.shards]
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="split") as pool:
        return sum(pool.map(one, names))


def _write_once(store: Store, name: str, data: bytes) -> None:
    try:
        store.write(name, data)
    except ObjectExists:
        logger.debug("replay: %s written before", name)


def _run_job(
    job: PlannedJob,
    plan: ReplayPlan,
    store: Store,
    warehouse: Warehouse,
    config: Config,
    fields: Sequence[SchemaField],
) -> JobResult:
    uris = tuple(store.uri(s.name) for s in job.sources)
    for attempt in range(1, REPLAY_ATTEMPTS + 1):
        request = LoadRequest(
            job_id=f"{job.base_id}-{attempt}",
            table=plan.table,
            fields=tuple(fields),
            source_uris=uris,
            write_disposition=job.write_disposition,
            partition=job.partition,
            labels={"dropload-replay": plan.key},
        )
        result = warehouse.load(request, timeout=config.loader.job_timeout_seconds)
        if result.succeeded or not result.done:
            return result
        if not is_transient_reason(result.error_reason):
            return result
    return result


def _record(report: ReplayReport, job: PlannedJob, result: JobResult) -> None:
    row = {**job.summary(), "job_id": result.job_id, "state": result.state}
    row["rows"] = result.output_rows
    row["error"] = result.error_message
    report.jobs.append(row)
    report.rows += result.output_rows or 0
    if not result.done:
        report.status = "running"
        report.error = f"job {result.job_id} still running; run the replay again"
    elif not result.succeeded:
        report.status = "failed"
        report.error = (
            f"job {result.job_id} failed ({result.error_reason}):"
            f" {result.error_message}"
        )
    logger.info(
        "table %s: replay job %s: %s, %s rows",
        report.table,
        result.job_id,
        "succeeded" if result.succeeded else result.state.lower(),
        result.output_rows,
    )


def _clean_up(store: Store, plan: ReplayPlan) -> None:
    for info in store.list(plan.temp_prefix):
        try:
            store.delete(info.name, if_generation_match=info.generation)
        except ObjectNotFound:
            continue
