"""Fault-injecting seams in front of the real warehouse and store (no mocks).

`SeamWarehouse` wraps a real warehouse: a hook may answer a load instead of it
(a failed job, as BigQuery would report it), or rewrite what the real job
answered. `FlakyStore` wraps a real store and fails writes on demand.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from dropload.errors import StoreUnavailable
from dropload.store.base import ObjectInfo, Store
from dropload.warehouse.base import JobResult, LoadRequest, Warehouse


class SeamWarehouse(Warehouse):
    """The real warehouse with hooks around load(); other calls delegate."""

    def __init__(self, inner: Warehouse) -> None:
        self.inner = inner
        self.before_load: Callable[[LoadRequest], JobResult | None] = lambda r: None
        """Runs first; a result it returns is answered instead of loading."""
        self.after_load: Callable[[JobResult], JobResult] = lambda r: r
        """Rewrites the real job's answer (its error message, say)."""
        self.loads: list[LoadRequest] = []

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        """Record the request, run the hooks and the real load."""
        self.loads.append(request)
        answer = self.before_load(request)
        if answer is not None:
            return answer
        return self.after_load(self.inner.load(request, timeout=timeout))

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


def without_file_names(result: JobResult) -> JobResult:
    """The job's answer with file names cut from its message, as when BigQuery
    names only the wildcard URI."""
    message = result.error_message
    if message is None:
        return result
    return replace(result, error_message=message.split(" in file ")[0], errors=())


class DelegatingStore(Store):
    """A real store behind a seam: every call delegates; subclasses wrap write()."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url

    def write(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Delegates."""
        return self.inner.write(
            name, data, if_generation_match=if_generation_match, metadata=metadata
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
        """Delegates."""
        return self.inner.copy(src, dst)

    def delete(self, name: str, *, if_generation_match: int | None = None) -> None:
        """Delegates."""
        self.inner.delete(name, if_generation_match=if_generation_match)

    def uri(self, name: str) -> str:
        """Delegates."""
        return self.inner.uri(name)


class FlakyStore(DelegatingStore):
    """A real store whose writes fail: a share at random, or all while `down`.

    Half of the random failures happen after the write reached the store (the
    answer was lost); `down_flag` is a file whose presence means the store is
    down, so a test can switch it for many processes at once.
    """

    def __init__(
        self, inner: Store, *, failure_rate: float, down_flag: Path, seed: int
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.failure_rate = failure_rate
        self.down_flag = down_flag
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.failures = 0
        self.lost_answers = 0
        self.refused_down = 0

    def write(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Write through the real store, unless this write is chosen to fail."""
        if self.down_flag.exists():
            self.refused_down += 1
            raise StoreUnavailable(name, "store down (injected)")
        with self._lock:
            roll = self._random.random()
        if roll < self.failure_rate / 2:
            self.failures += 1
            raise StoreUnavailable(name, "connection reset (injected)")
        info = self.inner.write(
            name, data, if_generation_match=if_generation_match, metadata=metadata
        )
        if roll < self.failure_rate:
            self.lost_answers += 1
            raise StoreUnavailable(name, "answer lost (injected)")
        return info
