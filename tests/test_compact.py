"""Archive compaction on the embedded default, with 1,000+ real flights shards."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dropload import layout
from dropload.archive import read_archive
from dropload.cli import main
from dropload.compact import compact_archive
from dropload.replay import ReplayRequest, plan_replay
from dropload.schema import load_schema_file
from dropload.store.base import ObjectInfo, Store
from dropload.store.local import LocalStore
from embedded import Project, manifests
from flights import DAYS, TABLE, expected, flights_project, key, load_days, table_rows

SHARDS = 1000
"""At least this many shards are archived before compacting."""


class _Killed(BaseException):
    """Stands for kill -9: nothing in dropload catches a BaseException."""


class KillingStore(Store):
    """A store that dies (every call raises) at its `kill_at`-th change."""

    def __init__(self, inner: Store, kill_at: int | None) -> None:
        self.inner = inner
        self.url = inner.url
        self.kill_at = kill_at
        self.changes = 0

    def _change(self) -> None:
        self.changes += 1
        if self.kill_at is not None and self.changes >= self.kill_at:
            raise _Killed(f"killed at change {self.changes}")

    def write(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Counts as a change."""
        self._change()
        return self.inner.write(
            name, data, if_generation_match=if_generation_match, metadata=metadata
        )

    def compose(
        self,
        sources: Sequence[ObjectInfo],
        dst: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Counts as a change."""
        self._change()
        return self.inner.compose(sources, dst, metadata=metadata)

    def copy(self, src: ObjectInfo, dst: str) -> ObjectInfo:
        """Counts as a change."""
        self._change()
        return self.inner.copy(src, dst)

    def delete(self, name: str, *, if_generation_match: int | None = None) -> None:
        """Counts as a change."""
        self._change()
        self.inner.delete(name, if_generation_match=if_generation_match)

    def stat(self, name: str) -> ObjectInfo | None:
        """Dead after the kill, like every call."""
        self._check()
        return self.inner.stat(name)

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Dead after the kill, like every call."""
        self._check()
        return self.inner.list(prefix)

    def read(self, name: str) -> bytes:
        """Dead after the kill, like every call."""
        self._check()
        return self.inner.read(name)

    def uri(self, name: str) -> str:
        """The inner store's URI."""
        return self.inner.uri(name)

    def _check(self) -> None:
        if self.kill_at is not None and self.changes >= self.kill_at:
            raise _Killed("already killed")


def _archive(folder: Path, rows_per_shard: int) -> Project:
    project = flights_project(folder)
    text = project.config_path.read_text()
    text = text.replace("max_records = 100", f"max_records = {rows_per_shard}")
    project.config_path.write_text(text)
    load_days(project)
    return project


@pytest.fixture(scope="module")
def archive_1000(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Three days of flights loaded in shards of 2 rows: over 1,000 shards."""
    return _archive(tmp_path_factory.mktemp("compact") / "p", 2)


@pytest.fixture
def archive_260(tmp_path: Path) -> Project:
    """Three days of flights loaded in shards of 10 rows: about 260 shards."""
    return _archive(tmp_path / "p", 10)


@pytest.fixture
def project(archive_1000: Project, tmp_path: Path) -> Project:
    """A private copy of the 1,000-shard project (store files hard-linked)."""
    _link_tree(archive_1000.folder, tmp_path / "p")
    return Project(tmp_path / "p")


def _shards(store: Store) -> list[str]:
    return [
        i.name
        for i in store.list(layout.archive(TABLE))
        if not i.name.endswith(layout.MANIFEST_SUFFIX)
    ]


def _compact(store: Store) -> Any:
    return compact_archive(store, TABLE, 0, owner="test", lease_seconds=60)


def _readable_rows(project: Project, store: Store) -> Counter[Any]:
    """Rows a replay of the three days would read from the archive right now."""
    fields = load_schema_file(project.folder / "schema.json")
    request = ReplayRequest(TABLE, DAYS[0], DAYS[-1])
    plan = plan_replay(store, project.config, fields, request)
    assert not plan.splits
    rows: Counter[Any] = Counter()
    for job in plan.jobs:
        for source in job.sources:
            for info in store.list(source.name.rsplit("/", 1)[0] + "/"):
                for line in store.read(info.name).splitlines():
                    row = json.loads(line)
                    moment = datetime.fromisoformat(row["time_hour"]).astimezone(UTC)
                    rows[key({**row, "time_hour": moment})] += 1
    return rows


def _loader(project: Project, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(project.config_path), *args])


def test_compaction_merges_1000_shards_into_a_few_files(project: Project) -> None:
    """1,000+ shards of a day become at most 10 files; a replay reads the same rows."""
    store = project.store()
    assert len(_shards(store)) >= SHARDS

    result = _loader(project, "compact", "--older-than", "0", "--format", "json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)[0]
    assert report["shards"] >= SHARDS
    per_day = Counter(name.split("/")[2] for name in _shards(store))
    assert per_day
    assert max(per_day.values()) <= 10
    assert all(m.batch_id.startswith("compact-") for m in manifests(store, TABLE))
    project.warehouse().query("DROP TABLE nyc.flights")
    replay = _loader(
        project,
        "replay",
        "--table",
        TABLE,
        "--from",
        "2013-01-01",
        "--to",
        "2013-01-03",
    )
    assert replay.exit_code == 0, replay.output
    assert table_rows(project) == expected()


def test_compaction_twice_changes_nothing_the_second_time(project: Project) -> None:
    """A second compaction finds nothing to merge and keeps every object."""
    store = project.store()
    _compact(store)
    before = [(i.name, i.generation) for i in store.list(layout.archive(TABLE))]

    again = _compact(store)

    assert (again.groups, again.files) == (0, 0)
    assert [(i.name, i.generation) for i in store.list(layout.archive(TABLE))] == before


@pytest.mark.slow
def test_compaction_killed_30_times_keeps_every_row_once(archive_260: Project) -> None:
    """Killed at 30 random changes (twice each), the archive reads each row once."""
    # About 260 shards, so each part is composed through intermediate objects;
    # after each kill round a last run completes the compaction.
    project = archive_260
    rng = random.Random(5)
    counting = KillingStore(LocalStore(project.store_root), None)
    snapshot = project.folder.parent / "snapshot"
    _link_tree(project.folder, snapshot)
    _compact(counting)
    total = counting.changes
    want = expected()

    for _ in range(30):
        shutil.rmtree(project.folder)
        _link_tree(snapshot, project.folder)
        early = rng.randint(1, 25)  # the composes and manifests come first
        with pytest.raises(_Killed):
            _compact(
                KillingStore(
                    project.store(), rng.choice([early, rng.randint(1, total)])
                )
            )
        _expire_lease(project)
        assert _readable_rows(project, project.store()) == want
        try:  # the resumed run has less to do: it may end before this kill
            _compact(KillingStore(project.store(), rng.randint(1, total)))
        except _Killed:
            _expire_lease(project)
        assert _readable_rows(project, project.store()) == want

        report = _compact(project.store())

        assert _readable_rows(project, project.store()) == want
        assert report.files <= 10 * 3
        assert all(b.compacted_from for b in read_archive(project.store(), TABLE))
        assert project.store().list(f"{TABLE}/compact/") == []
    project.warehouse().query("DROP TABLE nyc.flights")
    replay = _loader(
        project,
        "replay",
        "--table",
        TABLE,
        "--from",
        "2013-01-01",
        "--to",
        "2013-01-03",
    )
    assert replay.exit_code == 0, replay.output
    assert table_rows(project) == want


def _link_tree(source: Path, target: Path) -> None:
    """Copy a project: store objects are never changed in place, so links do;
    the DuckDB file is copied."""
    shutil.copytree(source, target, symlinks=True, copy_function=os.link)
    for db in target.glob("*.duckdb"):
        db.unlink()
        shutil.copy2(source / db.name, db)


def _expire_lease(project: Project) -> None:
    """A killed compaction keeps its lease until it expires; let it expire now."""
    store = project.store()
    lease = store.stat(layout.lease(f"{TABLE}/compact"))
    if lease is not None:
        store.delete(lease.name)
