"""Run the real `loader` command with a crash point: kill -9 at a chosen moment.

Test-only. The crash harness starts this file as a child process in place of the
`loader` console script; it behaves exactly like it, plus:

- DROPLOAD_CRASH_AT=<point>:<n> kills the process with SIGKILL the n-th time it
  reaches <point>: a named step of a tick (before the step acts), or `copy`,
  `delete` or `write` (right after that store call returned, before the tick
  saw the answer);
- DROPLOAD_STEP_LOG=<file> appends every step reached to that file, so that the
  harness can time a random kill from the start of the tick;
- DROPLOAD_JOB_FAILURES=<rate> makes that share of job ids fail, chosen by a
  hash of the id so a job id always fails the same way, with rateLimitExceeded
  (four in five) or a table-level invalid, and never runs them. DuckDB records
  the failed job in its ledger, as BigQuery would list it; for BigQuery the job
  is answered without being inserted (the emulator cannot fail a load on
  demand).

With `--zygote` as its only argument it imports everything once, then forks one
such child per JSON command read from stdin ({"argv": [...], "env": {...},
"stderr": path}), answering {"pid": N} when the child starts, and {"status": N}
(negative: killed by that signal) once the child ended and the next line asked
to reap it. Each child is a fresh process running the command; only the imports
are shared, which saves most of the start-up time of a run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

CRASH_ENV = "DROPLOAD_CRASH_AT"
STEP_LOG_ENV = "DROPLOAD_STEP_LOG"
FAILURES_ENV = "DROPLOAD_JOB_FAILURES"
STORE_POINTS = ("copy", "delete", "write")
"""Crash points right after a store call returned."""


class CrashPoint:
    """Kills this process the n-th time a named point is reached."""

    def __init__(self, spec: str | None, log_path: str | None) -> None:
        name, _, count = (spec or ":0").rpartition(":")
        self.name = name
        self.count = int(count)
        self.seen = 0
        self.log_path = log_path
        self._lock = threading.Lock()

    def reached(self, point: str) -> None:
        """Log the point; die here when it is the chosen one."""
        with self._lock:
            if self.log_path and point not in STORE_POINTS:
                with open(self.log_path, "a") as log:
                    log.write(point + "\n")
            if point != self.name:
                return
            self.seen += 1
            if self.seen == self.count:
                os.kill(os.getpid(), signal.SIGKILL)


def _after(point: CrashPoint, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        point.reached(name)
        return result

    return wrapper


def install(point: CrashPoint) -> None:
    """Hook the crash point into every Loader and both stores."""
    from dropload.loader import runner
    from dropload.store.gcs import GcsStore
    from dropload.store.local import LocalStore

    original = runner.Loader.__init__

    def init(self: runner.Loader, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        inner = self.step_hook

        def hook(step: str) -> None:
            point.reached(step)
            inner(step)

        self.step_hook = hook

    runner.Loader.__init__ = init  # type: ignore[method-assign]
    for cls in (LocalStore, GcsStore):
        for name in STORE_POINTS:
            setattr(cls, name, _after(point, name, getattr(cls, name)))


def run(argv: list[str]) -> None:
    """Install the crash point, then run the `loader` command."""
    install(CrashPoint(os.environ.get(CRASH_ENV), os.environ.get(STEP_LOG_ENV)))
    if os.environ.get(FAILURES_ENV):
        fail_jobs(float(os.environ[FAILURES_ENV]))
    from dropload.cli import main as loader

    loader(argv, prog_name="loader")


def _fork_child(command: dict[str, Any]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        for name in (CRASH_ENV, STEP_LOG_ENV, FAILURES_ENV):
            os.environ.pop(name, None)
        os.environ.update(command["env"])
        null = os.open(os.devnull, os.O_WRONLY)
        err = os.open(command["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(null, 1)
        os.dup2(err, 2)
        sys.stdin.close()
        try:
            run(command["argv"])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def zygote() -> None:
    """Import once, then fork a loader child per command line on stdin."""
    import duckdb
    from google.cloud import bigquery, storage

    import dropload.cli
    import dropload.store.gcs
    import dropload.warehouse.bigquery
    import dropload.warehouse.duckdb

    del duckdb, bigquery, storage, dropload

    for line in sys.stdin:
        pid = _fork_child(json.loads(line))
        print(json.dumps({"pid": pid}), flush=True)
        # Reap only when asked, so the pid stays ours (a zombie at worst)
        # while the harness may still send it a signal.
        sys.stdin.readline()
        _, status = os.waitpid(pid, 0)
        code = (
            -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        )
        print(json.dumps({"status": code}), flush=True)


INJECTED_MESSAGES = {
    "rateLimitExceeded": "Exceeded rate limits (injected)",
    "invalid": "Provided Schema does not match Table (injected)",
}
"""The failures injected: a rate limit, and a table-level `invalid` (the shards go
back to staging; none is quarantined, since none is bad)."""


def _failure(job_id: str, rate: float) -> str | None:
    digest = hashlib.sha256(job_id.encode()).digest()
    roll = int.from_bytes(digest[:4], "big") / 2**32
    if roll >= rate:
        return None
    return "rateLimitExceeded" if roll < rate * 0.8 else "invalid"


def fail_jobs(rate: float) -> None:
    """Make jobs fail for a `rate` share of job ids (see the module doc)."""
    from dropload.warehouse.base import JobResult
    from dropload.warehouse.bigquery import BigQueryWarehouse
    from dropload.warehouse.duckdb import LEDGER, DuckDBWarehouse

    original = DuckDBWarehouse.load
    original_bq = BigQueryWarehouse.load

    def load_bq(self: BigQueryWarehouse, request: Any, *, timeout: float) -> Any:
        reason = _failure(request.job_id, rate)
        if reason is None:
            return original_bq(self, request, timeout=timeout)
        message = INJECTED_MESSAGES[reason]
        return JobResult(
            request.job_id, "DONE", error_reason=reason, error_message=message
        )

    def load(self: DuckDBWarehouse, request: Any, *, timeout: float) -> Any:
        reason = _failure(request.job_id, rate)
        if reason is not None and self.get_job(request.job_id) is None:
            self.query(
                f"INSERT INTO {LEDGER} (job_id, destination, state, error_reason,"
                f" error_message, created, ended) VALUES ('{request.job_id}',"
                f" '{request.target}', 'DONE', '{reason}',"
                f" '{INJECTED_MESSAGES[reason]}', now(), now())"
            )
        return original(self, request, timeout=timeout)

    DuckDBWarehouse.load = load  # type: ignore[method-assign]
    BigQueryWarehouse.load = load_bq  # type: ignore[method-assign]


def main() -> None:
    """`--zygote`, or a single run of the `loader` command."""
    if sys.argv[1:] == ["--zygote"]:
        zygote()
    else:
        run(sys.argv[1:])


if __name__ == "__main__":
    main()
