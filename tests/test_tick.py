"""One tick on the embedded default: claim, ONE load job per table, archive."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dropload import Loader, Stager, layout
from dropload.cli import main
from dropload.lease import Lease
from dropload.manifest import Intent, Manifest, ShardEntry
from dropload.shard import new_batch_id, new_shard_name
from dropload.store import ROWS_METADATA, ObjectInfo
from dropload.warehouse import JobResult, LoadRequest, Warehouse
from embedded import (
    DESTINATION,
    TABLE,
    Project,
    archived,
    ledger,
    make_project,
    manifests,
    records,
    shard_ids,
    staged,
    table_ids,
)


class WrappedWarehouse(Warehouse):
    """The real DuckDB warehouse, with a hook that runs inside load()."""

    def __init__(self, inner: Warehouse) -> None:
        self.inner = inner
        self.before_load: Callable[[LoadRequest], JobResult | None] = lambda r: None
        """Runs first in load(); a result it returns is answered instead."""

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        """Run the hook, then the real load unless the hook answered."""
        answer = self.before_load(request)
        if answer is not None:
            return answer
        return self.inner.load(request, timeout=timeout)

    def get_job(self, job_id: str) -> JobResult | None:
        """Delegates."""
        return self.inner.get_job(job_id)

    def list_load_jobs(self, destination: str, since: datetime) -> list[JobResult]:
        """Delegates."""
        return self.inner.list_load_jobs(destination, since)

    def row_count(self, destination: str) -> int:
        """Delegates."""
        return self.inner.row_count(destination)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Delegates."""
        return self.inner.query(sql)


class Crash(BaseException):
    """Stands for the process dying at a step of the tick."""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project whose stager writes a shard every 5 records."""
    return make_project(tmp_path, stager={"max_records": 5})


@pytest.fixture
def warehouse(project: Project) -> WrappedWarehouse:
    """The project's DuckDB warehouse behind a hook."""
    return WrappedWarehouse(project.warehouse())


@pytest.fixture
def loader(project: Project, warehouse: WrappedWarehouse) -> Iterator[Loader]:
    """A loader over the project's store and the wrapped warehouse."""
    opened = Loader(project.config, warehouse=warehouse)
    yield opened
    opened.close()


def _stage(project: Project, first: int, stop: int, table: str = TABLE) -> None:
    with Stager(project.config, table) as stager:
        stager.extend(records(first, stop))


def _tick(loader: Loader, table: str = TABLE) -> Any:
    (report,) = loader.run_once([table])
    return report


def _entry(info: ObjectInfo) -> ShardEntry:
    rows = int(info.metadata[ROWS_METADATA])
    return ShardEntry(info.basename, info.generation, info.size, rows)


def _leftovers(project: Project, table: str = TABLE) -> list[str]:
    """Objects in intents/ and batches/: what an unfinished tick leaves."""
    store = project.store()
    found = store.list(layout.intents(table)) + store.list(layout.batches(table))
    return [i.name for i in found]


def test_staged_shards_load_in_one_job_and_are_archived(
    project: Project, loader: Loader
) -> None:
    """Three staged shards: one load job, every row once, shards archived."""
    _stage(project, 0, 15)
    names = staged(project.store())
    sizes = sum(i.size for i in project.store().list(layout.staging(TABLE)))

    report = _tick(loader)

    assert (report.status, len(report.jobs), report.rows) == ("loaded", 1, 15)
    assert table_ids(project.warehouse()) == list(range(15))
    assert staged(project.store()) == []
    assert sorted(archived(project.store())) == sorted(names)
    assert _leftovers(project) == []
    (manifest,) = manifests(project.store())
    assert manifest.job_id == report.jobs[0]
    assert sorted(s.name for s in manifest.shards) == sorted(names)
    assert (manifest.rows, manifest.byte_count) == (15, sizes)
    assert [s.rows for s in manifest.shards] == [5, 5, 5]
    assert ledger(project.warehouse()) == [(report.jobs[0], "DONE", None, 15)]


def test_archived_shards_sit_under_their_batch(
    project: Project, loader: Loader
) -> None:
    """The archive holds each batch's shards under `<day>/<batch>/`."""
    _stage(project, 0, 5)

    _tick(loader)

    (manifest,) = manifests(project.store())
    folder = layout.archived_batch(TABLE, manifest.day, manifest.batch_id)
    (shard,) = manifest.shards
    assert project.store().stat(folder + shard.name) is not None


def test_a_tick_with_nothing_staged_runs_no_job(
    project: Project, loader: Loader
) -> None:
    """A second tick with nothing new staged runs no load job."""
    _stage(project, 0, 5)
    _tick(loader)
    before = ledger(project.warehouse())

    report = _tick(loader)

    assert (report.status, report.jobs) == ("idle", [])
    assert ledger(project.warehouse()) == before
    assert len(manifests(project.store())) == 1


def test_an_empty_table_runs_no_job(project: Project, loader: Loader) -> None:
    """A table nothing was ever staged for runs no job and creates no table."""
    report = _tick(loader)

    assert (report.status, report.jobs) == ("idle", [])
    assert ledger(project.warehouse()) == []
    assert project.warehouse().row_count(DESTINATION) == 0


def test_a_shard_staged_during_the_load_waits_for_the_next_tick(
    project: Project, loader: Loader, warehouse: WrappedWarehouse
) -> None:
    """A shard staged while the job runs is loaded by the next tick, once."""
    staged_during: list[str] = []

    def stage_one(request: LoadRequest) -> None:
        if not staged_during:
            _stage(project, 100, 103)
            staged_during.extend(staged(project.store()))

    warehouse.before_load = stage_one
    _stage(project, 0, 10)

    first = _tick(loader)

    assert first.rows == 10
    assert table_ids(project.warehouse()) == list(range(10))
    assert staged(project.store()) == staged_during

    second = _tick(loader)

    assert second.rows == 3
    assert table_ids(project.warehouse()) == [*range(10), 100, 101, 102]
    assert staged(project.store()) == []
    assert len(ledger(project.warehouse())) == 2


def test_a_job_done_with_an_error_leaves_the_shards_staged(
    project: Project, loader: Loader
) -> None:
    """A load whose table rejects the rows archives nothing and keeps every shard."""
    project.warehouse().query("CREATE SCHEMA ds")
    project.warehouse().query("CREATE TABLE ds.events (id DATE, name VARCHAR)")
    _stage(project, 0, 10)
    names = staged(project.store())

    report = _tick(loader)

    assert report.failed
    assert report.jobs[0] in (report.error or "")
    assert staged(project.store()) == names
    assert archived(project.store()) == []
    assert manifests(project.store()) == []
    assert _leftovers(project) == []
    ((job_id, state, reason, rows),) = ledger(project.warehouse())
    assert (job_id, state, rows) == (report.jobs[0], "DONE", None)
    assert reason is not None


def test_shards_of_a_failed_job_load_once_the_cause_is_fixed(
    project: Project, loader: Loader
) -> None:
    """After a failed job the next tick (with a new job id) loads every row once."""
    project.warehouse().query("CREATE SCHEMA ds")
    project.warehouse().query("CREATE TABLE ds.events (id DATE, name VARCHAR)")
    _stage(project, 0, 10)
    failed = _tick(loader)
    project.warehouse().query("DROP TABLE ds.events")

    report = _tick(loader)

    assert report.status == "loaded"
    assert report.jobs != failed.jobs
    assert table_ids(project.warehouse()) == list(range(10))
    assert staged(project.store()) == []


def test_create_never_on_a_missing_table_fails_the_tick(tmp_path: Path) -> None:
    """CREATE_NEVER into a missing table is a failed job; shards stay staged."""
    project = make_project(
        tmp_path,
        tables={
            TABLE: {"destination": DESTINATION, "create_disposition": "CREATE_NEVER"}
        },
    )
    _stage(project, 0, 3)
    names = staged(project.store())

    with closing(Loader(project.config)) as loader:
        report = _tick(loader)

    assert report.failed
    assert "notFound" in (report.error or "")
    assert staged(project.store()) == names
    assert archived(project.store()) == []


def test_the_cli_exits_1_naming_the_failed_table(project: Project) -> None:
    """run-once exits 1 and names the table on stderr when its job failed."""
    project.warehouse().query("CREATE SCHEMA ds")
    project.warehouse().query("CREATE TABLE ds.events (id DATE, name VARCHAR)")
    _stage(project, 0, 3)

    result = CliRunner().invoke(
        main, ["--config", str(project.config_path), "run-once"]
    )

    assert result.exit_code == 1
    assert f"table {TABLE}: job dropload-{TABLE}-" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(staged(project.store())) == 1


def test_avro_tables_load(tmp_path: Path) -> None:
    """An Avro table's shards load with their timestamps intact."""
    project = make_project(
        tmp_path, tables={TABLE: {"destination": DESTINATION, "format": "avro"}}
    )
    moment = datetime(2026, 1, 26, 12, 30, 15, 123_456, tzinfo=UTC)
    with Stager(project.config, TABLE) as stager:
        stager.extend({"id": i, "name": f"n{i}", "ts": moment} for i in range(4))
        stager.flush()
        stager.append({"id": 4})

    with closing(Loader(project.config)) as loader:
        report = _tick(loader)

    assert (report.status, report.rows, report.shards) == ("loaded", 5, 2)
    rows = project.warehouse().query(f"SELECT id, name, ts FROM {DESTINATION}")
    assert sorted(rows)[0] == (0, "n0", moment)
    assert sorted(rows)[4] == (4, None, None)
    assert staged(project.store(), TABLE) == []


def test_tables_tick_independently(tmp_path: Path) -> None:
    """Two tables in one dataset each load in their own single job."""
    project = make_project(
        tmp_path,
        tables={
            "events": {"destination": "ds.events"},
            "others": {"destination": "ds.others", "format": "avro"},
        },
    )
    _stage(project, 0, 5, "events")
    _stage(project, 10, 13, "others")

    with closing(Loader(project.config)) as loader:
        reports = loader.run_once()

    assert [(r.table, r.status, len(r.jobs)) for r in reports] == [
        ("events", "loaded", 1),
        ("others", "loaded", 1),
    ]
    assert table_ids(project.warehouse(), "ds.others") == [10, 11, 12]


def test_other_files_in_staging_are_left_alone(
    project: Project, loader: Loader
) -> None:
    """Files that are not shards of the table's format are neither loaded nor moved."""
    store = project.store()
    store.write(layout.staging(TABLE) + "notes.txt", b"not a shard")
    store.write(layout.staging(TABLE) + new_shard_name("avro"), b"wrong format")
    _stage(project, 0, 2)

    report = _tick(loader)

    assert report.rows == 2
    assert len(staged(store)) == 2


def test_an_applied_job_id_is_not_applied_again(
    project: Project, warehouse: WrappedWarehouse
) -> None:
    """A tick that dies after its job committed is finished without a second load."""
    _stage(project, 0, 10)

    def crash_after_load(step: str) -> None:
        if step == "write-manifest":
            raise Crash(step)

    crashing = Loader(project.config, warehouse=warehouse, step_hook=crash_after_load)
    with pytest.raises(Crash):
        crashing.run_once()
    assert table_ids(project.warehouse()) == list(range(10))

    with closing(Loader(project.config, warehouse=warehouse)) as loader:
        report = _tick(loader)

    assert table_ids(project.warehouse()) == list(range(10))
    assert len(ledger(project.warehouse())) == 1
    assert report.jobs == [ledger(project.warehouse())[0][0]]
    assert len(archived(project.store())) == 2
    assert _leftovers(project) == []


def test_the_ledger_refuses_a_second_run_of_a_job_id(
    project: Project, loader: Loader
) -> None:
    """Loading under an existing job id returns that job and adds no rows."""
    _stage(project, 0, 5)
    report = _tick(loader)
    _stage(project, 5, 10)
    shard = project.store().list(layout.staging(TABLE))[0]
    request = LoadRequest(
        job_id=report.jobs[0],
        table=project.config.table(TABLE),
        fields=loader.fields(TABLE),
        source_uris=(project.store().uri(shard.name),),
    )

    result = project.warehouse().load(request, timeout=60)

    assert (result.job_id, result.succeeded, result.output_rows) == (
        report.jobs[0],
        True,
        5,
    )
    assert table_ids(project.warehouse()) == list(range(5))


@pytest.mark.parametrize(
    "step",
    ["recover", "write-intent", "claim", "load", "judge", "write-manifest", "archive"],
)
def test_a_tick_that_dies_at_any_step_is_finished_by_the_next(
    project: Project, warehouse: WrappedWarehouse, step: str
) -> None:
    """Whatever step a tick dies at, the next tick loads every row exactly once."""
    _stage(project, 0, 15)

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        Loader(project.config, warehouse=warehouse, step_hook=crash).run_once()
    with closing(Loader(project.config, warehouse=warehouse)) as loader:
        _tick(loader)

    assert table_ids(project.warehouse()) == list(range(15))
    assert staged(project.store()) == []
    assert len(archived(project.store())) == 3
    assert len(manifests(project.store())) == 1
    assert _leftovers(project) == []


def test_an_intent_with_half_its_shards_moved_is_finished(
    project: Project, loader: Loader
) -> None:
    """An intent left with half its shards claimed loads them all, once."""
    _stage(project, 0, 20)
    store = project.store()
    shards = store.list(layout.staging(TABLE))
    intent = Intent(
        table=TABLE,
        batch_id=new_batch_id(),
        created=datetime.now(UTC),
        shards=tuple(_entry(s) for s in shards),
    )
    store.write(layout.intent(TABLE, intent.batch_id), intent.to_json())
    for shard in shards[:2]:
        store.move(shard, layout.batch(TABLE, intent.batch_id) + shard.basename)
    store.copy(shards[2], layout.batch(TABLE, intent.batch_id) + shards[2].basename)

    report = _tick(loader)

    assert report.jobs == [intent.job_id]
    assert table_ids(project.warehouse()) == list(range(20))
    assert staged(store) == []
    assert len(archived(store)) == 4
    assert _leftovers(project) == []


def test_shards_staged_after_an_intent_wait_for_the_next_batch(
    project: Project, loader: Loader
) -> None:
    """Recovery loads only the intent's shards; later ones go in a new batch."""
    _stage(project, 0, 5)
    store = project.store()
    (shard,) = store.list(layout.staging(TABLE))
    intent = Intent(TABLE, new_batch_id(), datetime.now(UTC), (_entry(shard),))
    store.write(layout.intent(TABLE, intent.batch_id), intent.to_json())
    _stage(project, 5, 10)

    report = _tick(loader)

    assert len(report.jobs) == 2
    assert report.jobs[0] == intent.job_id
    assert table_ids(project.warehouse()) == list(range(10))
    assert len(manifests(store)) == 2


def test_a_job_still_running_keeps_its_batch_for_the_next_tick(
    project: Project, loader: Loader, warehouse: WrappedWarehouse
) -> None:
    """A job not DONE when the tick stops waiting is judged again by the next tick."""
    _stage(project, 0, 5)
    warehouse.before_load = lambda request: JobResult(request.job_id, "RUNNING")

    first = _tick(loader)

    assert first.status == "running"
    assert staged(project.store()) == []
    assert archived(project.store()) == []
    assert len(_leftovers(project)) == 2

    warehouse.before_load = lambda request: None
    second = _tick(loader)

    assert second.jobs == first.jobs
    assert table_ids(project.warehouse()) == list(range(5))
    assert _leftovers(project) == []


def test_a_transient_failure_is_retried_with_a_new_job_id(
    project: Project, loader: Loader, warehouse: WrappedWarehouse
) -> None:
    """A backendError gets a second attempt, under a new job id, in the same tick."""
    _stage(project, 0, 5)
    failed: list[str] = []

    def fail_once(request: LoadRequest) -> JobResult | None:
        if failed:
            return None
        failed.append(request.job_id)
        return JobResult(request.job_id, "DONE", error_reason="backendError")

    warehouse.before_load = fail_once

    report = _tick(loader)

    assert report.status == "loaded"
    assert report.jobs[0] == failed[0]
    assert report.jobs[1] == failed[0][:-1] + "2"
    assert table_ids(project.warehouse()) == list(range(5))
    (manifest,) = manifests(project.store())
    assert (manifest.job_id, manifest.attempt) == (report.jobs[1], 2)
    assert manifest.attempts_log[0].startswith(failed[0])


def test_a_table_leased_by_another_loader_is_skipped(
    project: Project, loader: Loader
) -> None:
    """While another loader holds the table's lease, the tick leaves it alone."""
    _stage(project, 0, 5)
    Lease.acquire(project.store(), TABLE, "other-host:1:abc", 600)

    report = _tick(loader)

    assert report.status == "skipped"
    assert "other-host:1:abc" in (report.error or "")
    assert len(staged(project.store())) == 1
    assert ledger(project.warehouse()) == []


def test_manifest_round_trips(project: Project, loader: Loader) -> None:
    """A manifest read back equals what the tick wrote."""
    _stage(project, 0, 5)
    _tick(loader)
    (manifest,) = manifests(project.store())

    assert Manifest.from_json(manifest.to_json()) == manifest


def test_an_intent_with_half_its_shards_archived_is_finished(
    project: Project, warehouse: WrappedWarehouse
) -> None:
    """A tick that died halfway through archiving is finished by the next."""
    _stage(project, 0, 20)

    def crash(at: str) -> None:
        if at == "archive":
            raise Crash(at)

    with pytest.raises(Crash):
        Loader(project.config, warehouse=warehouse, step_hook=crash).run_once()
    store = project.store()
    (intent_info,) = store.list(layout.intents(TABLE))
    intent = Intent.from_json(store.read(intent_info.name))
    (manifest,) = manifests(store)
    target = layout.archived_batch(TABLE, manifest.day, intent.batch_id)
    for shard in store.list(layout.batch(TABLE, intent.batch_id))[:2]:
        store.move(shard, target + shard.basename)

    with closing(Loader(project.config, warehouse=warehouse)) as loader:
        report = _tick(loader)

    assert report.jobs == [intent.job_id]
    assert table_ids(project.warehouse()) == list(range(20))
    assert len(archived(store)) == 4
    assert len(manifests(store)) == 1
    assert len(ledger(project.warehouse())) == 1
    assert _leftovers(project) == []


@pytest.mark.parametrize("step", ["unclaim", "close-intent"])
def test_a_tick_that_dies_putting_back_a_failed_batch_is_finished(
    project: Project, warehouse: WrappedWarehouse, step: str
) -> None:
    """A tick dying while it puts a failed batch back loses and doubles nothing."""
    project.warehouse().query("CREATE SCHEMA ds")
    project.warehouse().query("CREATE TABLE ds.events (id DATE)")
    _stage(project, 0, 15)

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        Loader(project.config, warehouse=warehouse, step_hook=crash).run_once()
    with closing(Loader(project.config, warehouse=warehouse)) as loader:
        _tick(loader)
        project.warehouse().query("DROP TABLE ds.events")
        report = _tick(loader)

    assert report.status == "loaded"
    assert table_ids(project.warehouse()) == list(range(15))
    assert staged(project.store()) == []
    assert len(archived(project.store())) == 3
    assert _leftovers(project) == []


def test_a_table_named_twice_ticks_once(project: Project, loader: Loader) -> None:
    """run_once with the same table twice runs one tick of it."""
    _stage(project, 0, 5)

    reports = loader.run_once([TABLE, TABLE])

    assert [(r.table, r.status) for r in reports] == [(TABLE, "loaded")]


def test_unexpected_error_fails_its_table_only(tmp_path: Path) -> None:
    """An unexpected error in one table's tick fails that table; others load."""
    project = make_project(
        tmp_path,
        tables={"good": {"destination": "ds.good"}, "bad": {"destination": "ds.bad"}},
    )
    for name in ("good", "bad"):
        with Stager(project.config, name) as stager:
            stager.extend(records(0, 5))

    class Exploding(WrappedWarehouse):
        def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
            if request.table.name == "bad":
                raise RuntimeError("internal failure")
            return super().load(request, timeout=timeout)

    warehouse = Exploding(project.warehouse())
    reports = {
        r.table: r for r in Loader(project.config, warehouse=warehouse).run_once()
    }
    assert reports["good"].status == "loaded"
    assert reports["bad"].failed
    assert "RuntimeError" in (reports["bad"].error or "")
    assert table_ids(project.warehouse(), "ds.good") == list(range(5))
    assert shard_ids(project.store(), layout.batches("bad")) == list(range(5))
