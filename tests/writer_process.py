"""A writer process for the resilience test: a Stager over a failing store seam.

Run by multiprocessing (spawn) from tests/test_writers.py; it writes a summary
of what the seam did and what the stager held at most to a JSON file.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from dropload import Stager, load_config
from dropload.store.local import LocalStore
from seams import FlakyStore

THREADS = 4
"""Appending threads per writer process."""


def write_records(
    config_path: str, start: int, count: int, down_flag: str, summary: str
) -> None:
    """Append ids start..start+count-1 from THREADS threads, then close.

    The first half goes while the store is down (the test creates `down_flag`
    before starting the writers); the process says so in `<summary>.half`,
    waits until the flag is gone, then appends the second half.
    """
    config = load_config(config_path)
    inner = LocalStore(config.resolve(config.store.url))
    flag = Path(down_flag)
    store = FlakyStore(inner, failure_rate=0.10, down_flag=flag, seed=start)
    stager = Stager(config, "events", store=store)
    middle = start + count // 2
    _append(stager, start, middle)
    stager.flush()
    spooled_in_outage = stager.spooled
    Path(summary + ".half").touch()
    while flag.exists():
        time.sleep(0.05)
    _append(stager, middle, start + count)
    stager.close()
    body = {
        "peak": stager.peak_buffered_bytes,
        "spooled_in_outage": spooled_in_outage,
        "spooled": stager.spooled,
        "refused_down": store.refused_down,
        "failures": store.failures,
        "lost_answers": store.lost_answers,
    }
    Path(summary).write_text(json.dumps(body))


def _append(stager: Stager, start: int, stop: int) -> None:
    def append(offset: int) -> None:
        for i in range(start + offset, stop, THREADS):
            stager.append({"id": i, "name": f"writer record {i}"})

    threads = [threading.Thread(target=append, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
