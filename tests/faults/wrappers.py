"""Fault seams around the real embedded backends: a LocalStore and a DuckDB file.

`FaultyStore` wraps a real store; a fault hits the next calls of one operation
whose object name matches a pattern:

- ``unavailable``: raise StoreUnavailable before acting (a 503 past the retries);
- ``lost``: act, then raise StoreUnavailable (the answer never came back);
- ``repeat``: act, then act again and answer what the repeat answers (what a
  client retry after a lost answer sees: 412, 404, ...).

`FaultyWarehouse` wraps a real warehouse; its faults hit the next loads:

- ``lost``: run the load, then raise WarehouseError (a lost jobs.insert answer);
- ``job_error``: do not run the job, record it in the ledger as DONE with an
  error result of the given reason (as BigQuery would list it), answer that;
- ``running``: run the load but answer it as RUNNING (the wait timed out).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from dropload.errors import StoreUnavailable, WarehouseError
from dropload.store.base import ObjectInfo, Store
from dropload.warehouse.base import JobResult, LoadRequest, Warehouse
from dropload.warehouse.duckdb import LEDGER, DuckDBWarehouse

T = TypeVar("T")


@dataclass
class Fault:
    """One armed fault: operation, name pattern, kind, uses left."""

    op: str
    kind: str
    pattern: str = ""
    times: int = 1
    reason: str = "backendError"
    hits: int = 0

    def takes(self, op: str, name: str) -> bool:
        """True (and one use spent) when the call is one this fault hits."""
        if self.op != op or self.hits >= self.times:
            return False
        if re.search(self.pattern, name) is None:
            return False
        self.hits += 1
        return True


class FaultyStore(Store):
    """A real store with faults armed by the test."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.faults: list[Fault] = []
        self._lock = threading.Lock()

    def arm(self, fault: Fault) -> Fault:
        """Add a fault; returns it so the test can read its hits."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def write(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """The real write, through the armed faults."""
        return self._call(
            "write",
            name,
            lambda: self.inner.write(
                name,
                data,
                if_generation_match=if_generation_match,
                metadata=metadata,
            ),
        )

    def stat(self, name: str) -> ObjectInfo | None:
        """Delegates."""
        return self.inner.stat(name)

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Delegates."""
        return self.inner.list(prefix)

    def read(self, name: str) -> bytes:
        """Delegates."""
        return self.inner.read(name)

    def copy(self, src: ObjectInfo, dst: str) -> ObjectInfo:
        """The real copy, through the armed faults (matched on `dst`)."""
        return self._call("copy", dst, lambda: self.inner.copy(src, dst))

    def delete(self, name: str, *, if_generation_match: int | None = None) -> None:
        """The real delete, through the armed faults."""
        self._call(
            "delete",
            name,
            lambda: self.inner.delete(name, if_generation_match=if_generation_match),
        )

    def uri(self, name: str) -> str:
        """Delegates."""
        return self.inner.uri(name)

    def close(self) -> None:
        """Delegates."""
        self.inner.close()

    def _call(self, op: str, name: str, fn: Callable[[], T]) -> T:
        with self._lock:
            fault = next((f for f in self.faults if f.takes(op, name)), None)
        if fault is None:
            return fn()
        if fault.kind == "unavailable":
            raise StoreUnavailable(name, f"injected: {op} refused")
        answer = fn()
        if fault.kind == "lost":
            raise StoreUnavailable(name, f"injected: {op} answer lost")
        if fault.kind == "repeat":
            del answer
            return fn()
        raise ValueError(f"unknown store fault {fault.kind!r}")


class FaultyWarehouse(Warehouse):
    """A real warehouse with load faults armed by the test."""

    def __init__(self, inner: Warehouse) -> None:
        self.inner = inner
        self.faults: list[Fault] = []
        self.loads: list[str] = []
        """Job ids of every load() call, in order."""

    def arm(self, fault: Fault) -> Fault:
        """Add a load fault (its `pattern` is matched on the job id)."""
        self.faults.append(fault)
        return fault

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        """The real load, through the armed faults."""
        self.loads.append(request.job_id)
        fault = next((f for f in self.faults if f.takes("load", request.job_id)), None)
        if fault is None:
            return self.inner.load(request, timeout=timeout)
        if fault.kind == "job_error":
            return self._record_failed_job(request, fault.reason)
        result = self.inner.load(request, timeout=timeout)
        if fault.kind == "lost":
            raise WarehouseError(f"job {request.job_id}: injected: answer lost")
        if fault.kind == "running":
            return replace(result, state="RUNNING", ended=None)
        raise ValueError(f"unknown warehouse fault {fault.kind!r}")

    def get_job(self, job_id: str) -> JobResult | None:
        """Delegates."""
        return self.inner.get_job(job_id)

    def list_load_jobs(self, destination: str, since: datetime) -> list[JobResult]:
        """Delegates."""
        return self.inner.list_load_jobs(destination, since)

    def row_count(self, destination: str) -> int:
        """Delegates."""
        return self.inner.row_count(destination)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Delegates."""
        return self.inner.query(sql)

    def close(self) -> None:
        """Delegates."""
        self.inner.close()

    def _record_failed_job(self, request: LoadRequest, reason: str) -> JobResult:
        existing = self.inner.get_job(request.job_id)
        if existing is not None:
            return existing
        now = datetime.now(UTC)
        result = JobResult(
            job_id=request.job_id,
            state="DONE",
            destination=request.target,
            error_reason=reason,
            error_message=f"injected {reason}",
            created=now,
            ended=now,
        )
        assert isinstance(self.inner, DuckDBWarehouse), "job_error needs DuckDB"
        self.inner.query(
            f"INSERT INTO {LEDGER} (job_id, destination, state, error_reason,"
            " error_message, created, ended) VALUES"
            f" ('{result.job_id}', '{result.destination}', 'DONE', '{reason}',"
            f" 'injected {reason}', now(), now())"
        )
        return result
