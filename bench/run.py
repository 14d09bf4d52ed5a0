"""`make bench`: every benchmark in turn; tables on stdout, JSON in bench/results/.

The headline ratios land in bench/results/summary.json. Telemetry of dlt is off
and it writes only to a local folder.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import (
    freshness,
    jobs_per_day,
    memory,
    report,
    stager_throughput,
    tick_cost,
)
from bench.common import machine, print_table, write_result

BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "jobs_per_day": jobs_per_day.main,
    "stager_throughput": stager_throughput.main,
    "tick_cost": tick_cost.main,
    "memory": memory.main,
    "freshness": freshness.main,
}


def main() -> int:
    """Run everything; 1 when a benchmark failed, else 0."""
    started = time.perf_counter()
    print("machine:", machine())
    results: dict[str, dict[str, Any]] = {}
    failed = []
    for name, run in BENCHMARKS.items():
        try:
            results[name] = run()
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        write_result(name, results[name])
    summary = _headline(results)
    summary["total_seconds"] = time.perf_counter() - started
    write_result("summary", summary)
    print_table("headline", [summary])
    print("figures written to", report.main())
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


def _headline(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rows = {
        r["writer"]: r for r in results.get("stager_throughput", {}).get("table", [])
    }
    if rows:
        stager = rows["dropload stager ndjson"]["seconds"]
        out["stager_vs_orjson"] = rows["bare orjson ndjson"]["seconds"] / stager
        out["stager_vs_json"] = rows["bare json ndjson"]["seconds"] / stager
        out["stager_avro_vs_fastavro"] = rows["dropload stager avro"]["this_vs_bare"]
        out["stager_vs_dlt"] = rows["dlt filesystem jsonl"]["seconds"] / stager
        out["stager_vs_orjson_encode_only"] = rows["dropload stager ndjson, no store"][
            "this_vs_bare"
        ]
    jobs = results.get("jobs_per_day", {}).get("table", [])
    for row in jobs:
        if row["table"] == "clicks":
            key = f"clicks_{row['scale']}"
            out[f"{key}_batching_jobs"] = row["batching_writer_jobs"]
            out[f"{key}_dropload_jobs"] = row["dropload_jobs_15min_tick"]
    return out


if __name__ == "__main__":
    sys.exit(main())
