"""Prometheus metrics of a loader: what it loaded, and what waits in the store.

Counters and the job-duration histogram are fed as jobs end and ticks report.
Gauges (staged shards and bytes, the oldest staged shard's age, quarantined
shards, open batches, load jobs in the last 24 hours against the budget) are
read from the store and the warehouse when scraped, at most every
`refresh_seconds`, so a busy scraper does not list the bucket on every call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dropload import layout
from dropload.config import Config
from dropload.errors import DroploadError
from dropload.shard import is_shard_name
from dropload.store.base import Store
from dropload.warehouse.base import (
    LOADS_PER_TABLE_PER_DAY,
    JobResult,
    LoadRequest,
    Warehouse,
)

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from dropload.loader.tick import TickReport

logger = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 15.0
"""How long store and warehouse readings are reused between scrapes."""

JOB_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
"""Seconds; load jobs take from about a second to the job timeout (an hour)."""

_SEEN_JOBS = 10_000
"""Job ids remembered, so a job fetched again (409, recovery) counts once."""

WINDOW = timedelta(hours=24)
"""BigQuery's load-job limit counts over a rolling 24 hours."""


class LoaderMetrics:
    """The metrics of one loader process, in their own registry."""

    def __init__(
        self,
        config: Config,
        store: Callable[[], Store],
        warehouse: Callable[[], Warehouse],
        *,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    ) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self._events = _Events(self.registry)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_lock = threading.Lock()
        self.registry.register(
            _StoreCollector(config, store, warehouse, refresh_seconds)
        )

    def wrap(self, warehouse: Warehouse) -> Warehouse:
        """`warehouse`, reporting every load job it ends to these metrics."""
        return MeteredWarehouse(warehouse, self)

    def observe_job(self, table: str, result: JobResult) -> None:
        """Count a job that is DONE: its outcome, rows, duration, failure reason."""
        if not result.done or not self._first_sight(result.job_id):
            return
        if result.created and result.ended:
            seconds = (result.ended - result.created).total_seconds()
            self._events.duration.labels(table).observe(max(seconds, 0.0))
        if result.succeeded:
            self._events.jobs.labels(table, "succeeded").inc()
            self._events.rows.labels(table).inc(result.output_rows or 0)
            return
        self._events.jobs.labels(table, "failed").inc()
        self._events.failures.labels(table, result.error_reason or "unknown").inc()

    def observe_tick(self, report: TickReport) -> None:
        """Count a tick by its status, and the shards and bytes it archived."""
        self._events.ticks.labels(report.table, report.status).inc()
        self._events.shards.labels(report.table).inc(report.shards)
        self._events.bytes.labels(report.table).inc(report.bytes)

    def _first_sight(self, job_id: str) -> bool:
        with self._seen_lock:
            if job_id in self._seen:
                return False
            self._seen[job_id] = None
            if len(self._seen) > _SEEN_JOBS:
                self._seen.popitem(last=False)
            return True


def start_metrics_server(
    metrics: LoaderMetrics, host: str, port: int
) -> tuple[WSGIServer, int]:
    """Serve /metrics on host:port in a daemon thread; the server and its port.

    Port 0 picks a free port. Raises OSError when the address is taken.
    """
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    bound = int(server.server_address[1])
    logger.info("metrics: serving on http://%s:%d/metrics", host, bound)
    return server, bound


@dataclass
class _Events:
    """The metrics fed as jobs end and ticks report."""

    registry: CollectorRegistry
    rows: Counter = field(init=False)
    shards: Counter = field(init=False)
    bytes: Counter = field(init=False)
    jobs: Counter = field(init=False)
    failures: Counter = field(init=False)
    ticks: Counter = field(init=False)
    duration: Histogram = field(init=False)

    def __post_init__(self) -> None:
        reg, table = self.registry, ["table"]
        self.rows = Counter(
            "dropload_rows_loaded", "Rows load jobs wrote.", table, registry=reg
        )
        self.shards = Counter(
            "dropload_shards_loaded",
            "Shards archived after a load.",
            table,
            registry=reg,
        )
        self.bytes = Counter(
            "dropload_bytes_loaded", "Bytes of archived shards.", table, registry=reg
        )
        self.jobs = Counter(
            "dropload_load_jobs",
            "Load jobs that ended, by outcome.",
            ["table", "outcome"],
            registry=reg,
        )
        self.failures = Counter(
            "dropload_failed_load_jobs",
            "Failed load jobs by BigQuery error reason.",
            ["table", "reason"],
            registry=reg,
        )
        self.ticks = Counter(
            "dropload_ticks", "Ticks by status.", ["table", "status"], registry=reg
        )
        self.duration = Histogram(
            "dropload_load_job_duration_seconds",
            "From job creation to its end.",
            table,
            buckets=JOB_DURATION_BUCKETS,
            registry=reg,
        )


class MeteredWarehouse(Warehouse):
    """A warehouse that tells LoaderMetrics about every load job it ends."""

    def __init__(self, inner: Warehouse, metrics: LoaderMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        """The inner load; its result is counted."""
        result = self.inner.load(request, timeout=timeout)
        self.metrics.observe_job(request.table.name, result)
        return result

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
        """Closes the inner warehouse."""
        self.inner.close()


@dataclass(frozen=True)
class _TableReading:
    """One table's figures as read from the store and the warehouse."""

    staged_shards: int
    staged_bytes: int
    oldest_staged_age: float
    quarantined_shards: int
    open_batches: int
    jobs_24h: int
    failed_jobs_24h: int
    other_tools_jobs_24h: int


class _StoreCollector(Collector):
    """Gauges read from the store and the warehouse at scrape time (cached)."""

    def __init__(
        self,
        config: Config,
        store: Callable[[], Store],
        warehouse: Callable[[], Warehouse],
        refresh_seconds: float,
    ) -> None:
        self.config = config
        self.store = store
        self.warehouse = warehouse
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._readings: dict[str, _TableReading] = {}
        self._read_at = float("-inf")

    def collect(self) -> Iterator[Metric]:
        """Yield every gauge, reading the store when the readings are stale."""
        readings = self._current()
        for name, help_text, attribute in _GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=["table"])
            for table, reading in sorted(readings.items()):
                family.add_metric([table], float(getattr(reading, attribute)))
            yield family
        yield self._budget()

    def _current(self) -> dict[str, _TableReading]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_seconds:
                for table in self.config.tables:
                    self._refresh(table)
                self._read_at = time.monotonic()
            return dict(self._readings)

    def _refresh(self, table: str) -> None:
        try:
            self._readings[table] = self._read(table)
        except (DroploadError, OSError) as exc:
            logger.warning("metrics: table %s: cannot read: %s", table, exc)

    def _read(self, table: str) -> _TableReading:
        store, now = self.store(), datetime.now(UTC)
        staged = [
            s for s in store.list(layout.staging(table)) if is_shard_name(s.basename)
        ]
        quarantined = [
            q
            for q in store.list(layout.quarantine(table))
            if not q.name.endswith(layout.ERROR_SUFFIX)
        ]
        destination = self.config.table(table).destination
        jobs = self.warehouse().list_load_jobs(destination, now - WINDOW)
        oldest = min((s.updated for s in staged), default=now)
        return _TableReading(
            staged_shards=len(staged),
            staged_bytes=sum(s.size for s in staged),
            oldest_staged_age=max((now - oldest).total_seconds(), 0.0),
            quarantined_shards=len(quarantined),
            open_batches=len(store.list(layout.intents(table))),
            jobs_24h=len(jobs),
            failed_jobs_24h=sum(1 for j in jobs if j.done and not j.succeeded),
            other_tools_jobs_24h=sum(1 for j in jobs if not j.ours),
        )

    def _budget(self) -> Metric:
        family = GaugeMetricFamily(
            "dropload_load_job_budget",
            "Load jobs a table may run in 24 hours (configured budget; limit 1,500).",
            labels=["table", "kind"],
        )
        for table in sorted(self.config.tables):
            family.add_metric([table, "budget"], self.config.daily_job_budget(table))
            family.add_metric([table, "limit"], LOADS_PER_TABLE_PER_DAY)
        return family


_GAUGES = (
    ("dropload_staged_shards", "Shards waiting in staging.", "staged_shards"),
    ("dropload_staged_bytes", "Bytes waiting in staging.", "staged_bytes"),
    (
        "dropload_oldest_staged_shard_age_seconds",
        "Age of the oldest staged shard (0 when none): freshness.",
        "oldest_staged_age",
    ),
    (
        "dropload_quarantined_shards",
        "Shards set aside in quarantine.",
        "quarantined_shards",
    ),
    ("dropload_open_batches", "Batches claimed and not yet archived.", "open_batches"),
    (
        "dropload_load_jobs_last_24h",
        "Load jobs into the table in the last 24 hours, failed and others' included.",
        "jobs_24h",
    ),
    (
        "dropload_failed_load_jobs_last_24h",
        "Failed load jobs into the table in the last 24 hours.",
        "failed_jobs_24h",
    ),
    (
        "dropload_other_tools_load_jobs_last_24h",
        "Load jobs into the table in the last 24 hours that dropload did not run.",
        "other_tools_jobs_24h",
    ),
)
