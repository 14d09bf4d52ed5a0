"""Load jobs per table per day: dropload against a per-process batching writer.

A simulated day (no waiting): each table's records arrive at random moments
from 50 writer processes. The batching writer, the design dropload replaces,
runs one load job per flush (every 100 records or 30 s). dropload's stagers cut
shards by the product's defaults and the loader runs one job per tick that
finds shards.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from bench.common import print_table, write_result
from dropload.config import LoaderConfig, StagerConfig
from dropload.warehouse.base import LOADS_PER_TABLE_PER_DAY

DAY_SECONDS = 86_400
PROCESSES = 50
WORKLOAD = {"clicks": 1_321, "views": 575, "orders": 570, "signups": 432}
"""Records a day per table."""
SCALES = (1, 100)
BATCH_RECORDS = 100
BATCH_SECONDS = 30.0
TICK_MINUTES = (1.0, 5.0, LoaderConfig().interval_minutes)
SEED = 20_261_204


def main() -> dict[str, Any]:
    """Simulate every table at every scale; print and return the table."""
    rng = random.Random(SEED)
    rows = [_simulate(t, n * s, s, rng) for s in SCALES for t, n in WORKLOAD.items()]
    print_table(
        f"load jobs per table per day, {PROCESSES} writer processes (simulated day)",
        rows,
    )
    return {"processes": PROCESSES, "seed": SEED, "table": rows}


def _simulate(
    table: str, records: int, scale: int, rng: random.Random
) -> dict[str, Any]:
    per_process: list[list[float]] = [[] for _ in range(PROCESSES)]
    for _ in range(records):
        per_process[rng.randrange(PROCESSES)].append(rng.uniform(0, DAY_SECONDS))
    arrivals = [sorted(times) for times in per_process]
    batching = sum(len(_flushes(t, BATCH_RECORDS, BATCH_SECONDS)) for t in arrivals)
    stager = StagerConfig()
    shards = [
        cut
        for times in arrivals
        for cut in _flushes(times, stager.max_records, stager.max_age_seconds)
    ]
    row: dict[str, Any] = {
        "table": table,
        "scale": f"{scale}x",
        "records_per_day": records,
        "batching_writer_jobs": batching,
        "dropload_shards": len(shards),
    }
    for minutes in TICK_MINUTES:
        row[f"dropload_jobs_{minutes:g}min_tick"] = _ticks_with_shards(shards, minutes)
    default = row[f"dropload_jobs_{TICK_MINUTES[-1]:g}min_tick"]
    row["batching_vs_dropload"] = batching / max(default, 1)
    row["batching_over_limit"] = batching > LOADS_PER_TABLE_PER_DAY
    return row


def _flushes(times: Sequence[float], max_records: int, max_age: float) -> list[float]:
    """When a buffer is written: at max_records, or when the oldest is max_age old."""
    cuts: list[float] = []
    start, count = None, 0
    for moment in times:
        if start is not None and moment > start + max_age:
            cuts.append(start + max_age)
            start, count = None, 0
        if start is None:
            start = moment
        count += 1
        if count >= max_records:
            cuts.append(moment)
            start, count = None, 0
    if start is not None:
        cuts.append(start + max_age)
    return cuts


def _ticks_with_shards(cuts: Sequence[float], minutes: float) -> int:
    """Ticks (every `minutes`) that find at least one shard staged since the last."""
    interval = minutes * 60
    return len({int(cut // interval) for cut in cuts if cut < DAY_SECONDS})


if __name__ == "__main__":
    write_result("jobs_per_day", main())
