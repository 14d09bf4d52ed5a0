"""Shared pieces of the benchmarks: the machine, tables on stdout, JSON results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the figures ran on: cores, CPU model, Python."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds `fn` took (time.perf_counter) and what it returned."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def median(values: Sequence[float]) -> float:
    """The median of the runs."""
    return statistics.median(values)


def print_table(title: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """An aligned text table with a title line."""
    print(f"\n== {title}")
    if not rows:
        print("(no rows)")
        return
    columns = list(rows[0])
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def write_result(name: str, payload: Mapping[str, Any]) -> Path:
    """bench/results/<name>.json with the machine and the time of the run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {
        "benchmark": name,
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(body, indent=1, default=str) + "\n")
    return path


def cell(value: Any) -> str:
    """A value as a table cell: thousands separators, yes/no, - for None."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def embedded_config(
    folder: Path,
    tables: Mapping[str, Mapping[str, Any]],
    *,
    stager: Mapping[str, Any] | None = None,
    loader: Mapping[str, Any] | None = None,
    store_url: str = "store",
    warehouse: Mapping[str, Any] | None = None,
) -> Path:
    """Write a dropload config into `folder`; tables map to their TOML keys."""
    folder.mkdir(parents=True, exist_ok=True)
    sections = {
        "store": {"url": store_url},
        "warehouse": warehouse or {"kind": "duckdb", "path": "warehouse.duckdb"},
        "stager": {"spool_dir": "spool", **(stager or {})},
        "loader": dict(loader or {}),
    }
    lines = []
    for header, body in sections.items():
        lines.append(f"[{header}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in body.items())
    for name, body in tables.items():
        lines.append(f"[tables.{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in body.items())
    path = folder / "dropload.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
