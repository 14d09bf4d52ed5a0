"""Stager and loader end to end on the cloud backend, against the emulators.

The BigQuery emulator (local-bigquery) runs every job to DONE inside jobs.insert,
so "while the load runs" means between the claim and the insert here; tests say
so where that matters.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import bigquery, storage

from cloud_fixtures import (
    CloudProject,
    DelegatingWarehouse,
    archived_shards,
    closed_endpoint,
    load_jobs,
    make_cloud_project,
    manifests,
    object_names,
    records,
    stage,
    staged,
    table_ids,
    with_endpoints,
)
from dropload import layout
from dropload.loader import Loader
from dropload.shard import BATCH_ID, new_shard_name
from dropload.stager import Stager
from dropload.stager.spool import SPOOLED_METADATA
from dropload.store.gcs import GcsStore
from dropload.warehouse.base import JobResult, LoadRequest
from dropload.warehouse.bigquery import BigQueryWarehouse

pytestmark = pytest.mark.emulator

JOB_ID = re.compile(r"^dropload-events-(\d{8}T\d{6}Z-[0-9a-f]{8})-1$")


class _Crash(BaseException):
    """Stands for a kill -9 at a named step of the tick."""


@pytest.fixture
def make(
    tmp_path: Path, gcs_emulator, bq_emulator, gcs_bucket: str, bq_dataset: str
) -> Any:
    """Build a config over this test's bucket and dataset (see make_cloud_project)."""

    def build(**kwargs: Any) -> CloudProject:
        return make_cloud_project(
            tmp_path / "project",
            bucket=gcs_bucket,
            dataset=bq_dataset,
            gcs_endpoint=gcs_emulator.endpoint,
            bq_endpoint=bq_emulator.endpoint,
            **kwargs,
        )

    return build


@pytest.fixture
def project(make: Any) -> CloudProject:
    """One NDJSON table `events` into `<dataset>.events`."""
    return make()


def _run_once(project: CloudProject, tables: list[str] | None = None) -> list[Any]:
    loader = project.loader()
    try:
        return loader.run_once(tables)
    finally:
        loader.close()


def _write_staged(
    client: storage.Client, project: CloudProject, data: bytes, fmt: str = "ndjson"
) -> str:
    """Put a shard straight into staging with the GCS client; returns its name."""
    name = new_shard_name(fmt)
    blob = client.bucket(project.bucket).blob(
        project.key(layout.staging("events") + name)
    )
    blob.upload_from_string(data, if_generation_match=0)
    return name


def test_ndjson_table_loaded(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """Staged NDJSON shards land in BigQuery with their TIMESTAMP and DATE values."""
    stage(project, 0, 5)
    stage(project, 5, 8)

    [report] = _run_once(project)

    assert (report.status, report.rows, report.shards) == ("loaded", 8, 2)
    table = bq_client.get_table(project.destination("events"))
    assert [(f.name, f.field_type) for f in table.schema] == [
        ("id", "INTEGER"),
        ("name", "STRING"),
        ("ts", "TIMESTAMP"),
        ("day", "DATE"),
    ]
    rows = sorted(bq_client.list_rows(table), key=lambda row: row["id"])
    assert [dict(row.items()) for row in rows] == records(0, 8)
    assert staged(gcs_client, project) == []


def test_avro_table_loaded_with_logical_types(
    make: Any, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """Avro shards load with use_avro_logical_types: TIMESTAMP and DATE, not INTEGER."""
    project = make(tables={"events": {"format": "avro"}})
    stage(project, 0, 6)
    stage(project, 6, 9)

    [report] = _run_once(project)

    assert (report.status, report.rows) == ("loaded", 9)
    table = bq_client.get_table(project.destination("events"))
    types = {f.name: f.field_type for f in table.schema}
    assert types == {
        "id": "INTEGER",
        "name": "STRING",
        "ts": "TIMESTAMP",
        "day": "DATE",
    }
    rows = sorted(bq_client.list_rows(table), key=lambda row: row["id"])
    assert [dict(row.items()) for row in rows] == records(0, 9)
    assert all(name.endswith(".avro") for name in archived_shards(gcs_client, project))


def test_one_load_job_per_tick_per_table(
    make: Any, bq_client: bigquery.Client, bq_dataset: str
) -> None:
    """Five shards of one table and two of another cost one wildcard job each."""
    project = make(tables={"events": {}, "clicks": {}})
    for start in range(0, 50, 10):
        stage(project, start, start + 10)
    stage(project, 100, 103, table="clicks")
    stage(project, 103, 105, table="clicks")

    reports = _run_once(project)

    assert sorted((r.table, r.status, len(r.jobs)) for r in reports) == [
        ("clicks", "loaded", 1),
        ("events", "loaded", 1),
    ]
    jobs = load_jobs(bq_client, bq_dataset)
    assert sorted(job.destination.table_id for job in jobs) == ["clicks", "events"]
    for job in jobs:
        table = job.destination.table_id
        [uri] = job.source_uris
        assert re.fullmatch(
            rf"gs://{project.bucket}/dl/{table}/batches/[^/*]+/\*\.ndjson", uri
        )
    assert table_ids(bq_client, project) == list(range(50))
    assert table_ids(bq_client, project, "clicks") == list(range(100, 105))

    stage(project, 50, 60)
    _run_once(project, ["events"])

    per_table = [job.destination.table_id for job in load_jobs(bq_client, bq_dataset)]
    assert sorted(per_table) == ["clicks", "events", "events"]


def test_job_id_names_the_table_and_the_batch(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """The job id is dropload-<table>-<batch id>-<attempt>, labelled with both."""
    stage(project, 0, 3)

    [report] = _run_once(project)

    [job_id] = report.jobs
    found = JOB_ID.match(job_id)
    assert found is not None, job_id
    batch_id = found.group(1)
    assert BATCH_ID.match(batch_id)
    job = bq_client.get_job(job_id)
    assert (job.job_type, job.state, job.error_result) == ("load", "DONE", None)
    assert job.labels == {
        "dropload-table": "events",
        "dropload-batch": batch_id.lower(),
    }
    [manifest] = manifests(gcs_client, project)
    assert (manifest.job_id, manifest.batch_id) == (job_id, batch_id)


class _StagingDuringLoad(DelegatingWarehouse):
    """The real warehouse, but a writer stages a shard inside every `load()`."""

    def __init__(self, real: BigQueryWarehouse, project: CloudProject) -> None:
        super().__init__(real)
        self.project = project
        self.next_id = 1000

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        stage(self.project, self.next_id, self.next_id + 2)
        self.next_id += 2
        return self.real.load(request, timeout=timeout)


def test_shard_staged_during_a_load_waits_for_the_next_tick(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """A shard staged while a load runs is left staged, then loaded once next tick.

    The emulator's jobs are DONE at insert, so the shard arrives after the claim
    and before jobs.insert, the window a running job has in BigQuery.
    """
    stage(project, 0, 4)
    warehouse = _StagingDuringLoad(project.warehouse(), project)
    loader = Loader(project.config, warehouse=warehouse)

    first = loader.tick("events")

    assert (first.status, first.rows) == ("loaded", 4)
    assert table_ids(bq_client, project) == [0, 1, 2, 3]
    assert len(staged(gcs_client, project)) == 1

    second = loader.tick("events")
    loader.close()

    assert (second.status, second.rows, second.shards) == ("loaded", 2, 1)
    assert table_ids(bq_client, project) == [0, 1, 2, 3, 1000, 1001]
    assert len(staged(gcs_client, project)) == 1  # staged during the second load
    assert len(manifests(gcs_client, project)) == 2


def test_failed_job_on_bad_data_quarantines_the_bad_shard_and_loads_the_rest(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    bq_dataset: str,
) -> None:
    """A job failing on one shard's data: that shard is quarantined, the rest loads."""
    stage(project, 0, 5)
    bad = _write_staged(gcs_client, project, b'{"id": "not a number"}\n')

    [report] = _run_once(project)

    assert (report.status, report.rows, report.quarantined) == ("loaded", 5, 1)
    failed, loaded = sorted(load_jobs(bq_client, bq_dataset), key=lambda j: j.job_id)
    assert failed.error_result["reason"] == "invalid"
    assert loaded.error_result is None
    assert report.jobs == [failed.job_id, loaded.job_id]
    assert staged(gcs_client, project) == []
    assert object_names(gcs_client, project, layout.quarantine("events")) == [
        layout.quarantine("events") + bad,
        layout.quarantine("events") + bad + layout.ERROR_SUFFIX,
    ]
    assert table_ids(bq_client, project) == [0, 1, 2, 3, 4]


def test_create_never_on_a_missing_table_moves_nothing(
    make: Any, gcs_client: storage.Client, bq_client: bigquery.Client, bq_dataset: str
) -> None:
    """CREATE_NEVER into a missing table: the job fails (notFound), shards stay."""
    project = make(tables={"events": {"create_disposition": "CREATE_NEVER"}})
    stage(project, 0, 3)
    stage(project, 3, 4)
    before = staged(gcs_client, project)

    [report] = _run_once(project)

    assert report.status == "failed"
    assert "notFound" in report.error
    [job] = load_jobs(bq_client, bq_dataset)
    assert job.error_result["reason"] == "notFound"
    assert staged(gcs_client, project) == before
    assert archived_shards(gcs_client, project) == []


def test_run_once_with_nothing_staged_runs_no_job(
    project: CloudProject, bq_client: bigquery.Client, bq_dataset: str
) -> None:
    """Neither an empty table's first tick nor a tick after a load runs a load job."""
    [idle] = _run_once(project)
    assert (idle.status, idle.jobs) == ("idle", [])
    assert load_jobs(bq_client, bq_dataset) == []

    stage(project, 0, 3)
    _run_once(project)
    [again] = _run_once(project)

    assert (again.status, again.jobs) == ("idle", [])
    assert len(load_jobs(bq_client, bq_dataset)) == 1
    assert table_ids(bq_client, project) == [0, 1, 2]


def test_retried_job_id_fetches_the_existing_job(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    bq_dataset: str,
) -> None:
    """A tick killed after jobs.insert is finished by the next: 409, no double rows."""
    stage(project, 0, 4)

    def crash_at_judge(step: str) -> None:
        if step == "judge":
            raise _Crash(step)

    crashed = project.loader(step_hook=crash_at_judge)
    with pytest.raises(_Crash):
        crashed.tick("events")
    crashed.close()
    [job] = load_jobs(bq_client, bq_dataset)
    assert len(object_names(gcs_client, project, layout.intents("events"))) == 1

    [report] = _run_once(project)

    assert (report.status, report.jobs, report.rows) == ("loaded", [job.job_id], 4)
    assert len(load_jobs(bq_client, bq_dataset)) == 1
    assert table_ids(bq_client, project) == [0, 1, 2, 3]
    [manifest] = manifests(gcs_client, project)
    assert manifest.job_id == job.job_id
    assert object_names(gcs_client, project, layout.intents("events")) == []


def test_warehouse_load_with_a_reused_job_id_returns_the_existing_job(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """BigQueryWarehouse.load under an id BigQuery knows (409) runs nothing again."""
    data = b"".join(b'{"id": %d}\n' % i for i in range(3))
    name = _write_staged(gcs_client, project, data)
    warehouse = project.warehouse()
    table = project.config.table("events")
    request = LoadRequest(
        job_id="dropload-events-reused-1",
        table=table,
        fields=project.loader().fields("events"),
        source_uris=(f"gs://{project.bucket}/dl/events/staging/{name}",),
    )

    first = warehouse.load(request, timeout=60)
    second = warehouse.load(request, timeout=60)

    assert first.succeeded
    assert second.succeeded
    assert second.job_id == first.job_id
    assert second.output_rows == first.output_rows == 3
    assert warehouse.row_count(table.destination) == 3
    assert warehouse.get_job("dropload-events-reused-1").succeeded
    assert warehouse.get_job("dropload-events-never-ran") is None
    warehouse.close()


def test_archive_holds_the_manifest_and_every_shard(
    project: CloudProject, gcs_client: storage.Client
) -> None:
    """After a load the archive has each shard, byte for byte, and a manifest."""
    stage(project, 0, 3)
    stage(project, 3, 10)
    bucket = gcs_client.bucket(project.bucket)
    before = {
        blob.name.rsplit("/", 1)[-1]: (blob.md5_hash, blob.size, blob.metadata)
        for blob in gcs_client.list_blobs(
            project.bucket, prefix=project.key(layout.staging("events"))
        )
    }
    started = datetime.now(UTC) - timedelta(seconds=5)

    _run_once(project)

    [manifest] = manifests(gcs_client, project)
    day = layout.day_of(manifest.claimed_at)
    archived = {
        blob.name.rsplit("/", 1)[-1]: (blob.md5_hash, blob.size, blob.metadata)
        for blob in bucket.client.list_blobs(
            project.bucket,
            prefix=project.key(layout.archived_batch("events", day, manifest.batch_id)),
        )
    }
    assert archived == before
    assert sorted(s.name for s in manifest.shards) == sorted(before)
    assert sorted(s.rows for s in manifest.shards) == [3, 7]
    assert manifest.rows == 10
    assert manifest.byte_count == sum(size for _, size, _ in before.values())
    assert (manifest.table, manifest.format) == ("events", "ndjson")
    assert manifest.destination == project.config.table("events").destination
    assert manifest.loaded_at >= manifest.claimed_at >= started
    assert staged(gcs_client, project) == []


def test_load_jobs_listed_per_table(
    make: Any, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """list_load_jobs finds each table's jobs since a time, failed ones included."""
    project = make(tables={"events": {}, "clicks": {}})
    since = datetime.now(UTC) - timedelta(minutes=1)
    stage(project, 0, 2)
    stage(project, 0, 2, table="clicks")
    _run_once(project)
    _write_staged(gcs_client, project, b'{"id": "x"}\n')
    _run_once(project)

    warehouse = project.warehouse()
    events = warehouse.list_load_jobs(project.config.table("events").destination, since)
    clicks = warehouse.list_load_jobs(project.config.table("clicks").destination, since)
    later = warehouse.list_load_jobs(
        project.config.table("events").destination,
        datetime.now(UTC) + timedelta(hours=1),
    )
    warehouse.close()

    assert sorted(job.succeeded for job in events) == [False, True]
    assert [job.succeeded for job in clicks] == [True]
    assert all(job.ours for job in events + clicks)
    assert {job.destination for job in events} == {f"{project.dataset}.events"}
    assert later == []


def test_stager_spools_when_the_store_is_down_and_uploads_later(
    make: Any, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """A writer that cannot reach Cloud Storage keeps the shard, uploads it later."""
    project = make(stager={"upload_deadline_seconds": 1})
    offline = with_endpoints(project.config, store=closed_endpoint())

    with Stager(offline, "events") as writer:
        writer.extend(records(0, 4))
    assert writer.spooled == 1
    assert staged(gcs_client, project) == []

    with Stager(project.config, "events") as writer:
        writer.extend(records(4, 6))

    assert writer.spooled == 0
    blobs = list(
        gcs_client.list_blobs(
            project.bucket, prefix=project.key(layout.staging("events"))
        )
    )
    assert sorted(blob.metadata.get(SPOOLED_METADATA, "-") for blob in blobs) == [
        "-",
        "1",
    ]
    _run_once(project)
    assert table_ids(bq_client, project) == list(range(6))


def test_unreachable_warehouse_fails_the_tick_and_loses_nothing(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """With BigQuery down the tick fails before claiming; the next tick loads it."""
    stage(project, 0, 3)
    before = staged(gcs_client, project)
    down = with_endpoints(project.config, warehouse=closed_endpoint())
    loader = Loader(down, warehouse=BigQueryWarehouse(down.warehouse, deadline=1))

    [failed] = loader.run_once()
    loader.close()

    assert failed.status == "failed"
    assert "BigQuery did not answer" in failed.error
    assert staged(gcs_client, project) == before
    assert object_names(gcs_client, project, layout.intents("events")) == []
    [report] = _run_once(project)
    assert (report.status, report.rows) == ("loaded", 3)
    assert table_ids(bq_client, project) == [0, 1, 2]


def test_unreachable_store_fails_each_table_without_raising(make: Any) -> None:
    """With Cloud Storage down every table's tick reports failed; none raises."""
    project = make(tables={"events": {}, "clicks": {}})
    url = f"gs://{project.bucket}/dl"
    store = GcsStore(url, api_endpoint=closed_endpoint(), deadline=1)
    loader = Loader(project.config, store=store)

    reports = loader.run_once()
    loader.close()

    assert sorted((r.table, r.status) for r in reports) == [
        ("clicks", "failed"),
        ("events", "failed"),
    ]
    assert all("Cloud Storage did not answer" in r.error for r in reports)


def test_write_empty_into_a_loaded_table_fails_and_keeps_the_shard(
    make: Any, gcs_client: storage.Client, bq_client: bigquery.Client, bq_dataset: str
) -> None:
    """WRITE_EMPTY into a non-empty table: the job fails (duplicate), rows stay put."""
    project = make(tables={"events": {"write_disposition": "WRITE_EMPTY"}})
    stage(project, 0, 2)
    [first] = _run_once(project)
    stage(project, 2, 4)
    waiting = staged(gcs_client, project)

    [second] = _run_once(project)

    assert (first.status, second.status) == ("loaded", "failed")
    assert "duplicate" in second.error
    assert staged(gcs_client, project) == waiting
    assert table_ids(bq_client, project) == [0, 1]
    assert len(manifests(gcs_client, project)) == 1
    assert len(load_jobs(bq_client, bq_dataset)) == 2


def test_objects_that_are_not_shards_stay_in_staging(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """Only this table's shard files are claimed; other objects in staging stay."""
    stage(project, 0, 2)
    bucket = gcs_client.bucket(project.bucket)
    junk = ["README", "upload.ndjson.partial", new_shard_name("avro")]
    for name in junk:
        blob = bucket.blob(project.key(layout.staging("events") + name))
        blob.upload_from_string(b'{"id": 99}\n')

    [report] = _run_once(project)

    assert (report.status, report.shards) == ("loaded", 1)
    assert staged(gcs_client, project) == sorted(junk)
    assert table_ids(bq_client, project) == [0, 1]


def test_missing_dataset_is_created_by_the_first_load(
    make: Any, bq_client: bigquery.Client
) -> None:
    """A destination in a dataset that does not exist yet gets the dataset."""
    dataset = f"new_{uuid.uuid4().hex[:12]}"
    project = make(tables={"events": {"destination": f"{dataset}.events"}})
    stage(project, 0, 2)

    [report] = _run_once(project)

    assert report.status == "loaded"
    assert bq_client.get_dataset(dataset).dataset_id == dataset
    assert table_ids(bq_client, project) == [0, 1]
    bq_client.delete_dataset(dataset, delete_contents=True)
