"""Replays on the embedded default (local folder + DuckDB), with real flights rows."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dropload import layout
from dropload.archive import ArchivedBatch
from dropload.cli import main
from dropload.errors import ReplayRefused
from dropload.manifest import Manifest, ShardEntry
from dropload.replay import ReplayRequest, Source, _chunks, plan_replay
from dropload.replay_jobs import run_replay
from dropload.schema import load_schema_file
from dropload.warehouse.base import JobResult, LoadRequest, Warehouse
from embedded import Project, ledger, manifests, toml_section
from flights import (
    DAYS,
    DESTINATION,
    TABLE,
    expected,
    flights_project,
    in_partition,
    load_days,
    rows_of,
    schema,
    stage_rows,
    table_rows,
    tick,
)


@pytest.fixture
def loaded(tmp_path: Path) -> Project:
    """Three days of flights loaded by three ticks into `nyc.flights`."""
    project = flights_project(tmp_path / "p")
    load_days(project)
    return project


def _loader(project: Project, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(project.config_path), *args])


def _replay(project: Project, *args: str) -> dict[str, Any]:
    result = _loader(project, "replay", "--table", TABLE, "--format", "json", *args)
    assert result.exit_code == 0, result.output + result.stderr
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def _drop(project: Project, destination: str = DESTINATION) -> None:
    project.warehouse().query(f"DROP TABLE {destination}")


def test_manifests_record_archive_day_and_partitions(loaded: Project) -> None:
    """Each tick's manifest names its archive day and the one partition it covers."""
    found = sorted(manifests(loaded.store(), TABLE), key=lambda m: m.claimed_at)

    assert [m.partitions for m in found] == [(f"{d:%Y%m%d}",) for d in DAYS]
    assert all(m.day == m.claimed_at.strftime("%Y-%m-%d") for m in found)
    assert all(s.partitions == m.partitions for m in found for s in m.shards)


def test_replay_after_drop_restores_every_row_once(loaded: Project) -> None:
    """Drop the table, replay the three days: the same rows, each once."""
    _drop(loaded)

    body = _replay(loaded, "--from", "2013-01-01", "--to", "2013-01-03")

    assert body["status"] == "done"
    assert body["rows"] == sum(expected().values())
    assert table_rows(loaded) == expected()


def test_replace_one_day_twice_leaves_that_day_once(loaded: Project) -> None:
    """Replace a damaged day twice: its rows once, the other days kept."""
    # The second run has a new --label, so its WRITE_TRUNCATE really runs again.
    warehouse = loaded.warehouse()
    day2 = in_partition(DAYS[1])
    warehouse.query(
        f"DELETE FROM {DESTINATION} WHERE {day2} AND flight % 2 = 0"
        f"; INSERT INTO {DESTINATION} SELECT * FROM {DESTINATION} WHERE {day2}"
    )
    args = ("--from", "2013-01-02", "--to", "2013-01-02", "--mode", "replace")

    first = _replay(loaded, *args)
    second = _replay(loaded, *args, "--label", "again")

    assert first["status"] == second["status"] == "done"
    assert [j["destination"] for j in first["jobs"]] == [f"{DESTINATION}$20130102"]
    assert table_rows(loaded) == expected()


def test_same_replay_twice_runs_its_jobs_once(loaded: Project) -> None:
    """An identical replay request reuses its job ids: the second run loads nothing."""
    args = ("--from", "2013-01-01", "--to", "2013-01-01")
    _drop(loaded)

    first = _replay(loaded, *args)
    jobs_after_first = ledger(loaded.warehouse())
    second = _replay(loaded, *args)

    assert [j["job_id"] for j in first["jobs"]] == [j["job_id"] for j in second["jobs"]]
    assert first["jobs"][0]["job_id"].startswith(f"dropload-replay-{TABLE}-")
    assert ledger(loaded.warehouse()) == jobs_after_first
    assert table_rows(loaded) == expected(DAYS[:1])


def test_replace_splits_a_batch_that_spans_two_days(tmp_path: Path) -> None:
    """A batch covering two days is split: replacing one day keeps the other's rows."""
    project = flights_project(tmp_path / "p")
    stage_rows(project, rows_of(DAYS[0]) + rows_of(DAYS[1]))
    tick(project)
    project.warehouse().query(
        f"DELETE FROM {DESTINATION} WHERE {in_partition(DAYS[1])}"
    )

    body = _replay(
        project, "--from", "2013-01-02", "--to", "2013-01-02", "--mode", "replace"
    )

    assert body["rows"] == len(rows_of(DAYS[1]))
    assert table_rows(project) == expected(DAYS[:2])
    assert project.store().list(f"{TABLE}/replay/") == []


def test_append_of_one_day_reads_only_that_day_of_a_mixed_batch(
    tmp_path: Path,
) -> None:
    """Appending one day of a two-day batch loads only that day's rows."""
    project = flights_project(tmp_path / "p")
    stage_rows(project, rows_of(DAYS[0]) + rows_of(DAYS[1]))
    tick(project)
    _drop(project)

    _replay(project, "--from", "2013-01-01", "--to", "2013-01-01")

    assert table_rows(project) == expected(DAYS[:1])


def test_replay_into_new_table_with_an_added_nullable_column(loaded: Project) -> None:
    """--into a new table with a schema adding a nullable column: rows, column NULL."""
    wider = loaded.folder / "wider.json"
    wider.write_text(json.dumps([*schema(), {"name": "note", "type": "STRING"}]))

    body = _replay(
        loaded,
        *("--from", "2013-01-01", "--to", "2013-01-03"),
        *("--into", "nyc.flights_v2", "--schema", str(wider)),
    )

    assert body["status"] == "done"
    assert table_rows(loaded, "nyc.flights_v2") == expected()
    notes = loaded.warehouse().query("SELECT count(note) FROM nyc.flights_v2")
    assert notes == [(0,)]
    assert table_rows(loaded) == expected()


def test_replace_refused_on_an_unpartitioned_table(tmp_path: Path) -> None:
    """replace without partitions exits 2 and says to use --into a fresh table."""
    project = flights_project(tmp_path / "p", time_partitioning={"type": "DAY"})
    _unpartition(project)
    load_days(project, DAYS[:1])
    before = table_rows(project)

    result = _loader(
        project, "replay", "--table", TABLE, "--mode", "replace",
        "--from", "2013-01-01", "--to", "2013-01-31",
    )  # fmt: skip

    assert result.exit_code == 2
    assert "--into DATASET.TABLE naming a fresh table" in result.stderr
    assert table_rows(project) == before


def test_replace_into_fresh_table_of_an_unpartitioned_one(tmp_path: Path) -> None:
    """An unpartitioned replace --into a fresh table loads; into a full one refuses."""
    project = flights_project(tmp_path / "p")
    _unpartition(project)
    load_days(project, DAYS[:2])
    today = datetime.now(UTC).date().isoformat()
    args = ("--from", today, "--to", today, "--mode", "replace")

    _replay(project, *args, "--into", "nyc.copy")
    refused = _loader(project, "replay", "--table", TABLE, *args, "--into", DESTINATION)

    assert table_rows(project, "nyc.copy") == expected(DAYS[:2])
    assert refused.exit_code == 2
    assert "needs a fresh table" in refused.stderr


def test_dry_run_lists_batches_and_jobs_and_loads_nothing(loaded: Project) -> None:
    """--dry-run names every batch, its rows and bytes, and the jobs; no job runs."""
    _drop(loaded)
    jobs_before = ledger(loaded.warehouse())

    body = _replay(
        loaded, "--from", "2013-01-01", "--to", "2013-01-03", "--mode", "replace",
        "--dry-run",
    )  # fmt: skip

    assert body["batches"] == 3
    assert body["rows"] == sum(expected().values())
    assert body["bytes"] == sum(m.byte_count for m in manifests(loaded.store(), TABLE))
    assert [j["destination"] for j in body["job_list"]] == [
        f"{DESTINATION}${d:%Y%m%d}" for d in DAYS
    ]
    assert ledger(loaded.warehouse()) == jobs_before
    assert loaded.warehouse().row_count(DESTINATION) == 0


def test_replay_budget_refused_past_the_reserve(loaded: Project) -> None:
    """A replay needing more jobs than loader.replay_reserve leaves is refused."""
    text = loaded.config_path.read_text()
    loaded.config_path.write_text(text + toml_section("loader", {"replay_reserve": 2}))
    request = ReplayRequest(TABLE, DAYS[0], DAYS[-1], mode="replace")
    fields = load_schema_file(loaded.folder / "schema.json")
    plan = plan_replay(loaded.store(), loaded.config, fields, request)

    with pytest.raises(ReplayRefused, match=r"needs 3 load jobs.*replay_reserve \(2\)"):
        run_replay(plan, loaded.store(), loaded.warehouse(), loaded.config, fields)
    assert table_rows(loaded) == expected()


def test_replay_never_touches_staging_batches_or_intents(loaded: Project) -> None:
    """Shards staged before a replay stay staged, untouched, for the next tick."""
    stage_rows(loaded, rows_of(date(2013, 1, 4)))
    store = loaded.store()
    live = [
        (i.name, i.generation)
        for prefix in (
            layout.staging(TABLE),
            layout.batches(TABLE),
            layout.intents(TABLE),
        )
        for i in store.list(prefix)
    ]

    _replay(loaded, "--from", "2013-01-01", "--to", "2013-01-03", "--mode", "replace")

    after = [
        (i.name, i.generation)
        for prefix in (
            layout.staging(TABLE),
            layout.batches(TABLE),
            layout.intents(TABLE),
        )
        for i in store.list(prefix)
    ]
    assert live
    assert after == live
    tick(loaded)
    assert table_rows(loaded) == expected((*DAYS, date(2013, 1, 4)))


def _unpartition(project: Project) -> None:
    text = project.config_path.read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("time_partitioning")]
    project.config_path.write_text("\n".join(lines) + "\n")


class _Killed(BaseException):
    """Stands for kill -9 of the replay process."""


class FlakyWarehouse(Warehouse):
    """The real DuckDB warehouse behind a seam that fails chosen loads.

    `transient` job ids come back as a backendError without running; the
    `kill_after`-th load that runs raises _Killed once it is committed.
    """

    def __init__(
        self, inner: Warehouse, *, transient: set[str], kill_after: int | None
    ) -> None:
        self.inner = inner
        self.transient = transient
        self.kill_after = kill_after
        self.ran = 0

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        """Fail or run, then maybe die."""
        if request.job_id in self.transient:
            return JobResult(
                request.job_id, "DONE", error_reason="backendError", error_message="x"
            )
        result = self.inner.load(request, timeout=timeout)
        self.ran += 1
        if self.kill_after is not None and self.ran >= self.kill_after:
            raise _Killed(request.job_id)
        return result

    def get_job(self, job_id: str) -> JobResult | None:
        """As the real warehouse."""
        return self.inner.get_job(job_id)

    def list_load_jobs(self, destination: str, since: datetime) -> list[JobResult]:
        """As the real warehouse."""
        return self.inner.list_load_jobs(destination, since)

    def row_count(self, destination: str) -> int:
        """As the real warehouse."""
        return self.inner.row_count(destination)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """As the real warehouse."""
        return self.inner.query(sql)


def _run(project: Project, request: ReplayRequest, warehouse: Warehouse) -> Any:
    fields = load_schema_file(project.folder / "schema.json")
    plan = plan_replay(project.store(), project.config, fields, request)
    return run_replay(plan, project.store(), warehouse, project.config, fields)


def test_replay_killed_between_jobs_resumes_without_loading_twice(
    loaded: Project,
) -> None:
    """A replay killed after two of its three jobs, run again, loads each row once."""
    _drop(loaded)
    request = ReplayRequest(TABLE, DAYS[0], DAYS[-1], mode="replace")
    dying = FlakyWarehouse(loaded.warehouse(), transient=set(), kill_after=2)

    with pytest.raises(_Killed):
        _run(loaded, request, dying)
    report = _run(loaded, request, loaded.warehouse())

    assert report.status == "done"
    replays = [j for j in ledger(loaded.warehouse()) if "replay" in j[0]]
    assert len(replays) == 3
    assert table_rows(loaded) == expected()
    assert loaded.store().list(f"{TABLE}/replay/") == []


def test_replay_retries_a_transient_failure_under_a_new_job_id(
    loaded: Project,
) -> None:
    """A backendError on attempt 1 is retried as attempt 2; the rows load once."""
    _drop(loaded)
    request = ReplayRequest(TABLE, DAYS[0], DAYS[0])
    fields = load_schema_file(loaded.folder / "schema.json")
    plan = plan_replay(loaded.store(), loaded.config, fields, request)
    first = f"{plan.jobs[0].base_id}-1"
    flaky = FlakyWarehouse(loaded.warehouse(), transient={first}, kill_after=None)

    report = run_replay(plan, loaded.store(), flaky, loaded.config, fields)

    assert report.status == "done"
    assert report.jobs[0]["job_id"] == f"{plan.jobs[0].base_id}-2"
    assert table_rows(loaded) == expected(DAYS[:1])


def test_replay_refuses_batches_in_another_format_than_the_table(
    tmp_path: Path,
) -> None:
    """A table switched from NDJSON to Avro refuses to replay its NDJSON batches."""
    project = flights_project(tmp_path / "p")
    load_days(project, DAYS[:1])
    text = project.config_path.read_text()
    project.config_path.write_text(text + 'format = "avro"\n')

    result = _loader(
        project,
        "replay",
        "--table",
        TABLE,
        "--from",
        "2013-01-01",
        "--to",
        "2013-01-01",
    )

    assert result.exit_code == 2
    assert "is ndjson but the table's format is now avro" in result.stderr


def _archived(batch_id: str, partitions: tuple[str, ...]) -> ArchivedBatch:
    moment = datetime(2026, 1, 26, tzinfo=UTC)
    return ArchivedBatch(
        Manifest(
            table=TABLE,
            destination=DESTINATION,
            batch_id=batch_id,
            job_id="j",
            attempt=1,
            day="2026-01-26",
            shards=(ShardEntry("s.ndjson", 1, 10, 1),),
            rows=1,
            byte_count=10,
            format="ndjson",
            claimed_at=moment,
            loaded_at=moment,
            partitions=partitions,
        )
    )


def test_jobs_are_cut_at_10000_uris_and_4000_partitions() -> None:
    """Sources fill a job up to 10,000 URIs or 4,000 partitions, then a new job."""
    many = [Source(f"b{n}/*", _archived(f"b{n}", ("20260126",))) for n in range(10_001)]
    hours = [
        Source(f"h{n}/*", _archived(f"h{n}", (f"2026012{n // 1000}{n % 1000:04d}",)))
        for n in range(4_001)
    ]

    assert [len(c) for c in _chunks(many)] == [10_000, 1]
    assert [len(c) for c in _chunks(hours)] == [4_000, 1]
