"""Crash bench: 1,000 SIGKILLs of `loader run-once`, then exactly-once checks.

    .venv/bin/python bench/crash.py [--kills 1000] [--seed 1] [--tables 2]
                                    [--job-failures 0.2]

Runs the crash harness of the tests (tests/faults/crash.py) on a fresh embedded
project in a temporary folder: stages records with unique ids, kills the loader
at every named step of a tick, right after store calls and at random moments,
and reruns it until the stage is empty; a fifth of the job ids fail (transiently
or on their data), so retries and unclaims are killed too. Then checks that
every id is in its table once, nothing is left in intents, batches or leases,
and the manifests list every archived shard once. Prints the tally and exits 1
on any problem.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from dropload.config import load_config  # noqa: E402
from dropload.stager import Stager  # noqa: E402
from embedded import make_project, table_ids  # noqa: E402
from faults.crash import Backend, CrashHarness  # noqa: E402


def _backend(folder: Path, tables: tuple[str, ...]) -> Backend:
    project = make_project(
        folder,
        stager={"max_records": 5},
        tables={t: {"destination": f"ds.{t}"} for t in tables},
    )
    config = load_config(project.config_path)
    warehouse = project.warehouse()

    def stage(table: str, rows: list[dict[str, Any]]) -> None:
        with Stager(config, table) as stager:
            stager.extend(rows)

    return Backend(
        config_path=project.config_path,
        store=project.store(),
        tables=tables,
        stage=stage,
        table_ids=lambda t: table_ids(warehouse, f"ds.{t}"),
    )


def main() -> int:
    """Run the bench; 0 when every check passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tables", type=int, default=2)
    parser.add_argument(
        "--job-failures", type=float, default=0.2, help="share of job ids that fail"
    )
    args = parser.parse_args()
    tables = tuple(f"t{i}" for i in range(args.tables))
    with tempfile.TemporaryDirectory(prefix="dropload-crash-bench-") as tmp:
        harness = CrashHarness(
            _backend(Path(tmp), tables), seed=args.seed, job_failures=args.job_failures
        )
        started = time.monotonic()
        tally = harness.run(args.kills)
        elapsed = time.monotonic() - started
        problems = harness.problems() + [f"left: {n}" for n in harness.leftovers()]
    print(f"crash bench: {tally.kills} kills in {tally.runs} runs, {elapsed:.0f} s")
    print(f"  ids staged: {tally.staged_ids}; exits: {dict(tally.exits)}")
    print(f"  kills by point: {dict(sorted(tally.by_point.items()))}")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    print("  every id once, nothing left over" if not problems else "  FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
