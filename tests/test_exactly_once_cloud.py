"""Exactly once on the cloud backend, with faults injected over HTTP.

A FaultProxy sits between the official clients and each emulator (its address
is the config's api_endpoint): it drops answers after the server acted, answers
503/429/403, or answers a jobs.insert with a failed job. Outcomes are read from
the emulators directly, not through the proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import bigquery, storage

from cloud_fixtures import (
    CloudProject,
    archived_shards,
    load_jobs,
    make_cloud_project,
    manifests,
    object_names,
    stage,
    table_ids,
)
from dropload import layout
from dropload.loader import Loader, TickReport
from faults.proxy import FaultProxy, Rule

pytestmark = pytest.mark.emulator

JOB_INSERT = r"/projects/[^/]+/jobs(\?|$)"
"""jobs.insert: POST .../jobs, not .../jobs/<id>."""


@pytest.fixture
def gcs_proxy(gcs_emulator: Any) -> Iterator[FaultProxy]:
    """A fault proxy in front of the Cloud Storage emulator."""
    proxy = FaultProxy(gcs_emulator.endpoint).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def bq_proxy(bq_emulator: Any) -> Iterator[FaultProxy]:
    """A fault proxy in front of the BigQuery emulator."""
    proxy = FaultProxy(bq_emulator.endpoint).start()
    yield proxy
    proxy.stop()


def _project(
    tmp_path: Path,
    gcs_bucket: str,
    bq_dataset: str,
    gcs_proxy: FaultProxy,
    bq_proxy: FaultProxy,
    **loader: Any,
) -> CloudProject:
    return make_cloud_project(
        tmp_path / "project",
        bucket=gcs_bucket,
        dataset=bq_dataset,
        gcs_endpoint=gcs_proxy.url,
        bq_endpoint=bq_proxy.url,
        stager={"max_records": 5},
        loader=loader,
    )


@pytest.fixture
def project(
    tmp_path: Path,
    gcs_bucket: str,
    bq_dataset: str,
    gcs_proxy: FaultProxy,
    bq_proxy: FaultProxy,
) -> CloudProject:
    """One NDJSON table `events`, both clients behind the proxies."""
    return _project(tmp_path, gcs_bucket, bq_dataset, gcs_proxy, bq_proxy)


def _tick(project: CloudProject, **kwargs: Any) -> TickReport:
    loader = Loader(project.config, **kwargs)
    try:
        (report,) = loader.run_once(["events"])
    finally:
        loader.close()
    return report


def _assert_once(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    ids: range,
) -> None:
    assert table_ids(bq_client, project) == list(ids)
    for prefix in ("staging", "intents", "batches"):
        assert object_names(gcs_client, project, f"events/{prefix}/") == []
    assert object_names(gcs_client, project, layout.lease("events")) == []
    listed = [s.name for m in manifests(gcs_client, project) for s in m.shards]
    assert sorted(listed) == archived_shards(gcs_client, project)


def test_a_lost_answer_to_the_job_insert_then_a_retry_is_one_job(
    project: CloudProject,
    bq_proxy: FaultProxy,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
) -> None:
    """jobs.insert ran but its answer was dropped: the retry gets 409, one job."""
    stage(project, 0, 10)
    bq_proxy.add(Rule("drop", "POST", JOB_INSERT))

    report = _tick(project)

    inserts = bq_proxy.requests("POST", JOB_INSERT)
    assert [status for _, _, status in inserts] == [0, 409]
    assert report.status == "loaded"
    assert len(load_jobs(bq_client, project.dataset)) == 1
    _assert_once(project, gcs_client, bq_client, range(10))


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "rateLimitExceeded"), (403, "rateLimitExceeded"), (503, "backendError")],
)
def test_a_refused_job_insert_is_retried_to_one_job(
    project: CloudProject,
    bq_proxy: FaultProxy,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    status: int,
    reason: str,
) -> None:
    """A jobs.insert answered 429, 403 rateLimitExceeded or 503 is sent again."""
    stage(project, 0, 5)
    bq_proxy.add(Rule("status", "POST", JOB_INSERT, status=status, reason=reason))

    report = _tick(project)

    assert [s for _, _, s in bq_proxy.requests("POST", JOB_INSERT)] == [status, 200]
    assert report.status == "loaded"
    assert len(load_jobs(bq_client, project.dataset)) == 1
    _assert_once(project, gcs_client, bq_client, range(5))


def test_a_rate_limited_job_then_success_loads_once_at_attempt_2(
    project: CloudProject,
    bq_proxy: FaultProxy,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
) -> None:
    """rateLimitExceeded, then success: rows once, attempt 2, archived after it."""
    stage(project, 0, 10)
    bq_proxy.add(Rule("job_error", "POST", JOB_INSERT, reason="rateLimitExceeded"))
    archived_at_failure: list[list[str]] = []

    def look(step: str) -> None:
        if step == "rewrite-intent":
            archived_at_failure.append(archived_shards(gcs_client, project))

    report = _tick(project, step_hook=look)

    assert report.status == "loaded"
    assert archived_at_failure == [[]]
    first, second = report.jobs
    assert (first[-2:], second[-2:]) == ("-1", "-2")
    (manifest,) = manifests(gcs_client, project)
    assert manifest.attempt == 2
    assert manifest.job_id == second
    assert manifest.attempts_log == (f"{first}: rateLimitExceeded",)
    _assert_once(project, gcs_client, bq_client, range(10))


def test_a_quota_error_pauses_then_the_next_tick_loads_once(
    project: CloudProject,
    bq_proxy: FaultProxy,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
) -> None:
    """DONE with quotaExceeded pauses the table; the next tick loads under attempt 2."""
    stage(project, 0, 5)
    bq_proxy.add(Rule("job_error", "POST", JOB_INSERT, reason="quotaExceeded"))

    paused = _tick(project)
    # The pause ends when the window frees up; here its note is removed instead.
    project.store().delete(layout.pause("events"))
    resumed = _tick(project)

    assert paused.status == "paused"
    assert resumed.status == "loaded"
    assert resumed.jobs[0].endswith("-2")
    _assert_once(project, gcs_client, bq_client, range(5))


def test_a_job_still_running_after_the_wait_is_resumed_by_the_next_tick(
    tmp_path: Path,
    gcs_bucket: str,
    bq_dataset: str,
    gcs_proxy: FaultProxy,
    bq_proxy: FaultProxy,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
) -> None:
    """A job shown RUNNING past job_timeout_seconds is fetched, not run again."""
    project = _project(
        tmp_path, gcs_bucket, bq_dataset, gcs_proxy, bq_proxy, job_timeout_seconds=1
    )
    stage(project, 0, 5)
    bq_proxy.add(Rule("running", "*", r"/jobs", times=10_000))

    first = _tick(project)
    bq_proxy.clear()
    second = _tick(project)

    assert first.status == "running"
    assert second.status == "loaded"
    assert first.jobs == second.jobs
    assert len(load_jobs(bq_client, project.dataset)) == 1
    _assert_once(project, gcs_client, bq_client, range(5))


def _name(prefix: str) -> str:
    return "dl%2Fevents%2F" + prefix + "%2F"


GCS_FAULTS = [
    pytest.param("POST", r"copyTo/b/[^/]+/o/" + _name("batches"), id="claim-copy"),
    pytest.param("DELETE", r"/o/" + _name("staging"), id="claim-delete"),
    pytest.param("POST", r"copyTo/b/[^/]+/o/" + _name("archive"), id="archive-copy"),
    pytest.param("DELETE", r"/o/" + _name("batches"), id="archive-delete"),
]


@pytest.mark.parametrize("action", ["status", "drop"])
@pytest.mark.parametrize(("method", "path"), GCS_FAULTS)
def test_a_503_or_lost_answer_on_a_copy_or_delete_loses_nothing(
    project: CloudProject,
    gcs_proxy: FaultProxy,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    method: str,
    path: str,
    action: str,
) -> None:
    """A 503 or a dropped answer on a claim's or archive's copy/delete: rows once."""
    stage(project, 0, 15)
    rule = gcs_proxy.add(Rule(action, method, path, times=2))

    report = _tick(project)

    assert rule.hits == 2
    assert report.status == "loaded"
    _assert_once(project, gcs_client, bq_client, range(15))
