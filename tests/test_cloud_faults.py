"""The cloud flow under injected faults: crashes, rival loaders, failing jobs.

Faults go through seams around the real clients (a step hook, a GcsStore or a
warehouse wrapper), never mocks; every outcome is read back from the emulators.
A crash is an exception raised at a named step, so unlike a kill -9 the lease
is released on the way out; the expired-lease test covers a dead holder.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import bigquery, storage

from cloud_fixtures import (
    CloudProject,
    DelegatingWarehouse,
    archived_shards,
    load_jobs,
    make_cloud_project,
    manifests,
    object_names,
    records,
    stage,
    staged,
    table_ids,
)
from dropload import layout
from dropload.errors import StoreUnavailable
from dropload.loader import Loader, TickReport
from dropload.stager import Stager
from dropload.store.gcs import GcsStore
from dropload.warehouse.base import JobResult, LoadRequest

pytestmark = pytest.mark.emulator

STEPS = [
    "recover",
    "write-intent",
    "claim",
    "load",
    "judge",
    "write-manifest",
    "archive",
    "close-intent",
]
"""The tick's named steps, in order, from a fresh batch to its archive."""

QUOTA_MESSAGE = "Quota exceeded: Your table exceeded quota for imports per table."


class _Crash(BaseException):
    """Stands for the loader process dying at a step."""


@pytest.fixture
def project(
    tmp_path: Path, gcs_emulator, bq_emulator, gcs_bucket: str, bq_dataset: str
) -> CloudProject:
    """One NDJSON table `events` on this test's bucket and dataset."""
    return make_cloud_project(
        tmp_path / "project",
        bucket=gcs_bucket,
        dataset=bq_dataset,
        gcs_endpoint=gcs_emulator.endpoint,
        bq_endpoint=bq_emulator.endpoint,
    )


def _run_once(project: CloudProject, **kwargs: Any) -> list[TickReport]:
    loader = project.loader(**kwargs)
    try:
        return loader.run_once()
    finally:
        loader.close()


def _assert_loaded_once(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    ids: list[int],
    shards: int,
) -> None:
    """Every id once in the table; staging, batches and intents empty; all archived."""
    assert table_ids(bq_client, project) == ids
    assert staged(gcs_client, project) == []
    for prefix in (layout.batches("events"), layout.intents("events")):
        assert object_names(gcs_client, project, prefix) == []
    assert len(archived_shards(gcs_client, project)) == shards
    archived = sorted(s.name for m in manifests(gcs_client, project) for s in m.shards)
    assert archived == archived_shards(gcs_client, project)


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_any_step_loads_every_record_once(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    step: str,
) -> None:
    """A tick that dies at any step is finished by the next: each row exactly once."""
    stage(project, 0, 3)
    stage(project, 3, 5)

    def crash(at: str) -> None:
        if at == step:
            raise _Crash(at)

    loader = project.loader(step_hook=crash)
    with pytest.raises(_Crash):
        loader.tick("events")
    loader.close()
    [report] = _run_once(project)

    assert report.status in ("loaded", "idle")
    _assert_loaded_once(project, gcs_client, bq_client, list(range(5)), shards=2)


class _CrashingStore(GcsStore):
    """A GcsStore whose process dies after copying, before deleting, a shard."""

    def __init__(self, *args: Any, folder: str, after: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder
        self.deletes_left = after

    def delete(self, name: str, *, if_generation_match: int | None = None) -> None:
        if f"/{self.folder}/" in name:
            if self.deletes_left == 0:
                raise _Crash(f"before deleting {name}")
            self.deletes_left -= 1
        super().delete(name, if_generation_match=if_generation_match)


@pytest.mark.parametrize("folder", ["staging", "batches"])
def test_crash_between_copy_and_delete_of_a_move(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    folder: str,
) -> None:
    """A move cut between its copy and its delete (claim or archive) is finished."""
    for start in range(0, 8, 2):
        stage(project, start, start + 2)
    store = _CrashingStore(
        f"gs://{project.bucket}/dl",
        api_endpoint=project.gcs_endpoint,
        folder=folder,
        after=1,
    )
    loader = project.loader(store=store)
    with pytest.raises(_Crash):
        loader.tick("events")
    loader.close()
    [report] = _run_once(project)

    assert report.status == "loaded"
    _assert_loaded_once(project, gcs_client, bq_client, list(range(8)), shards=4)


class _RivalDuringLoad(DelegatingWarehouse):
    """While this loader's job runs, a second loader ticks the same table."""

    def __init__(self, real: Any, rival: Loader) -> None:
        super().__init__(real)
        self.rival = rival
        self.rival_reports: list[TickReport] = []

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        self.rival_reports += self.rival.run_once()
        return self.real.load(request, timeout=timeout)


def test_two_loaders_at_once_load_each_shard_once(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    bq_dataset: str,
) -> None:
    """A second loader ticking during the first's load skips the table (lease)."""
    stage(project, 0, 4)
    rival = project.loader()
    warehouse = _RivalDuringLoad(project.warehouse(), rival)

    [report] = _run_once(project, warehouse=warehouse)
    rival.close()

    [skipped] = warehouse.rival_reports
    assert (skipped.status, skipped.jobs) == ("skipped", [])
    assert "lease held" in skipped.error
    assert report.status == "loaded"
    assert len(load_jobs(bq_client, bq_dataset)) == 1
    _assert_loaded_once(project, gcs_client, bq_client, list(range(4)), shards=1)


def _write_lease(
    client: storage.Client, project: CloudProject, owner: str, expires: datetime
) -> None:
    body = json.dumps({"owner": owner, "expires": expires.isoformat()})
    blob = client.bucket(project.bucket).blob(project.key(layout.lease("events")))
    blob.upload_from_string(body, if_generation_match=0)


def test_live_lease_of_another_loader_skips_the_table(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """A lease another loader holds makes the tick skip: no job, shards stay."""
    stage(project, 0, 2)
    expires = datetime.now(UTC) + timedelta(minutes=5)
    _write_lease(gcs_client, project, "other-host:1:abcd", expires)
    before = staged(gcs_client, project)

    [report] = _run_once(project)

    assert (report.status, report.jobs) == ("skipped", [])
    assert "other-host:1:abcd" in report.error
    assert staged(gcs_client, project) == before
    assert layout.lease("events") in object_names(gcs_client, project, "events/")


def test_expired_lease_of_a_dead_loader_is_taken_over(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """A lease left by a loader that died is taken over once it has expired."""
    stage(project, 0, 3)
    expired = datetime.now(UTC) - timedelta(seconds=1)
    _write_lease(gcs_client, project, "dead-host:1:abcd", expired)

    [report] = _run_once(project)

    assert report.status == "loaded"
    _assert_loaded_once(project, gcs_client, bq_client, [0, 1, 2], shards=1)
    assert object_names(gcs_client, project, layout.lease("events")) == []


class _FailingJobs(DelegatingWarehouse):
    """BigQuery failing the first `count` job ids with `reason`.

    The emulator cannot produce transient or quota errors, so each such job is
    really inserted against a missing object (BigQuery keeps it, DONE, failed,
    nothing loaded) and its error is reported as `reason` whenever it comes back,
    also through a 409 on a retried id.
    """

    def __init__(self, real: Any, reason: str, message: str, count: int = 1) -> None:
        super().__init__(real)
        self.reason, self.message, self.count = reason, message, count
        self.failed: set[str] = set()

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        if len(self.failed) < self.count and request.job_id not in self.failed:
            self.failed.add(request.job_id)
            folder = request.source_uris[0].rsplit("/", 1)[0]
            request = replace(request, source_uris=(f"{folder}/missing.ndjson",))
        result = self.real.load(request, timeout=timeout)
        if result.job_id in self.failed:
            assert result.done
            assert not result.succeeded
            return replace(result, error_reason=self.reason, error_message=self.message)
        return result


def test_transient_job_failure_is_retried_under_a_new_job_id(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """A job failing with backendError is retried at once as attempt 2, loaded once."""
    stage(project, 0, 3)
    warehouse = _FailingJobs(project.warehouse(), "backendError", "try again")

    [report] = _run_once(project, warehouse=warehouse)

    assert report.status == "loaded"
    first, second = report.jobs
    assert first.endswith("-1")
    assert second == first[:-1] + "2"
    [manifest] = manifests(gcs_client, project)
    assert (manifest.job_id, manifest.attempt) == (second, 2)
    assert manifest.attempts_log == (f"{first}: backendError",)
    _assert_loaded_once(project, gcs_client, bq_client, [0, 1, 2], shards=1)


def test_batch_failing_every_attempt_of_a_tick_waits_for_the_next(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    bq_dataset: str,
) -> None:
    """Three transient failures end the tick; the batch stays claimed and loads next."""
    stage(project, 0, 3)
    warehouse = _FailingJobs(project.warehouse(), "backendError", "down", count=3)
    loader = project.loader(warehouse=warehouse)

    failed = loader.tick("events")

    assert failed.status == "failed"
    assert [job[-2:] for job in failed.jobs] == ["-1", "-2", "-3"]
    assert staged(gcs_client, project) == []
    assert len(object_names(gcs_client, project, layout.intents("events"))) == 1

    loaded = loader.tick("events")
    loader.close()

    assert loaded.status == "loaded"
    assert loaded.jobs == [failed.jobs[0][:-1] + "4"]
    [manifest] = manifests(gcs_client, project)
    assert len(manifest.attempts_log) == 3
    assert len(load_jobs(bq_client, bq_dataset)) == 4
    _assert_loaded_once(project, gcs_client, bq_client, [0, 1, 2], shards=1)


def test_quota_error_pauses_the_table_and_the_next_tick_resumes(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    bq_dataset: str,
) -> None:
    """quotaExceeded pauses the table until the pause ends; then the batch loads."""
    stage(project, 0, 3)
    warehouse = _FailingJobs(project.warehouse(), "quotaExceeded", QUOTA_MESSAGE)
    now = [datetime.now(UTC)]
    loader = project.loader(warehouse=warehouse, clock=lambda: now[0])

    paused = loader.tick("events")
    still = loader.tick("events")

    assert paused.status == "paused"
    assert "quota" in paused.error
    assert (still.status, still.jobs) == ("paused", [])
    assert staged(gcs_client, project) == []
    assert len(object_names(gcs_client, project, layout.intents("events"))) == 1
    assert layout.pause("events") in object_names(gcs_client, project, "events/")
    assert table_ids(bq_client, project) == []

    now[0] += timedelta(hours=25)
    resumed = loader.tick("events")
    loader.close()

    assert resumed.status == "loaded"
    assert resumed.jobs[-1] != paused.jobs[-1]
    _assert_loaded_once(project, gcs_client, bq_client, [0, 1, 2], shards=1)
    assert len(load_jobs(bq_client, bq_dataset)) == 2


def test_too_many_table_updates_is_retried_not_failed(
    project: CloudProject, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """quotaExceeded for table update operations is transient: retried, then loaded."""
    stage(project, 0, 2)
    message = "Exceeded rate limits: too many table update operations for this table"
    warehouse = _FailingJobs(project.warehouse(), "quotaExceeded", message)

    [report] = _run_once(project, warehouse=warehouse)

    assert report.status == "loaded"
    assert len(report.jobs) == 2
    _assert_loaded_once(project, gcs_client, bq_client, [0, 1], shards=1)


class _StillRunning(DelegatingWarehouse):
    """The job outlives the tick's wait once: reported RUNNING, though it ran.

    The emulator finishes every job inside jobs.insert, so the wrapper hides the
    first answer's DONE state as a job still running at the timeout would show.
    """

    def __init__(self, real: Any) -> None:
        super().__init__(real)
        self.hidden = 0

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        result = self.real.load(request, timeout=timeout)
        if self.hidden == 0:
            self.hidden += 1
            return replace(result, state="RUNNING", ended=None)
        return result


def test_job_still_running_is_judged_by_the_next_tick(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    bq_dataset: str,
) -> None:
    """A job not DONE by the timeout keeps its batch; the next tick fetches it (409)."""
    stage(project, 0, 3)
    loader = project.loader(warehouse=_StillRunning(project.warehouse()))

    running = loader.tick("events")

    assert running.status == "running"
    assert archived_shards(gcs_client, project) == []
    assert len(object_names(gcs_client, project, layout.intents("events"))) == 1

    done = loader.tick("events")
    loader.close()

    assert (done.status, done.jobs, done.rows) == ("loaded", running.jobs, 3)
    assert len(load_jobs(bq_client, bq_dataset)) == 1
    _assert_loaded_once(project, gcs_client, bq_client, [0, 1, 2], shards=1)


class _LostAnswerStore(GcsStore):
    """A GcsStore whose first shard write reaches the bucket but whose answer is lost.

    `retry_in_client` True: the client retries and meets its own object (412);
    False: the caller sees StoreUnavailable and must try again later.
    """

    def __init__(self, *args: Any, retry_in_client: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_in_client = retry_in_client
        self.lost = 0

    def write(self, name: str, data: bytes, **kwargs: Any) -> Any:
        info = super().write(name, data, **kwargs)
        if "/staging/" not in name or self.lost:
            return info
        self.lost += 1
        if self.retry_in_client:
            return super().write(name, data, **kwargs)
        raise StoreUnavailable(name, "connection reset before the answer")


@pytest.mark.parametrize("retry_in_client", [True, False])
def test_shard_whose_upload_answer_was_lost_is_loaded_once(
    project: CloudProject,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    retry_in_client: bool,
) -> None:
    """A shard that reached the store though the writer saw an error lands once."""
    store = _LostAnswerStore(
        f"gs://{project.bucket}/dl",
        api_endpoint=project.gcs_endpoint,
        retry_in_client=retry_in_client,
    )
    with Stager(project.config, "events", store=store) as writer:
        writer.extend(records(0, 3))
        writer.flush()
        writer.extend(records(3, 5))

    assert store.lost == 1
    assert writer.spooled == 0
    assert len(staged(gcs_client, project)) == 2
    [report] = _run_once(project)
    assert report.status == "loaded"
    _assert_loaded_once(project, gcs_client, bq_client, list(range(5)), shards=2)


_KILLED_LOADER = """
import os, signal, sys

from dropload.config import load_config
from dropload.loader import Loader


def hook(step):
    if step == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)


Loader(load_config(sys.argv[1]), step_hook=hook).run_once()
"""


@pytest.mark.slow
@pytest.mark.parametrize("step", ["judge", "archive"])
def test_loader_killed_with_sigkill_is_finished_after_its_lease_expires(
    tmp_path: Path,
    gcs_emulator,
    bq_emulator,
    gcs_bucket: str,
    bq_dataset: str,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    step: str,
) -> None:
    """A loader killed -9 mid-tick on another host blocks the table till expiry.

    The next loader then takes over and loads every row exactly once. (A holder
    that died on this host is taken over at once: the lease names another
    host's process here, as a loader elsewhere would have left it.)
    """
    project = make_cloud_project(
        tmp_path / "project",
        bucket=gcs_bucket,
        dataset=bq_dataset,
        gcs_endpoint=gcs_emulator.endpoint,
        bq_endpoint=bq_emulator.endpoint,
        loader={"lease_seconds": 10},
    )
    stage(project, 0, 3)
    stage(project, 3, 6)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_LOADER, str(project.config_path), step],
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    lease = gcs_client.bucket(project.bucket).blob(project.key(layout.lease("events")))
    body = json.loads(lease.download_as_bytes())
    lease.reload()
    elsewhere = {**body, "owner": "elsewhere:1:1:1:00000000"}
    lease.upload_from_string(
        json.dumps(elsewhere), if_generation_match=lease.generation
    )

    [blocked] = _run_once(project)
    assert blocked.status == "skipped"
    expires = datetime.fromisoformat(body["expires"])
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
    [report] = _run_once(project)

    assert report.status == "loaded"
    assert len(load_jobs(bq_client, bq_dataset)) == 1
    _assert_loaded_once(project, gcs_client, bq_client, list(range(6)), shards=2)
