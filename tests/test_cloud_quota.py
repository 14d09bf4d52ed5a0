"""Poison shards and the job budget on the cloud backend, against the emulators."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.api_core.exceptions import GoogleAPICallError
from google.cloud import bigquery, storage

from cloud_fixtures import (
    CloudProject,
    load_jobs,
    make_cloud_project,
    object_names,
    stage,
    staged,
    table_ids,
)
from dropload import layout
from dropload.cli import main
from dropload.quarantine import list_quarantined
from dropload.shard import new_shard_name

pytestmark = pytest.mark.emulator


@pytest.fixture
def project(
    tmp_path: Path, gcs_emulator, bq_emulator, gcs_bucket: str, bq_dataset: str
) -> CloudProject:
    """One NDJSON table `events`, a budget of 20 jobs, 2 kept for replays."""
    return make_cloud_project(
        tmp_path / "project",
        bucket=gcs_bucket,
        dataset=bq_dataset,
        gcs_endpoint=gcs_emulator.endpoint,
        bq_endpoint=bq_emulator.endpoint,
        tables={"events": {"daily_job_budget": 20}},
        loader={"replay_reserve": 2},
    )


def test_one_poison_shard_among_20_on_bigquery(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    bq_dataset: str,
) -> None:
    """BigQuery: a local check finds the bad shard of 20; 19 load, one extra job."""
    for n in range(19):
        stage(project, 3 * n, 3 * n + 3)
        if n == 9:
            name = new_shard_name("ndjson")
            key = project.key(layout.staging("events") + name)
            blob = gcs_client.bucket(project.bucket).blob(key)
            blob.upload_from_string(b'{"id": 1, "day": "not a date"}\n')

    result = CliRunner().invoke(
        main, ["--config", str(project.config_path), "run-once", "--format", "json"]
    )

    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert (report["shards"], report["quarantined"], report["jobs"]) == (19, 1, 2)
    assert table_ids(bq_client, project) == list(range(57))
    assert staged(gcs_client, project) == []
    [shard] = list_quarantined(project.store(), "events")
    assert shard.shard == name
    assert "field day" in shard.error
    assert shard.job_id == report["job_ids"][0]
    assert len(load_jobs(bq_client, bq_dataset)) == 2


def test_quota_counts_our_jobs_and_other_tools_jobs(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
) -> None:
    """`loader quota` counts other tools' and failed jobs from BigQuery's job list."""
    stage(project, 0, 3)
    assert (
        CliRunner()
        .invoke(main, ["--config", str(project.config_path), "run-once"])
        .exit_code
        == 0
    )
    other = gcs_client.bucket(project.bucket).blob("other/rows.ndjson")
    other.upload_from_string(b'{"id": 100}\n')
    bad = gcs_client.bucket(project.bucket).blob("other/bad.ndjson")
    bad.upload_from_string(b"not json\n")
    config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON")
    destination = project.destination("events")
    for blob in ("rows", "bad"):
        uri = f"gs://{project.bucket}/other/{blob}.ndjson"
        job = bq_client.load_table_from_uri(uri, destination, job_config=config)
        with contextlib.suppress(GoogleAPICallError):
            job.result()
    assert job.error_result is not None

    result = CliRunner().invoke(
        main, ["--config", str(project.config_path), "quota", "--format", "json"]
    )

    [row] = json.loads(result.stdout)
    assert (row["jobs"], row["ours"], row["others"]) == (3, 1, 2)
    assert (row["succeeded"], row["failed"]) == (2, 1)
    assert row["level"] == "ok"
    assert result.exit_code == 0
    assert layout.pause("events") not in object_names(gcs_client, project, "events/")
