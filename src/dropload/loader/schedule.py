"""`loader serve`: APScheduler runs each table's tick at its own interval."""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from dropload.loader.runner import Loader
from dropload.loader.tick import TickReport

logger = logging.getLogger(__name__)

RESCHEDULE_TOLERANCE = 0.01
"""Pacing changes under 1 % of the interval do not move the job."""


def build_scheduler(loader: Loader) -> BackgroundScheduler:
    """One interval job per table; a table never runs two ticks at once."""
    workers = max(1, min(len(loader.config.tables), loader.config.loader.max_workers))
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(workers)}, timezone=UTC
    )
    for name in loader.config.tables:
        minutes = loader.config.interval_minutes(name)
        scheduler.add_job(
            paced_tick,
            "interval",
            args=[scheduler, loader, name],
            id=f"tick-{name}",
            minutes=minutes,
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        logger.info("table %s: ticks every %s minutes", name, minutes)
    return scheduler


def paced_tick(
    scheduler: BackgroundScheduler, loader: Loader, table: str
) -> TickReport:
    """One tick; moves the table's job to the interval pacing asks for."""
    report = loader.tick(table)
    wanted = report.interval_minutes
    job = scheduler.get_job(f"tick-{table}")
    if wanted is None or job is None:
        return report
    current = job.trigger.interval.total_seconds() / 60
    if abs(wanted - current) > RESCHEDULE_TOLERANCE * current:
        scheduler.reschedule_job(job.id, trigger="interval", minutes=wanted)
        logger.info(
            "table %s: ticks every %.1f minutes now (was %.1f): %s",
            table,
            wanted,
            current,
            "stretched near the load-job budget" if wanted > current else "back",
        )
    return report


def serve(loader: Loader, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop`), then let running ticks finish."""
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # A second signal: the user does not want to wait. Intents make an
            # interrupted tick safe; the next tick finishes it.
            logger.warning("loader: signal %d again, exiting now", signum)
            os._exit(128 + signum)
        logger.info("loader: signal %d, stopping after the running ticks", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    scheduler = build_scheduler(loader)
    scheduler.start()
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        loader.close()
        logger.info("loader: stopped")
