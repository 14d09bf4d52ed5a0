"""`loader serve`: ticks each table at its interval and stops on signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dropload import Loader, Stager
from dropload.loader.schedule import build_scheduler, serve
from embedded import make_project, records, table_ids

LOADER = str(Path(sys.executable).with_name("loader"))


def _wait_for(predicate: object, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_scheduler_has_one_job_per_table_at_its_interval(tmp_path: Path) -> None:
    """Every table gets an interval job with its own interval and max_instances 1."""
    project = make_project(
        tmp_path,
        tables={
            "a": {"destination": "ds.a", "interval_minutes": 2},
            "b": {"destination": "ds.b"},
        },
    )
    scheduler = build_scheduler(Loader(project.config))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert sorted(jobs) == ["tick-a", "tick-b"]
    assert jobs["tick-a"].trigger.interval.total_seconds() == 120
    assert jobs["tick-b"].trigger.interval.total_seconds() == 15 * 60
    assert all(job.max_instances == 1 for job in jobs.values())


def test_serve_loads_staged_records_then_stops_on_event(tmp_path: Path) -> None:
    """serve() ticks at start, loads what is staged, and returns when stopped."""
    project = make_project(tmp_path)
    with Stager(project.config, "events") as stager:
        stager.extend(records(0, 50))
    stop = threading.Event()
    runner = threading.Thread(target=serve, args=(Loader(project.config), stop))
    runner.start()
    try:
        loaded = _wait_for(lambda: project.warehouse().row_count("ds.events") == 50)
    finally:
        stop.set()
        runner.join(60)
    assert loaded
    assert not runner.is_alive()
    assert table_ids(project.warehouse()) == list(range(50))


def test_serve_process_exits_zero_on_sigterm_after_loading(tmp_path: Path) -> None:
    """`loader serve` as a process loads staged rows and exits 0 on SIGTERM."""
    project = make_project(tmp_path)
    with Stager(project.config, "events") as stager:
        stager.extend(records(0, 20))
    proc = subprocess.Popen(
        [LOADER, "--config", str(project.config_path), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        loaded = _wait_for(lambda: project.warehouse().row_count("ds.events") == 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert loaded
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert table_ids(project.warehouse()) == list(range(20))
