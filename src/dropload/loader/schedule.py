"""`loader serve`: APScheduler runs each table's tick at its own interval."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from dropload.loader.runner import Loader

logger = logging.getLogger(__name__)


def build_scheduler(loader: Loader) -> BackgroundScheduler:
    """One interval job per table; a table never runs two ticks at once."""
    workers = max(1, min(len(loader.config.tables), loader.config.loader.max_workers))
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(workers)}, timezone=UTC
    )
    for name in loader.config.tables:
        minutes = loader.config.interval_minutes(name)
        scheduler.add_job(
            loader.tick,
            "interval",
            args=[name],
            id=f"tick-{name}",
            minutes=minutes,
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        logger.info("table %s: ticks every %s minutes", name, minutes)
    return scheduler


def serve(loader: Loader, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop`), then let running ticks finish."""
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
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
