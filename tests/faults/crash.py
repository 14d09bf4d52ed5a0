"""The crash harness: stage records with unique ids, kill `loader run-once` with
SIGKILL at named steps and at random moments, rerun until the stage is empty,
then check that every id is in its table exactly once and nothing is left over.

Used by tests/test_crash.py (fixed seeds, 100+ kills embedded, 30+ against the
emulators) and by bench/crash.py (1,000 kills).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dropload import layout
from dropload.manifest import Manifest
from dropload.store.base import Store

from .crashpoint import CRASH_ENV, FAILURES_ENV, STEP_LOG_ENV

TESTS = Path(__file__).resolve().parents[1]
CHILD = TESTS / "faults" / "crashpoint.py"

STEP_POINTS = (
    "recover",
    "write-intent",
    "claim",
    "load",
    "judge",
    "write-manifest",
    "archive",
    "close-intent",
)
"""Named steps of a tick that every successful batch passes."""

FAILURE_POINTS = ("rewrite-intent", "unclaim")
"""Named steps only a failed job leads to."""

STORE_POINTS = ("copy", "delete", "write")
"""Right after a store call returned (mid-move, after an intent or lease write)."""

CHILD_TIMEOUT_SECONDS = 120.0
"""A child that runs longer than this is a hang, reported as a failure."""

MAX_DRAIN_RUNS = 10
"""Clean runs allowed after the last kill to empty the stage."""


@dataclass
class Backend:
    """What the harness needs of one backend."""

    config_path: Path
    store: Store
    tables: tuple[str, ...]
    stage: Callable[[str, list[dict[str, Any]]], None]
    """Stage records into a table through the stager (shards flushed)."""
    table_ids: Callable[[str], list[int]]
    """Ids in the table, sorted, duplicates kept."""
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Tally:
    """What a harness run did."""

    kills: int = 0
    runs: int = 0
    staged_ids: int = 0
    by_point: Counter[str] = field(default_factory=Counter)
    exits: Counter[int] = field(default_factory=Counter)


class CrashHarness:
    """Kills loader children at chosen points; checks the outcome afterwards."""

    def __init__(
        self,
        backend: Backend,
        *,
        seed: int,
        random_share: float = 0.25,
        records_per_shard: int = 5,
        job_failures: float = 0.0,
    ) -> None:
        """`job_failures`: share of job ids that fail (see crashpoint.py)."""
        self.backend = backend
        self.job_failures = job_failures
        self.points = STEP_POINTS + STORE_POINTS
        if job_failures:
            self.points += FAILURE_POINTS
        self.rng = random.Random(seed)
        self.random_share = random_share
        self.records_per_shard = records_per_shard
        self.tally = Tally()
        self.staged: dict[str, list[int]] = {t: [] for t in backend.tables}
        self._next_id = 0
        self._window = 0.5
        self._forks: _Zygote | None = None

    def run(self, kills: int) -> Tally:
        """Kill `kills` children, then drain with clean runs."""
        try:
            while self.tally.kills < kills:
                if self.tally.runs > 3 * kills + 50:
                    runs = self.tally.runs
                    raise AssertionError(
                        f"only {self.tally.kills} kills in {runs} runs"
                    )
                if not self._has_staged() or self.rng.random() < 0.5:
                    self.stage_round()
                self._kill_once()
            self.drain()
        finally:
            self.close()
        return self.tally

    def stage_round(self) -> None:
        """Stage one to three shards of fresh ids into every table."""
        for table in self.backend.tables:
            shards = self.rng.randint(1, 3)
            count = shards * self.records_per_shard
            ids = list(range(self._next_id, self._next_id + count))
            self._next_id += count
            self.backend.stage(table, [{"id": i, "name": f"n{i}"} for i in ids])
            self.staged[table].extend(ids)
            self.tally.staged_ids += count

    def drain(self) -> None:
        """Run clean children until nothing is staged, claimed or leased."""
        for _ in range(MAX_DRAIN_RUNS):
            self._child(None)
            if not self.leftovers():
                return
        raise AssertionError(f"not drained: {self.leftovers()[:10]}")

    def leftovers(self) -> list[str]:
        """Objects in staging, intents, batches and leases of every table."""
        store, found = self.backend.store, []
        for table in self.backend.tables:
            for prefix in (
                layout.staging(table),
                layout.intents(table),
                layout.batches(table),
            ):
                found += [i.name for i in store.list(prefix)]
            if store.stat(layout.lease(table)) is not None:
                found.append(layout.lease(table))
        return found

    def problems(self) -> list[str]:
        """Every way the outcome differs from exactly once; empty when right."""
        found = []
        for table in self.backend.tables:
            found += self._table_problems(table)
        return found

    def _table_problems(self, table: str) -> list[str]:
        ids = self.backend.table_ids(table)
        expected = sorted(self.staged[table])
        found = []
        if ids != expected:
            twice = [i for i, n in Counter(ids).items() if n > 1]
            lost = sorted(set(expected) - set(ids))
            found.append(
                f"{table}: {len(twice)} ids twice {twice[:5]}, lost {lost[:5]}"
            )
        archived, listed, rows = self._archive(table)
        if sorted(listed) != archived or len(set(listed)) != len(listed):
            found.append(f"{table}: manifests list {len(listed)} shards for {archived}")
        if rows != len(ids):
            found.append(f"{table}: manifests count {rows} rows, table has {len(ids)}")
        return found

    def _archive(self, table: str) -> tuple[list[str], list[str], int]:
        store = self.backend.store
        archived, listed, rows = [], [], 0
        for info in store.list(layout.archive(table)):
            if info.name.endswith(layout.MANIFEST_SUFFIX):
                manifest = Manifest.from_json(store.read(info.name))
                listed += [s.name for s in manifest.shards]
                rows += manifest.rows
            else:
                archived.append(info.basename)
        return sorted(archived), listed, rows

    def _has_staged(self) -> bool:
        store = self.backend.store
        return any(store.list(layout.staging(t)) for t in self.backend.tables)

    def _kill_once(self) -> None:
        if self.rng.random() < self.random_share:
            point, delay = "random", self.rng.uniform(0, self._window)
            killed = self._child(None, delay=delay)
        else:
            point = self.rng.choice(self.points)
            count = self.rng.randint(1, 3)
            killed = self._child(f"{point}:{count}")
        if killed:
            self.tally.kills += 1
            self.tally.by_point[point] += 1

    def _child(self, crash: str | None, delay: float | None = None) -> bool:
        """Run one `loader run-once`; True when it died of SIGKILL."""
        with tempfile.TemporaryDirectory(prefix="dropload-crash-") as tmp:
            log, errors = Path(tmp) / "steps", Path(tmp) / "stderr"
            argv = ["--config", str(self.backend.config_path)]
            argv += ["--log-level", "WARNING", "run-once", "--format", "json"]
            started = time.monotonic()
            pid = self._zygote().start(argv, self._env(crash, log), errors)
            if delay is not None:
                _kill_after_first_step(pid, log, delay)
            code = self._zygote().wait()
            stderr = errors.read_text(errors="replace")
        self.tally.runs += 1
        self.tally.exits[code] += 1
        if crash is None and delay is None:
            self._window = max(0.05, time.monotonic() - started)
        if code not in (0, 1, -signal.SIGKILL):
            raise AssertionError(f"loader exited {code}: {stderr[-2000:]}")
        return code == -signal.SIGKILL

    def close(self) -> None:
        """Stop the zygote process."""
        if self._forks is not None:
            self._forks.close()
            self._forks = None

    def _zygote(self) -> _Zygote:
        if self._forks is None:
            self._forks = _Zygote(self._env(None, None))
        return self._forks

    def _env(self, crash: str | None, log: Path | None) -> dict[str, str]:
        env = {**self.backend.env}
        if self.job_failures:
            env[FAILURES_ENV] = str(self.job_failures)
        if log is not None:
            env[STEP_LOG_ENV] = str(log)
        if crash is not None:
            env[CRASH_ENV] = crash
        return env


class _Zygote:
    """crashpoint.py --zygote: forks one loader child per command."""

    def __init__(self, env: Mapping[str, str]) -> None:
        path = [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
        full = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(path)}
        for name in (CRASH_ENV, STEP_LOG_ENV, FAILURES_ENV):
            full.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), "--zygote"],
            env=full,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def start(self, argv: list[str], env: Mapping[str, str], stderr: Path) -> int:
        """Fork a child running `loader argv`; its pid."""
        command = {"argv": argv, "env": dict(env), "stderr": str(stderr)}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return int(self._answer()["pid"])

    def wait(self) -> int:
        """Reap the child; its exit code (negative: the signal that killed it)."""
        assert self.process.stdin is not None
        self.process.stdin.write("reap\n")
        self.process.stdin.flush()
        return int(self._answer()["status"])

    def close(self) -> None:
        """End the zygote (it exits when its stdin closes)."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(CHILD_TIMEOUT_SECONDS)
        self.process.stdout.close()

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"zygote exited {self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer


def _kill_after_first_step(pid: int, log: Path, delay: float) -> None:
    """SIGKILL the child `delay` seconds after its tick reached its first step.

    The child may have ended already; the zygote reaps it only at wait(), so
    the pid is still the child's (a zombie at worst) and never another's.
    """
    deadline = time.monotonic() + CHILD_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if log.exists() and log.stat().st_size:
            break
        time.sleep(0.005)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
