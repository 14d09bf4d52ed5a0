"""BigQuery through the official client: load jobs by id, judged by errorResult."""

from __future__ import annotations

import concurrent.futures
import logging
from datetime import datetime
from typing import Any

from google.api_core import exceptions as api_exceptions

from dropload.config import TableConfig, WarehouseConfig
from dropload.errors import WarehouseError
from dropload.retry import API_DEADLINE_SECONDS, api_retry
from dropload.warehouse.base import JobResult, LoadRequest, Warehouse, check_job_id

logger = logging.getLogger(__name__)

_FORMATS = {"ndjson": "NEWLINE_DELIMITED_JSON", "avro": "AVRO"}

_UNANSWERED = (api_exceptions.GoogleAPIError, OSError)
"""What the client raises when BigQuery refused a call or never answered it
(RetryError after the deadline, requests' connection errors are OSErrors)."""


class BigQueryWarehouse(Warehouse):
    """Load jobs in one project and location."""

    def __init__(
        self, config: WarehouseConfig, *, deadline: float = API_DEADLINE_SECONDS
    ) -> None:
        """Open a client; API calls retry transient failures for `deadline` s."""
        from google.cloud import bigquery

        self._bq = bigquery
        self.project = config.project or ""
        self.location = config.location
        self.client = _client(bigquery, config)
        self._datasets: set[str] = set()
        self._deadline = deadline

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        """jobs.insert with the job id; on 409, jobs.get of the existing job.

        Raises WarehouseError when BigQuery refuses the insert or does not answer.
        """
        check_job_id(request.job_id)
        try:
            self._ensure_dataset(request.target)
            job = self._insert(request)
            return self._wait(job, timeout)
        except _UNANSWERED as exc:
            raise _unanswered(f"job {request.job_id}", exc) from exc

    def get_job(self, job_id: str) -> JobResult | None:
        """jobs.get in the configured location; None on 404; raises WarehouseError."""
        try:
            job = self._get(job_id)
        except api_exceptions.NotFound:
            return None
        except _UNANSWERED as exc:
            raise _unanswered(f"job {job_id}", exc) from exc
        return _result(job)

    def list_load_jobs(self, destination: str, since: datetime) -> list[JobResult]:
        """jobs.list (all users) since `since`, load jobs into `destination`.

        Raises WarehouseError when BigQuery does not answer.
        """
        try:
            jobs = list(
                self.client.list_jobs(
                    min_creation_time=since, all_users=True, retry=self._retry()
                )
            )
        except _UNANSWERED as exc:
            raise _unanswered(f"table {destination}: jobs.list", exc) from exc
        dataset, table = destination.split(".")[-2:]
        found = []
        for job in jobs:
            dest = getattr(job, "destination", None)
            if getattr(job, "job_type", "") != "load" or dest is None:
                continue
            same = dest.dataset_id == dataset and dest.table_id.split("$")[0] == table
            if same and (job.created is None or job.created >= since):
                found.append(_result(job))
        return found

    def row_count(self, destination: str) -> int:
        """tables.get numRows (0 when the table does not exist)."""
        try:
            table = self.client.get_table(
                self._qualified(destination), retry=self._retry()
            )
        except api_exceptions.NotFound:
            return 0
        except _UNANSWERED as exc:
            raise _unanswered(f"table {destination}", exc) from exc
        return int(table.num_rows or 0)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """jobs.query and fetch every row; raises WarehouseError."""
        try:
            rows = self.client.query(sql, location=self.location).result()
            return [tuple(row.values()) for row in rows]
        except _UNANSWERED as exc:
            raise _unanswered("query", exc) from exc

    def close(self) -> None:
        """Close the client's HTTP session."""
        self.client.close()

    def _retry(self) -> Any:
        return api_retry(self._deadline)

    def _insert(self, request: LoadRequest) -> Any:
        try:
            return self.client.load_table_from_uri(
                list(request.source_uris),
                self._table_ref(request),
                job_id=request.job_id,
                job_config=self._job_config(request),
                location=self.location,
                retry=self._retry(),
            )
        except api_exceptions.Conflict as exc:
            logger.info("job %s: exists already, fetching it", request.job_id)
            try:
                return self._get(request.job_id)
            except api_exceptions.NotFound:
                message = f"job {request.job_id}: insert answered 409 but no such job"
                raise WarehouseError(f"{message}: {exc}") from exc

    def _get(self, job_id: str) -> Any:
        return self.client.get_job(job_id, location=self.location, retry=self._retry())

    def _wait(self, job: Any, timeout: float) -> JobResult:
        try:
            job.result(timeout=timeout, retry=self._retry())
        except concurrent.futures.TimeoutError:
            logger.warning("job %s: still %s after %ss", job.job_id, job.state, timeout)
        except api_exceptions.GoogleAPICallError:
            pass  # the job's errorResult says what failed; judged below
        return _result(job)

    def _ensure_dataset(self, destination: str) -> None:
        dataset = destination.split(".")[-2]
        if dataset in self._datasets:
            return
        ref = self._bq.DatasetReference(self.project, dataset)
        try:
            self.client.get_dataset(ref, retry=self._retry())
        except api_exceptions.NotFound:
            new = self._bq.Dataset(ref)
            new.location = self.location
            self.client.create_dataset(new, exists_ok=True, retry=self._retry())
        self._datasets.add(dataset)

    def _qualified(self, destination: str) -> str:
        parts = destination.split(".")
        return destination if len(parts) == 3 else f"{self.project}.{destination}"

    def _table_ref(self, request: LoadRequest) -> str:
        target = self._qualified(request.target)
        return f"{target}${request.partition}" if request.partition else target

    def _job_config(self, request: LoadRequest) -> Any:
        table: TableConfig = request.table
        config = self._bq.LoadJobConfig(
            source_format=_FORMATS[table.format],
            schema=[
                self._bq.SchemaField.from_api_repr(f.to_api_repr())
                for f in request.fields
            ],
            create_disposition=table.create_disposition,
            write_disposition=request.write_disposition or table.write_disposition,
            max_bad_records=table.max_bad_records,
            ignore_unknown_values=table.ignore_unknown_values,
            labels={"dropload-table": table.name, **request.labels},
        )
        if table.format == "avro":
            config.use_avro_logical_types = True
        if table.schema_update_options:
            config.schema_update_options = list(table.schema_update_options)
        if table.time_partitioning is not None:
            config.time_partitioning = _partitioning(self._bq, table)
        if table.clustering:
            config.clustering_fields = list(table.clustering)
        return config


def _partitioning(bq: Any, table: TableConfig) -> Any:
    spec = table.time_partitioning
    assert spec is not None
    expiration = (
        int(spec.expiration_days * 86_400_000) if spec.expiration_days else None
    )
    return bq.TimePartitioning(
        type_=spec.type, field=spec.field, expiration_ms=expiration
    )


def _client(bigquery: Any, config: WarehouseConfig) -> Any:
    if config.api_endpoint is None:
        return bigquery.Client(project=config.project, location=config.location)
    from google.auth.credentials import AnonymousCredentials

    return bigquery.Client(
        project=config.project,
        location=config.location,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": config.api_endpoint},
    )


def _unanswered(subject: str, exc: BaseException) -> WarehouseError:
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return WarehouseError(f"{subject}: BigQuery refused the call: {exc}")
    cause = exc.cause if isinstance(exc, api_exceptions.RetryError) else exc
    name = type(cause).__name__ if cause is not None else "no answer"
    return WarehouseError(
        f"{subject}: BigQuery did not answer ({name}); check the network"
        " (and warehouse.api_endpoint when set), then run again"
    )


def _result(job: Any) -> JobResult:
    error = job.error_result or {}
    dest = getattr(job, "destination", None)
    stats_rows = getattr(job, "output_rows", None)
    return JobResult(
        job_id=job.job_id,
        state=job.state or "PENDING",
        destination=f"{dest.dataset_id}.{dest.table_id}" if dest else "",
        error_reason=error.get("reason") if error else None,
        error_message=error.get("message") if error else None,
        errors=tuple(job.errors or ()),
        output_rows=int(stats_rows) if stats_rows is not None else None,
        bad_records=int(
            getattr(job, "_properties", {})
            .get("statistics", {})
            .get("load", {})
            .get("badRecords", 0)
            or 0
        ),
        input_files=getattr(job, "input_files", None),
        created=job.created,
        ended=job.ended,
        ours=(job.labels or {}).get("dropload-table") is not None,
    )
