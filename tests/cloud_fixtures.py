"""Helpers for tests of the cloud backend against the emulators.

A `CloudProject` is a folder holding a dropload config whose store is a fresh
bucket of the Cloud Storage emulator (`gs://<bucket>/dl`) and whose warehouse is
the BigQuery emulator; both endpoints are always set, so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
from google.api_core.exceptions import NotFound
from google.cloud import bigquery, storage

from dropload import layout
from dropload.config import Config, load_config
from dropload.loader import Loader
from dropload.manifest import Manifest
from dropload.stager import Stager
from dropload.store.gcs import GcsStore
from dropload.warehouse.base import JobResult, LoadRequest, Warehouse
from dropload.warehouse.bigquery import BigQueryWarehouse
from embedded import toml_section

PREFIX = "dl"
"""The store prefix inside each test's bucket."""

PROJECT = "test-project"

EVENTS_SCHEMA: list[dict[str, str]] = [
    {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "name", "type": "STRING", "mode": "NULLABLE"},
    {"name": "ts", "type": "TIMESTAMP", "mode": "NULLABLE"},
    {"name": "day", "type": "DATE", "mode": "NULLABLE"},
]
"""The schema of the test tables: a required id, a string, a timestamp, a date."""


@dataclass(frozen=True)
class CloudProject:
    """A config folder whose store and warehouse are the emulators."""

    folder: Path
    bucket: str
    dataset: str
    gcs_endpoint: str
    bq_endpoint: str

    @property
    def config_path(self) -> Path:
        """The TOML file."""
        return self.folder / "dropload.toml"

    @property
    def config(self) -> Config:
        """The config, loaded afresh."""
        return load_config(self.config_path)

    def destination(self, table: str) -> str:
        """`project.dataset.table` of a configured table, for the BigQuery client."""
        return f"{PROJECT}.{self.config.table(table).destination}"

    def store(self) -> GcsStore:
        """A store over the project's bucket prefix."""
        return GcsStore(f"gs://{self.bucket}/{PREFIX}", api_endpoint=self.gcs_endpoint)

    def warehouse(self) -> BigQueryWarehouse:
        """The project's BigQuery warehouse."""
        return BigQueryWarehouse(self.config.warehouse)

    def loader(self, **kwargs: Any) -> Loader:
        """A loader over the config (extra keywords go to `Loader`)."""
        return Loader(self.config, **kwargs)

    def stager(self, table: str = "events") -> Stager:
        """A stager of one configured table."""
        return Stager(self.config, table)

    def key(self, name: str) -> str:
        """The bucket's object name of a store name."""
        return f"{PREFIX}/{name}"


def make_cloud_project(
    folder: Path,
    *,
    bucket: str,
    dataset: str,
    gcs_endpoint: str,
    bq_endpoint: str,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
    schema: Sequence[Mapping[str, Any]] | None = None,
    loader: Mapping[str, Any] | None = None,
    stager: Mapping[str, Any] | None = None,
) -> CloudProject:
    """Write a schema file and a config pointing at the emulators into `folder`.

    Each table defaults to destination `<dataset>.<table name>` and schema.json.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schema.json").write_text(json.dumps(list(schema or EVENTS_SCHEMA)))
    tables = tables or {"events": {}}
    sections = [
        toml_section(
            "store", {"url": f"gs://{bucket}/{PREFIX}", "api_endpoint": gcs_endpoint}
        ),
        toml_section(
            "warehouse",
            {"kind": "bigquery", "project": PROJECT, "api_endpoint": bq_endpoint},
        ),
        toml_section(
            "stager", {"spool_dir": "spool", "max_age_seconds": 3600, **(stager or {})}
        ),
        toml_section("loader", {"job_timeout_seconds": 60, **(loader or {})}),
    ]
    for name, body in tables.items():
        defaults = {"destination": f"{dataset}.{name}", "schema": "schema.json"}
        sections.append(toml_section(f"tables.{name}", {**defaults, **body}))
    (folder / "dropload.toml").write_text("\n".join(sections))
    return CloudProject(folder, bucket, dataset, gcs_endpoint, bq_endpoint)


BASE_TS = datetime(2026, 1, 26, 8, 30, tzinfo=UTC)


def closed_endpoint() -> str:
    """An http URL on 127.0.0.1 where nothing listens (a port bound, then freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def with_endpoints(
    config: Config, *, store: str | None = None, warehouse: str | None = None
) -> Config:
    """The same config with the store's or the warehouse's endpoint replaced."""
    update: dict[str, Any] = {}
    if store is not None:
        update["store"] = config.store.model_copy(update={"api_endpoint": store})
    if warehouse is not None:
        update["warehouse"] = config.warehouse.model_copy(
            update={"api_endpoint": warehouse}
        )
    return config.model_copy(update=update)


def records(start: int, stop: int) -> list[dict[str, Any]]:
    """Event records with ids start..stop-1: a timestamp and a date per id."""
    return [
        {
            "id": i,
            "name": f"n{i}",
            "ts": BASE_TS + timedelta(minutes=i, microseconds=i),
            "day": date(2026, 1, 26) + timedelta(days=i % 3),
        }
        for i in range(start, stop)
    ]


def stage(project: CloudProject, start: int, stop: int, table: str = "events") -> None:
    """Stage records start..stop-1 through a Stager, one shard."""
    with project.stager(table) as stager:
        stager.extend(records(start, stop))


def object_names(
    client: storage.Client, project: CloudProject, prefix: str
) -> list[str]:
    """Store names (relative to the project's prefix) of objects under `prefix`."""
    blobs = client.list_blobs(project.bucket, prefix=project.key(prefix))
    return sorted(blob.name.removeprefix(f"{PREFIX}/") for blob in blobs)


def staged(
    client: storage.Client, project: CloudProject, table: str = "events"
) -> list[str]:
    """Base names of the table's staged objects, read through the GCS client."""
    return [
        layout.basename(n) for n in object_names(client, project, layout.staging(table))
    ]


def archived_shards(
    client: storage.Client, project: CloudProject, table: str = "events"
) -> list[str]:
    """Base names of the table's archived shards (manifests excluded)."""
    names = object_names(client, project, layout.archive(table))
    return sorted(
        layout.basename(n) for n in names if not n.endswith(layout.MANIFEST_SUFFIX)
    )


def manifests(
    client: storage.Client, project: CloudProject, table: str = "events"
) -> list[Manifest]:
    """Every manifest in the table's archive, read through the GCS client."""
    bucket = client.bucket(project.bucket)
    return [
        Manifest.from_json(bucket.blob(project.key(name)).download_as_bytes())
        for name in object_names(client, project, layout.archive(table))
        if name.endswith(layout.MANIFEST_SUFFIX)
    ]


def table_ids(
    client: bigquery.Client, project: CloudProject, table: str = "events"
) -> list[int]:
    """Ids in the emulator's table, sorted, duplicates kept ([] when it is absent)."""
    try:
        rows = list(client.list_rows(project.destination(table)))
    except NotFound:
        return []
    return sorted(row["id"] for row in rows)


def load_jobs(client: bigquery.Client, dataset: str) -> list[bigquery.LoadJob]:
    """Every load job into a table of `dataset`, as the emulator lists them."""
    return [
        job
        for job in client.list_jobs(all_users=True)
        if isinstance(job, bigquery.LoadJob)
        and job.destination is not None
        and job.destination.dataset_id == dataset
    ]


def avro_bytes(schema: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> bytes:
    """An Avro container file of `rows`, written by fastavro."""
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(dict(schema)), list(rows))
    return buffer.getvalue()


class DelegatingWarehouse(Warehouse):
    """A fault-injecting seam: the real warehouse, with `load` open to override."""

    def __init__(self, real: Warehouse) -> None:
        self.real = real

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        """Run the load on the real warehouse."""
        return self.real.load(request, timeout=timeout)

    def get_job(self, job_id: str) -> JobResult | None:
        """The real warehouse's job."""
        return self.real.get_job(job_id)

    def list_load_jobs(self, destination: str, since: datetime) -> list[JobResult]:
        """The real warehouse's jobs."""
        return self.real.list_load_jobs(destination, since)

    def row_count(self, destination: str) -> int:
        """The real table's row count."""
        return self.real.row_count(destination)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """A query on the real warehouse."""
        return self.real.query(sql)

    def close(self) -> None:
        """Close the real warehouse."""
        self.real.close()
