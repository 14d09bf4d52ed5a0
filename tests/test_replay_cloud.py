"""Replays and compaction on the cloud backend, against the emulators.

Neither BigQuery emulator applies partition decorators (local-bigquery silently
loads `events$20260127` into a separate table, see shared/emulators.md), so the
replace test here checks the job configuration our side sends, as the emulator
recorded it; the outcome of a partition replace is tested on DuckDB
(test_replay.py, test_duckdb_partitions.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from google.cloud import bigquery, storage

from cloud_fixtures import (
    CloudProject,
    make_cloud_project,
    manifests,
    object_names,
    records,
    stage,
    table_ids,
)
from dropload import layout
from dropload.compact import compact_archive
from dropload.errors import ObjectExists
from dropload.replay import ReplayRequest, plan_replay
from dropload.replay_jobs import ReplayReport, run_replay
from dropload.schema import load_schema_file
from dropload.store.base import MAX_COMPOSE_SOURCES

pytestmark = pytest.mark.emulator

FIRST, LAST = date(2026, 1, 26), date(2026, 1, 28)
"""The days of the records' DATE column `day` (see cloud_fixtures.records)."""


@pytest.fixture
def project(
    tmp_path: Path,
    gcs_emulator: Any,
    bq_emulator: Any,
    gcs_bucket: str,
    bq_dataset: str,
) -> CloudProject:
    """`events` partitioned by its DATE column `day`, loaded by two ticks."""
    built = make_cloud_project(
        tmp_path / "project",
        bucket=gcs_bucket,
        dataset=bq_dataset,
        gcs_endpoint=gcs_emulator.endpoint,
        bq_endpoint=bq_emulator.endpoint,
        tables={"events": {"time_partitioning": {"field": "day", "type": "DAY"}}},
    )
    for start in (0, 30):
        for first in range(start, start + 30, 10):
            stage(built, first, first + 10)
        loader = built.loader()
        try:
            [report] = loader.run_once()
        finally:
            loader.close()
        assert report.status == "loaded", report.error
    return built


def _replay(project: CloudProject, request: ReplayRequest) -> ReplayReport:
    fields = load_schema_file(project.folder / "schema.json")
    config = project.config
    store, warehouse = project.store(), project.warehouse()
    try:
        plan = plan_replay(store, config, fields, request)
        return run_replay(plan, store, warehouse, config, fields)
    finally:
        store.close()
        warehouse.close()


def test_manifests_record_partitions_from_the_shards_metadata(
    project: CloudProject, gcs_client: storage.Client
) -> None:
    """Each manifest names the three `day` partitions its shards' metadata listed."""
    found = manifests(gcs_client, project)

    assert len(found) == 2
    assert {m.partitions for m in found} == {("20260126", "20260127", "20260128")}
    assert all(s.partitions == found[0].partitions for m in found for s in m.shards)


def test_append_replay_after_drop_restores_rows_once(
    project: CloudProject, bq_client: bigquery.Client
) -> None:
    """Drop the table, replay the three days: every id once, in one job."""
    bq_client.delete_table(project.destination("events"))

    report = _replay(project, ReplayRequest("events", FIRST, LAST))

    assert report.status == "done"
    assert len(report.jobs) == 1
    assert report.jobs[0]["source_uris"] == 2
    assert table_ids(bq_client, project) == list(range(60))


def test_replace_sends_a_partition_decorator_with_write_truncate(
    project: CloudProject, bq_client: bigquery.Client, gcs_client: storage.Client
) -> None:
    """replace of one day sends table$P + WRITE_TRUNCATE over that day's rows."""
    # The emulator cannot apply the decorator: the configuration it recorded and
    # the rows the job read are checked, not the table (DuckDB tests the outcome).
    report = _replay(
        project,
        ReplayRequest("events", date(2026, 1, 27), date(2026, 1, 27), mode="replace"),
    )

    assert report.status == "done"
    [row] = report.jobs
    job = bq_client.get_job(row["job_id"])
    assert job.destination.table_id == "events$20260127"
    assert job.write_disposition == "WRITE_TRUNCATE"
    assert job.time_partitioning.field == "day"
    assert job.output_rows == sum(
        1 for r in records(0, 60) if r["day"] == date(2026, 1, 27)
    )
    assert all("/replay/" in uri for uri in job.source_uris)
    assert object_names(gcs_client, project, "events/replay/") == []
    assert row["job_id"].startswith("dropload-replay-events-")


def test_gcs_compose_concatenates_and_never_overwrites(project: CloudProject) -> None:
    """compose concatenates in order; refuses an existing target or 33 sources."""
    store = project.store()
    try:
        a = store.write("x/a", b"1\n")
        b = store.write("x/b", b"2\n")

        composed = store.compose([a, b, a], "x/c")

        assert store.read("x/c") == b"1\n2\n1\n"
        assert composed.size == 6
        with pytest.raises(ObjectExists):
            store.compose([a], "x/c")
        with pytest.raises(ValueError, match="1 to 32 sources"):
            store.compose([a] * (MAX_COMPOSE_SOURCES + 1), "x/d")
    finally:
        store.close()


def test_compaction_composes_the_archive_and_replay_reads_it(
    project: CloudProject, bq_client: bigquery.Client, gcs_client: storage.Client
) -> None:
    """After a compose compaction, replay --into a new table loads every id once."""
    store = project.store()
    try:
        report = compact_archive(store, "events", 0, owner="t", lease_seconds=60)
    finally:
        store.close()

    shards = [
        n
        for n in object_names(gcs_client, project, layout.archive("events"))
        if not n.endswith(layout.MANIFEST_SUFFIX)
    ]
    assert (report.shards, report.files) == (6, 1)
    assert len(shards) == 1
    into = f"{project.dataset}.events_copy"
    done = _replay(project, ReplayRequest("events", FIRST, LAST, into=into))
    assert done.status == "done"
    rows = bq_client.list_rows(f"{project.destination('events')}_copy")
    assert sorted(r["id"] for r in rows) == list(range(60))


def test_compaction_of_40_shards_composes_through_intermediates(
    tmp_path: Path,
    gcs_emulator: Any,
    bq_emulator: Any,
    gcs_bucket: str,
    bq_dataset: str,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
) -> None:
    """40 shards (over the 32-source compose limit) merge into one file, rows once."""
    built = make_cloud_project(
        tmp_path / "project",
        bucket=gcs_bucket,
        dataset=bq_dataset,
        gcs_endpoint=gcs_emulator.endpoint,
        bq_endpoint=bq_emulator.endpoint,
    )
    for start in range(40):
        stage(built, start, start + 1)
    loader = built.loader()
    try:
        [tick] = loader.run_once()
    finally:
        loader.close()
    store = built.store()
    try:
        report = compact_archive(store, "events", 0, owner="t", lease_seconds=60)
    finally:
        store.close()
    bq_client.delete_table(built.destination("events"))

    today = datetime.now(UTC).date()
    done = _replay(built, ReplayRequest("events", today, today))

    assert (tick.shards, report.shards, report.files) == (40, 40, 1)
    assert object_names(gcs_client, built, "events/compact/") == []
    [part] = [
        n
        for n in object_names(gcs_client, built, layout.archive("events"))
        if not n.endswith(layout.MANIFEST_SUFFIX)
    ]
    assert "/compact-" in part
    assert done.status == "done"
    assert table_ids(bq_client, built) == list(range(40))
