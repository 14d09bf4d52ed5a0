"""Schema changes between shards: additions load, incompatible changes are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dropload import Loader, RecordError, Stager, layout
from dropload.quarantine import list_quarantined
from dropload.shard import new_shard_name
from embedded import SCHEMA, TABLE, Project, make_project, records, staged, table_ids

WITH_NOTE = [*SCHEMA, {"name": "note", "type": "STRING", "mode": "NULLABLE"}]


def _project(folder: Path, **table: object) -> Project:
    return make_project(folder, tables={TABLE: {"destination": "ds.events", **table}})


def _load(project: Project) -> list[object]:
    loader = Loader(project.config, sleep=lambda seconds: None)
    try:
        return list(loader.run_once())
    finally:
        loader.close()


def _evolve(project: Project, schema: list[dict[str, str]]) -> None:
    (project.folder / "schema.json").write_text(json.dumps(schema))


def test_new_nullable_field_loads_when_field_addition_is_allowed(
    tmp_path: Path,
) -> None:
    """A new NULLABLE field loads with ALLOW_FIELD_ADDITION; old rows read NULL."""
    project = _project(tmp_path, schema_update_options=["ALLOW_FIELD_ADDITION"])
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(0, 3))
    _load(project)
    _evolve(project, WITH_NOTE)
    with Stager(project.config, TABLE) as stager:
        stager.extend([{"id": 3, "note": "added"}])

    [report] = _load(project)

    assert (report.status, report.rows) == ("loaded", 1)  # type: ignore[attr-defined]
    rows = project.warehouse().query("SELECT id, note FROM ds.events ORDER BY id")
    assert rows == [(0, None), (1, None), (2, None), (3, "added")]


def test_new_field_without_field_addition_fails_naming_it(tmp_path: Path) -> None:
    """Without ALLOW_FIELD_ADDITION a new field fails the tick, named; no quarantine."""
    project = _project(tmp_path)
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(0, 2))
    _load(project)
    _evolve(project, WITH_NOTE)
    with Stager(project.config, TABLE) as stager:
        stager.extend([{"id": 2, "note": "new"}])

    [report] = _load(project)

    assert report.failed  # type: ignore[attr-defined]
    assert "field: note" in report.error  # type: ignore[attr-defined]
    assert len(staged(project.store())) == 1
    assert list_quarantined(project.store(), TABLE) == []


def test_stager_refuses_a_type_change_naming_the_field(tmp_path: Path) -> None:
    """append() refuses a record whose type changed, naming the table and field."""
    project = _project(tmp_path)
    with (
        Stager(project.config, TABLE) as stager,
        pytest.raises(RecordError, match="table events: field id: "),
    ):
        stager.append({"id": "seven"})
    assert staged(project.store()) == []


def test_shard_with_a_changed_type_is_quarantined_naming_the_field(
    tmp_path: Path,
) -> None:
    """A shard whose field changed type is quarantined naming it; the rest loads."""
    project = _project(tmp_path)
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(0, 4))
    other = new_shard_name("ndjson")
    data = b'{"id": 9, "ts": {"seconds": 5}}\n'
    project.store().write(layout.staging(TABLE) + other, data)

    [report] = _load(project)

    assert report.quarantined == 1  # type: ignore[attr-defined]
    assert table_ids(project.warehouse()) == [0, 1, 2, 3]
    [shard] = list_quarantined(project.store(), TABLE)
    assert shard.shard == other
    assert "checked locally: row 1: field ts: " in shard.error
