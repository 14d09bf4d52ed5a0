"""Poison shards on the embedded default: found, quarantined, the rest loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dropload import Loader, Stager, layout
from dropload.cli import main
from dropload.quarantine import list_quarantined, release_shard
from dropload.shard import new_shard_name
from dropload.warehouse.base import JobResult, LoadRequest
from embedded import (
    TABLE,
    Project,
    archived,
    make_project,
    records,
    staged,
    table_ids,
)
from seams import SeamWarehouse, without_file_names


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project whose stager writes a shard every 5 records."""
    return make_project(tmp_path, stager={"max_records": 5})


def _stage_shards(project: Project, shards: int, start: int = 0) -> None:
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(start, start + 5 * shards))


def _put_staged(project: Project, data: bytes) -> str:
    name = new_shard_name("ndjson")
    project.store().write(layout.staging(TABLE) + name, data)
    return name


def _loader(project: Project, warehouse: SeamWarehouse) -> Loader:
    return Loader(project.config, warehouse=warehouse, sleep=lambda seconds: None)


def _note(project: Project, shard: str) -> dict[str, str]:
    name = layout.quarantine(TABLE) + shard + layout.ERROR_SUFFIX
    raw: dict[str, str] = json.loads(project.store().read(name))
    return raw


def test_one_poison_shard_among_20_named_by_the_job(project: Project) -> None:
    """19 of 20 shards load in one tick; the shard the error names is quarantined."""
    _stage_shards(project, 10)
    bad = _put_staged(project, b'{"id": 1, "name": "cut off\n')
    _stage_shards(project, 9, start=50)
    warehouse = SeamWarehouse(project.warehouse())

    [report] = _loader(project, warehouse).run_once()

    assert (report.status, report.shards, report.quarantined) == ("loaded", 19, 1)
    assert len(report.jobs) == 2
    assert table_ids(project.warehouse()) == list(range(95))
    assert staged(project.store()) == []
    note = _note(project, bad)
    assert note["job_id"] == report.jobs[0]
    assert "Malformed JSON" in note["error"]
    assert len(archived(project.store())) == 19


def test_poison_shard_found_by_the_local_check_when_no_file_is_named(
    project: Project,
) -> None:
    """No file named: a local schema check finds the bad shard; 19 load, 1 extra job."""
    _stage_shards(project, 12)
    bad = _put_staged(project, b'{"id": "twelve"}\n')
    _stage_shards(project, 7, start=60)
    warehouse = SeamWarehouse(project.warehouse())
    warehouse.after_load = without_file_names

    [report] = _loader(project, warehouse).run_once()

    assert (report.status, report.quarantined, len(report.jobs)) == ("loaded", 1, 2)
    assert table_ids(project.warehouse()) == list(range(95))
    [shard] = list_quarantined(project.store(), TABLE)
    assert shard.shard == bad
    assert shard.error.startswith("checked locally: row 1: field id:")
    assert "twelve" not in shard.error


def test_a_batch_of_bad_shards_only_is_quarantined_without_another_job(
    project: Project,
) -> None:
    """When every shard is bad they all go to quarantine and no job follows."""
    first = _put_staged(project, b"not json\n")
    second = _put_staged(project, b'{"id": true}\n')
    warehouse = SeamWarehouse(project.warehouse())
    warehouse.after_load = without_file_names

    [report] = _loader(project, warehouse).run_once()

    assert (report.quarantined, len(report.jobs), report.failed) == (2, 1, False)
    quarantined = [q.shard for q in list_quarantined(project.store(), TABLE)]
    assert quarantined == sorted([first, second])
    assert project.store().list(layout.intents(TABLE)) == []


def test_split_as_last_resort_stays_within_the_extra_jobs(project: Project) -> None:
    """A shard only the warehouse rejects is split out within isolation_jobs a tick."""
    _stage_shards(project, 20)
    names = staged(project.store())
    poison = names[13]
    warehouse = SeamWarehouse(project.warehouse())

    def reject(request: LoadRequest) -> JobResult | None:
        folder = Path(request.source_uris[0]).parent
        if not (folder / poison).exists():
            return None
        return JobResult(
            job_id=request.job_id,
            state="DONE",
            error_reason="invalid",
            error_message="Error while reading data: too many errors",
        )

    warehouse.before_load = reject
    loader = _loader(project, warehouse)
    limit = project.config.loader.isolation_jobs
    reports = [loader.tick(TABLE) for _ in range(6)]

    assert all(len(r.jobs) <= 1 + limit for r in reports)
    assert [q.shard for q in list_quarantined(project.store(), TABLE)] == [poison]
    expected = [i for i in range(100) if i // 5 != 13]
    assert table_ids(project.warehouse()) == expected
    assert staged(project.store()) == []
    assert _note(project, poison)["error"].startswith("Error while reading data")


def test_table_level_failure_quarantines_nothing(project: Project) -> None:
    """A failure from the table itself quarantines nothing; shards stay staged."""
    warehouse = project.warehouse()
    warehouse.query("CREATE SCHEMA ds")
    warehouse.query("CREATE TABLE ds.events (id BIGINT)")
    _stage_shards(project, 3)
    before = staged(project.store())

    [report] = _loader(project, SeamWarehouse(warehouse)).run_once()

    assert report.failed
    assert "Provided Schema does not match" in (report.error or "")
    assert staged(project.store()) == before
    assert list_quarantined(project.store(), TABLE) == []


def test_released_shard_loads_once_after_the_fix(project: Project) -> None:
    """A released shard goes back to staging and loads once after the fix."""
    _stage_shards(project, 3)
    shard = staged(project.store())[1]
    warehouse = SeamWarehouse(project.warehouse())
    broken = [True]

    def reject(request: LoadRequest) -> JobResult | None:
        folder = Path(request.source_uris[0]).parent
        if not broken[0] or not (folder / shard).exists():
            return None
        message = f"Error while reading data. File: {folder / shard}"
        return JobResult(
            request.job_id, "DONE", error_reason="invalid", error_message=message
        )

    warehouse.before_load = reject
    loader = _loader(project, warehouse)
    [first] = loader.run_once()
    assert (first.rows, first.quarantined) == (10, 1)

    broken[0] = False
    release_shard(project.store(), TABLE, shard)
    assert staged(project.store()) == [shard]
    [second] = loader.run_once()

    assert (second.status, second.rows) == ("loaded", 5)
    assert list_quarantined(project.store(), TABLE) == []
    assert project.store().list(layout.quarantine(TABLE)) == []
    assert table_ids(project.warehouse()) == list(range(15))


def test_quarantine_cli_lists_and_releases(project: Project) -> None:
    """`quarantine list` shows the error; `release` restores it; unknown exits 1."""
    bad = _put_staged(project, b"{not json}\n")
    _stage_shards(project, 1)
    runner = CliRunner()
    config = ["--config", str(project.config_path)]
    assert runner.invoke(main, [*config, "run-once"]).exit_code == 0

    listed = runner.invoke(main, [*config, "quarantine", "list", "--format", "json"])
    released = runner.invoke(main, [*config, "quarantine", "release", bad])
    unknown = runner.invoke(main, [*config, "quarantine", "release", "nope.ndjson"])

    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["table"], row["shard"]) == (TABLE, bad)
    assert row["job_id"].startswith("dropload-events-")
    assert released.exit_code == 0
    assert staged(project.store()) == [bad]
    assert unknown.exit_code == 1
    assert "shard nope.ndjson: not in the quarantine of events" in unknown.stderr


def test_lone_unexplained_failure_on_a_table_never_loaded_is_not_quarantined(
    project: Project,
) -> None:
    """An unexplained lone failure on a never-loaded table fails; no quarantine."""
    _stage_shards(project, 1)
    before = staged(project.store())
    warehouse = SeamWarehouse(project.warehouse())
    warehouse.before_load = lambda request: JobResult(
        request.job_id, "DONE", error_reason="invalid", error_message="bad setup"
    )

    [report] = _loader(project, warehouse).run_once()

    assert report.failed
    assert "bad setup" in (report.error or "")
    assert staged(project.store()) == before
    assert list_quarantined(project.store(), TABLE) == []


class _Crash(BaseException):
    """Stands for the loader process dying at a step of the tick."""


@pytest.mark.parametrize("crash_at", [1, 2])
def test_crash_during_isolation_loads_the_rest_once(
    project: Project, crash_at: int
) -> None:
    """A loader killed during isolation loses nothing; the next tick loads the rest."""
    _stage_shards(project, 4)
    bad = _put_staged(project, b'{"id": 1,\n')
    _stage_shards(project, 4, start=20)
    seen: list[str] = []
    step = "rewrite-intent" if crash_at == 1 else "load"
    count = 1 if crash_at == 1 else 2

    def crash(name: str) -> None:
        seen.append(name)
        if seen.count(step) == count:
            raise _Crash(name)

    crashing = Loader(project.config, step_hook=crash, sleep=lambda s: None)
    with pytest.raises(_Crash):
        crashing.tick(TABLE)
    crashing.close()
    [report] = _loader(project, SeamWarehouse(project.warehouse())).run_once()

    assert report.status == "loaded"
    assert table_ids(project.warehouse()) == list(range(40))
    assert [q.shard for q in list_quarantined(project.store(), TABLE)] == [bad]
    assert staged(project.store()) == []
    assert project.store().list(layout.intents(TABLE)) == []
