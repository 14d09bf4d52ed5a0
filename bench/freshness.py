"""Freshness: seconds from `append` to the row being queryable, at a 1-minute tick.

A real `loader serve` (APScheduler, interval_minutes = 1) runs in a thread over
the embedded default; a writer appends one record every few seconds through a
stager with default settings (a record waits up to max_age_seconds in memory),
and a poller queries the DuckDB table twice a second for each record's id.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import embedded_config, print_table, write_result
from dropload import Loader, Stager
from dropload.config import StagerConfig, load_config
from dropload.loader.schedule import serve
from dropload.warehouse.duckdb import DuckDBWarehouse

TICK_MINUTES = 1
APPEND_EVERY_SECONDS = 6.0
APPENDS = 15
POLL_SECONDS = 0.5
WAIT_AFTER_LAST_SECONDS = 100.0
"""A tick interval plus the stager's max age plus slack."""
SCHEMA = [{"name": "id", "type": "INTEGER", "mode": "REQUIRED"}]


def main() -> dict[str, Any]:
    """Append, poll, report the latency distribution."""
    folder = Path(tempfile.mkdtemp(prefix="dropload-bench-fresh-"))
    try:
        latencies = _run(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    row = _summary(latencies)
    print_table(f"freshness: append to queryable, {TICK_MINUTES}-minute tick", [row])
    return {"latencies_s": latencies, "table": [row]}


def _run(folder: Path) -> list[float]:
    (folder / "schema.json").write_text(json.dumps(SCHEMA))
    config_path = embedded_config(
        folder,
        {"events": {"destination": "bench.events", "schema": "schema.json"}},
        loader={"interval_minutes": TICK_MINUTES},
    )
    config = load_config(config_path)
    stop = threading.Event()
    loader_thread = threading.Thread(target=serve, args=(Loader(config), stop))
    loader_thread.start()
    appended: dict[int, float] = {}
    seen: dict[int, float] = {}
    poller = threading.Thread(target=_poll, args=(config, appended, seen, stop))
    poller.start()
    try:
        _append(config_path, appended)
        _wait(appended, seen)
    finally:
        stop.set()
        poller.join()
        loader_thread.join()
    return sorted(seen[i] - appended[i] for i in seen)


def _append(config_path: Path, appended: dict[int, float]) -> None:
    with Stager(config_path, "events") as stager:
        for number in range(APPENDS):
            appended[number] = time.perf_counter()
            stager.append({"id": number})
            time.sleep(APPEND_EVERY_SECONDS)


def _wait(appended: dict[int, float], seen: dict[int, float]) -> None:
    deadline = time.perf_counter() + WAIT_AFTER_LAST_SECONDS
    while len(seen) < len(appended) and time.perf_counter() < deadline:
        time.sleep(POLL_SECONDS)


def _poll(
    config: Any,
    appended: dict[int, float],
    seen: dict[int, float],
    stop: threading.Event,
) -> None:
    warehouse = DuckDBWarehouse(config.resolve(config.warehouse.path))
    while not stop.wait(POLL_SECONDS):
        if not warehouse.row_count("bench.events"):
            continue
        now = time.perf_counter()
        for (number,) in warehouse.query("SELECT id FROM bench.events"):
            if number in appended and number not in seen:
                seen[number] = now


def _summary(latencies: list[float]) -> dict[str, Any]:
    if not latencies:
        return {"samples": 0}
    quantiles = (
        statistics.quantiles(latencies, n=20, method="inclusive")
        if len(latencies) > 1
        else latencies
    )
    return {
        "tick_minutes": TICK_MINUTES,
        "stager_max_age_s": StagerConfig().max_age_seconds,
        "samples": len(latencies),
        "min_s": latencies[0],
        "median_s": statistics.median(latencies),
        "p95_s": quantiles[-1],
        "max_s": latencies[-1],
    }


if __name__ == "__main__":
    write_result("freshness", main())
