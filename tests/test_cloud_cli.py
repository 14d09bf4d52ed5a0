"""The `loader` command against the emulators: exit codes, JSON reports, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from google.cloud import bigquery, storage

from cloud_fixtures import (
    CloudProject,
    make_cloud_project,
    manifests,
    object_names,
    stage,
    staged,
    table_ids,
)
from dropload import layout
from dropload.cli import main
from dropload.store.base import ROWS_METADATA

pytestmark = pytest.mark.emulator


@pytest.fixture
def project(
    tmp_path: Path, gcs_emulator, bq_emulator, gcs_bucket: str, bq_dataset: str
) -> CloudProject:
    """Two NDJSON tables, `events` and `clicks`, on this test's bucket and dataset."""
    return make_cloud_project(
        tmp_path / "project",
        bucket=gcs_bucket,
        dataset=bq_dataset,
        gcs_endpoint=gcs_emulator.endpoint,
        bq_endpoint=bq_emulator.endpoint,
        tables={"events": {}, "clicks": {}},
    )


def _loader(project: CloudProject, *args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(main, ["--config", str(project.config_path), *args])


def test_run_once_exits_0_and_reports_json(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """`loader run-once --format json` loads every table and prints parsable JSON."""
    stage(project, 0, 4)
    stage(project, 4, 6)

    result = _loader(project, "run-once", "--format", "json")

    assert result.exit_code == 0, result.output
    reports = {r["table"]: r for r in json.loads(result.stdout)}
    assert reports["events"]["status"] == "loaded"
    assert (reports["events"]["rows"], reports["events"]["jobs"]) == (6, 1)
    assert reports["clicks"]["status"] == "idle"
    assert reports["clicks"]["jobs"] == 0
    [manifest] = manifests(gcs_client, project)
    assert reports["events"]["job_ids"] == [manifest.job_id]
    assert table_ids(bq_client, project) == list(range(6))


def test_run_once_unknown_table_exits_2(project: CloudProject) -> None:
    """`run-once --table nope` exits 2 with one line naming the table, no traceback."""
    result = _loader(project, "run-once", "--table", "nope")

    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "nope" in line
    assert "events" in line
    assert "Traceback" not in result.output


def test_run_once_failed_table_exits_1(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """A table whose job fails makes run-once exit 1 and name it; the rest loads."""
    stage(project, 0, 2, table="clicks")
    stage(project, 0, 1, table="events")
    # A table that lacks the configured fields fails every job (not a bad shard).
    narrow = [bigquery.SchemaField("id", "INTEGER", mode="REQUIRED")]
    bq_client.create_table(bigquery.Table(project.destination("events"), narrow))

    result = _loader(project, "run-once")

    assert result.exit_code == 1
    named = [line for line in result.stderr.splitlines() if line.startswith("table ")]
    assert len(named) == 1
    assert named[0].startswith("table events: job dropload-events-")
    assert "Traceback" not in result.output
    assert table_ids(bq_client, project, "clicks") == [0, 1]
    assert len(staged(gcs_client, project)) == 1


def test_status_json_shows_staged_shards_and_the_last_load(
    project: CloudProject, gcs_client: storage.Client
) -> None:
    """`loader status --format json` counts staged shards and names the last job."""
    stage(project, 0, 3)
    assert _loader(project, "run-once").exit_code == 0
    stage(project, 3, 5)
    stage(project, 5, 6)

    result = _loader(project, "status", "--format", "json", "--table", "events")

    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    [manifest] = manifests(gcs_client, project)
    sizes = [
        blob.size
        for blob in gcs_client.list_blobs(
            project.bucket, prefix=project.key(layout.staging("events"))
        )
    ]
    assert row["table"] == "events"
    assert (row["staged_shards"], row["staged_bytes"]) == (2, sum(sizes))
    assert row["oldest_staged_seconds"] >= 0
    assert (row["archived_batches"], row["open_batches"]) == (1, 0)
    assert (row["last_job_id"], row["last_rows"]) == (manifest.job_id, 3)
    assert row["last_loaded_at"] is not None


def test_stage_command_writes_one_shard_with_its_row_count(
    project: CloudProject, gcs_client: storage.Client, tmp_path: Path
) -> None:
    """`loader stage --table events FILE` writes the lines as a shard in staging."""
    source = tmp_path / "events.ndjson"
    lines = [{"id": i, "name": f"n{i}", "ts": "2026-01-26T08:30:00Z"} for i in range(5)]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))

    result = _loader(project, "stage", "--table", "events", str(source))

    assert result.exit_code == 0, result.output
    [name] = object_names(gcs_client, project, layout.staging("events"))
    blob = gcs_client.bucket(project.bucket).get_blob(project.key(name))
    assert blob.metadata == {ROWS_METADATA: "5"}
    assert len(blob.download_as_bytes().splitlines()) == 5


def test_run_once_with_a_missing_bucket_exits_1_naming_it(
    tmp_path: Path, gcs_emulator, bq_emulator, bq_dataset: str
) -> None:
    """A store.url whose bucket does not exist fails each table with one clear line."""
    project = make_cloud_project(
        tmp_path / "project",
        bucket="no-such-bucket-here",
        dataset=bq_dataset,
        gcs_endpoint=gcs_emulator.endpoint,
        bq_endpoint=bq_emulator.endpoint,
    )

    result = _loader(project, "run-once")

    assert result.exit_code == 1
    named = [line for line in result.stderr.splitlines() if line.startswith("table ")]
    assert len(named) == 1
    assert "bucket no-such-bucket-here does not exist" in named[0]
    assert "Traceback" not in result.output
