"""Exactly once on the embedded default: lost answers, failed jobs, store faults.

Faults go through wrappers around the real LocalStore and DuckDB warehouse
(tests/faults/wrappers.py); outcomes are read back from the table, the ledger
and the store folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropload import layout
from dropload.lease import OBJECT_WRITE_INTERVAL_SECONDS, Lease, new_owner
from dropload.loader import Loader, TickReport
from dropload.manifest import Intent
from dropload.stager import Stager
from embedded import (
    TABLE,
    Project,
    archived,
    ledger,
    make_project,
    manifests,
    records,
    staged,
    table_ids,
)
from faults.wrappers import Fault, FaultyStore, FaultyWarehouse


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project whose stager writes a shard every 5 records."""
    return make_project(tmp_path, stager={"max_records": 5})


@pytest.fixture
def store(project: Project) -> FaultyStore:
    """The project's store behind the fault seam."""
    return FaultyStore(project.store())


@pytest.fixture
def warehouse(project: Project) -> FaultyWarehouse:
    """The project's DuckDB warehouse behind the fault seam."""
    return FaultyWarehouse(project.warehouse())


@pytest.fixture
def loader(
    project: Project, store: FaultyStore, warehouse: FaultyWarehouse
) -> Iterator[Loader]:
    """A loader over both seams."""
    opened = Loader(project.config, store=store, warehouse=warehouse)
    yield opened
    opened.close()


def _stage(project: Project, first: int, stop: int) -> None:
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(first, stop))


def _tick(loader: Loader) -> TickReport:
    (report,) = loader.run_once([TABLE])
    return report


def _leftovers(project: Project) -> list[str]:
    store = project.store()
    names = [layout.staging(TABLE), layout.intents(TABLE), layout.batches(TABLE)]
    found = [i.name for prefix in names for i in store.list(prefix)]
    return found + [n for n in [layout.lease(TABLE)] if store.stat(n)]


def _assert_once(project: Project, ids: range) -> None:
    assert table_ids(project.warehouse()) == list(ids)
    assert _leftovers(project) == []
    listed = [s.name for m in manifests(project.store()) for s in m.shards]
    assert sorted(listed) == sorted(archived(project.store()))


def test_a_lost_answer_to_the_load_is_one_job_and_rows_once(
    project: Project, loader: Loader, warehouse: FaultyWarehouse
) -> None:
    """The job ran but its answer was lost: the next tick finds it, rows once."""
    _stage(project, 0, 10)
    warehouse.arm(Fault("load", "lost"))

    first = _tick(loader)
    second = _tick(loader)

    assert first.status == "failed"
    assert second.status == "loaded"
    assert len(ledger(project.warehouse())) == 1
    assert warehouse.loads[0] == warehouse.loads[1]
    _assert_once(project, range(10))


def test_a_rate_limited_job_is_retried_once_and_archived_after_success(
    project: Project, loader: Loader, warehouse: FaultyWarehouse
) -> None:
    """rateLimitExceeded, then success: rows once, attempt 2, archive after success."""
    _stage(project, 0, 10)
    warehouse.arm(Fault("load", "job_error", reason="rateLimitExceeded"))
    seen: list[tuple[int, int]] = []

    def look(step: str) -> None:
        if step == "rewrite-intent":
            store = project.store()
            seen.append((len(archived(store)), len(store.list(layout.batches(TABLE)))))

    loader.step_hook = look
    report = _tick(loader)

    assert report.status == "loaded"
    assert seen == [(0, 2)]
    jobs = ledger(project.warehouse())
    assert [(j[0][-2:], j[2]) for j in jobs] == [
        ("-1", "rateLimitExceeded"),
        ("-2", None),
    ]
    (manifest,) = manifests(project.store())
    assert manifest.attempt == 2
    assert manifest.job_id.endswith("-2")
    assert manifest.attempts_log[0].endswith("rateLimitExceeded")
    _assert_once(project, range(10))


@pytest.mark.parametrize("reason", ["backendError", "internalError"])
def test_a_backend_error_gets_a_new_job_id(
    project: Project, loader: Loader, warehouse: FaultyWarehouse, reason: str
) -> None:
    """A job DONE with a transient error is retried under attempt 2, rows once."""
    _stage(project, 0, 5)
    warehouse.arm(Fault("load", "job_error", reason=reason))

    report = _tick(loader)

    assert report.status == "loaded"
    assert len(set(report.jobs)) == 2
    _assert_once(project, range(5))


def test_a_quota_error_pauses_and_the_next_tick_loads_under_a_new_id(
    project: Project, loader: Loader, warehouse: FaultyWarehouse
) -> None:
    """quotaExceeded pauses the table with its batch kept; the next tick loads it."""
    _stage(project, 0, 5)
    warehouse.arm(Fault("load", "job_error", reason="quotaExceeded"))

    paused = _tick(loader)
    assert paused.status == "paused"
    assert staged(project.store()) == []
    # The pause ends when the window frees up; here its note is removed instead.
    project.store().delete(layout.pause(TABLE))
    resumed = _tick(loader)

    assert resumed.status == "loaded"
    assert resumed.jobs[0].endswith("-2")
    _assert_once(project, range(5))


def test_a_job_still_running_after_the_wait_is_resumed_not_resubmitted(
    project: Project, loader: Loader, warehouse: FaultyWarehouse
) -> None:
    """A job that outlived the wait is judged by the next tick: one job, rows once."""
    _stage(project, 0, 5)
    warehouse.arm(Fault("load", "running"))

    first = _tick(loader)
    second = _tick(loader)

    assert first.status == "running"
    assert second.status == "loaded"
    assert len(ledger(project.warehouse())) == 1
    _assert_once(project, range(5))


STORE_FAULTS = [
    ("copy", f"/{p}/", kind)
    for p in ("batches", "archive")
    for kind in ("unavailable", "lost", "repeat")
] + [
    ("delete", f"/{p}/", kind)
    for p in ("staging", "batches")
    for kind in ("unavailable", "lost", "repeat")
]


@pytest.mark.parametrize(("op", "where", "kind"), STORE_FAULTS)
def test_a_failed_copy_or_delete_in_a_claim_or_archive_loses_nothing(
    project: Project,
    loader: Loader,
    store: FaultyStore,
    op: str,
    where: str,
    kind: str,
) -> None:
    """A refused or unanswered copy/delete of a claim or archive: every row once."""
    _stage(project, 0, 15)
    fault = store.arm(Fault(op, kind, pattern=where))

    reports = [_tick(loader) for _ in range(3)]

    assert fault.hits == 1
    assert reports[-1].status in ("loaded", "idle")
    _assert_once(project, range(15))


def test_a_lost_answer_to_the_intent_write_is_recognised(
    project: Project, loader: Loader, store: FaultyStore
) -> None:
    """An intent write retried after a lost answer is ours: the tick goes on."""
    _stage(project, 0, 5)
    store.arm(Fault("write", "repeat", pattern="/intents/"))

    report = _tick(loader)

    assert report.status == "loaded"
    _assert_once(project, range(5))


def test_a_lost_answer_to_the_lease_write_is_recognised(
    project: Project, loader: Loader, store: FaultyStore
) -> None:
    """A lease write retried after a lost answer is ours: no skip, no stuck lease."""
    _stage(project, 0, 5)
    store.arm(Fault("write", "repeat", pattern="lease.json$"))

    report = _tick(loader)

    assert report.status == "loaded"
    _assert_once(project, range(5))


def test_a_lost_answer_to_the_intent_rewrite_keeps_the_attempt(
    project: Project,
    loader: Loader,
    store: FaultyStore,
    warehouse: FaultyWarehouse,
) -> None:
    """The attempt-2 intent rewrite, answered late, is recognised: one attempt 2."""
    _stage(project, 0, 5)
    warehouse.arm(Fault("load", "job_error", reason="backendError"))
    store.arm(Fault("write", "repeat", pattern="/intents/", times=2))

    report = _tick(loader)

    assert report.status == "loaded"
    (manifest,) = manifests(project.store())
    assert manifest.attempt == 2
    _assert_once(project, range(5))


def test_an_intent_rewritten_by_another_loader_is_not_overwritten(
    project: Project, loader: Loader, warehouse: FaultyWarehouse
) -> None:
    """A rival's rewrite of the intent wins: this tick stops, the next loads once."""
    _stage(project, 0, 5)
    warehouse.arm(Fault("load", "job_error", reason="backendError"))
    store = project.store()

    def rival(step: str) -> None:
        if step == "rewrite-intent":
            (info,) = store.list(layout.intents(TABLE))
            theirs = Intent.from_json(store.read(info.name)).next_attempt("rival")
            store.write(
                info.name, theirs.to_json(), if_generation_match=info.generation
            )

    loader.step_hook = rival
    aborted = _tick(loader)
    loader.step_hook = lambda step: None
    finished = _tick(loader)

    assert aborted.status == "failed"
    assert "another loader works on it" in (aborted.error or "")
    assert finished.status == "loaded"
    (manifest,) = manifests(project.store())
    assert manifest.attempt == 2
    assert manifest.attempts_log[0].endswith(": rival")
    _assert_once(project, range(5))


def test_a_tick_stops_when_another_loader_took_its_lease(
    project: Project, loader: Loader
) -> None:
    """A tick whose lease was taken over acts no more; the new holder loads once."""
    _stage(project, 0, 5)
    store = project.store()

    def steal(step: str) -> None:
        if step == "claim":
            # The rival comes after Cloud Storage's one write per second per
            # object, as a real takeover (after expiry) always does.
            time.sleep(OBJECT_WRITE_INTERVAL_SECONDS)
            lease = store.stat(layout.lease(TABLE))
            assert lease is not None
            body = json.dumps(
                {"owner": "rival", "expires": "2000-01-01T00:00:00+00:00"}
            )
            store.write(
                layout.lease(TABLE), body.encode(), if_generation_match=lease.generation
            )

    loader.step_hook = steal
    aborted = _tick(loader)
    untouched = (len(staged(store)), store.list(layout.batches(TABLE)))
    loader.step_hook = lambda step: None
    store.delete(layout.lease(TABLE))
    finished = _tick(loader)

    assert aborted.status == "failed"
    assert "lease lost" in (aborted.error or "")
    assert untouched == (1, [])
    assert finished.status == "loaded"
    _assert_once(project, range(5))


def test_a_lease_left_by_a_dead_process_on_this_host_is_taken_at_once(
    project: Project, loader: Loader
) -> None:
    """A live lease whose holder process exited is taken over, not waited out."""
    _stage(project, 0, 5)
    script = "from dropload.lease import new_owner; print(new_owner())"
    dead = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    Lease.acquire(project.store(), TABLE, dead, 900)

    report = _tick(loader)

    assert report.status == "loaded"
    _assert_once(project, range(5))


def test_a_lease_of_a_live_process_is_respected(
    project: Project, loader: Loader
) -> None:
    """A live lease of a running process on this host makes the tick skip."""
    _stage(project, 0, 5)
    Lease.acquire(project.store(), TABLE, new_owner(), 900)

    report = _tick(loader)

    assert report.status == "skipped"
    assert len(staged(project.store())) == 1
    assert ledger(project.warehouse()) == []
