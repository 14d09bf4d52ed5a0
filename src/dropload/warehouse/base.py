"""The warehouse contract: run a load job by id, judge it, list a table's jobs."""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dropload.config import TableConfig
from dropload.schema import SchemaField

JOB_ID_MAX_LENGTH = 1024
"""BigQuery job ids: letters, digits, `_` and `-`, at most 1,024 characters."""

MAX_SOURCE_URIS = 10_000
"""BigQuery accepts at most 10,000 source URIs in one load job."""

MAX_FILES_PER_JOB = 10_000_000
"""BigQuery reads at most 10,000,000 files in one load job."""

MAX_BYTES_PER_JOB = 15 * 10**12
"""BigQuery loads at most 15 TB in one load job."""

MAX_GZIP_FILE_BYTES = 4 * 10**9
"""BigQuery reads gzip'd NDJSON files of at most 4 GB."""

MAX_NDJSON_ROW_BYTES = 100 * 1024 * 1024
"""BigQuery refuses an NDJSON row (one line) larger than 100 MB."""

LOADS_PER_TABLE_PER_DAY = 1500
"""BigQuery's hard limit of load jobs per table per day, failed ones included."""


@dataclass(frozen=True)
class LoadRequest:
    """One load job to run: what to read, where to write, under which id."""

    job_id: str
    table: TableConfig
    fields: tuple[SchemaField, ...]
    source_uris: tuple[str, ...]
    destination: str = ""
    """`dataset.table`, defaulting to the table's configured destination."""
    write_disposition: str | None = None
    partition: str | None = None
    """A partition id (`20260126`) to replace with WRITE_TRUNCATE, for replays."""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """The destination table, `dataset.table`."""
        return self.destination or self.table.destination


@dataclass(frozen=True)
class JobResult:
    """A job as the warehouse reports it."""

    job_id: str
    state: str
    destination: str = ""
    error_reason: str | None = None
    error_message: str | None = None
    errors: tuple[Mapping[str, Any], ...] = ()
    output_rows: int | None = None
    bad_records: int = 0
    input_files: int | None = None
    created: datetime | None = None
    ended: datetime | None = None
    ours: bool = True
    """False for a job another tool ran on the same table."""

    @property
    def done(self) -> bool:
        """The job has ended, well or badly."""
        return self.state == "DONE"

    @property
    def succeeded(self) -> bool:
        """DONE with no error result: only then may its shards be archived."""
        return self.done and self.error_reason is None


class Warehouse(abc.ABC):
    """Where load jobs run: BigQuery, or a DuckDB file with a job ledger."""

    @abc.abstractmethod
    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        """Insert the load job under its id and wait up to `timeout` seconds.

        An id that exists already is not run again: the existing job is fetched
        and returned. Failures come back as a JobResult with an error_reason;
        raises WarehouseError only when the warehouse cannot be reached.
        """

    @abc.abstractmethod
    def get_job(self, job_id: str) -> JobResult | None:
        """The job with this id, or None when the warehouse never saw it."""

    @abc.abstractmethod
    def list_load_jobs(self, destination: str, since: datetime) -> list[JobResult]:
        """Every load job into `destination` created since `since`, any outcome."""

    @abc.abstractmethod
    def row_count(self, destination: str) -> int:
        """Rows in the table (0 when it does not exist)."""

    @abc.abstractmethod
    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a read-only query; for status pages, demos and tests."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def check_job_id(job_id: str) -> str:
    """Validate a job id against BigQuery's rules; raises ValueError."""
    if not job_id or len(job_id) > JOB_ID_MAX_LENGTH:
        raise ValueError(f"job id must have 1 to {JOB_ID_MAX_LENGTH} characters")
    if not all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in job_id):
        raise ValueError(f"job id {job_id!r} may hold only letters, digits, _ and -")
    return job_id


def sources_label(uris: Sequence[str]) -> str:
    """A short description of source URIs for log lines."""
    return uris[0] if len(uris) == 1 else f"{uris[0]} and {len(uris) - 1} more"


_QUOTED = re.compile(r"""(["'])([^"'\n]{0,2000})\1""")


def redact_values(message: str) -> str:
    """A warehouse error message with quoted values replaced, for logs and reports.

    Warehouses quote the offending row value ("Could not convert string 'x'");
    record contents must not reach logs. Quoted paths and URIs (with `/`) stay.
    """
    return _QUOTED.sub(_redact_one, message)


def _redact_one(found: re.Match[str]) -> str:
    quote, text = found.group(1), found.group(2)
    return found.group(0) if "/" in text else f"{quote}…{quote}"
