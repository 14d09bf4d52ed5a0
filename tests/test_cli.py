"""The `loader` command on the embedded default: exit codes, reports, staging."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dropload import Stager
from dropload.cli import main
from dropload.config import CONFIG_ENV
from embedded import (
    DESTINATION,
    TABLE,
    Project,
    make_project,
    manifests,
    records,
    shard_ids,
    staged,
    table_ids,
    toml_section,
)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project whose stager writes a shard every 5 records."""
    return make_project(tmp_path, stager={"max_records": 5})


def _loader(project: Project, *args: str, stdin: str | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(
        main, ["--config", str(project.config_path), *args], input=stdin
    )


def _stage(project: Project, first: int, stop: int) -> None:
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(first, stop))


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_run_once_loads_and_exits_0(project: Project) -> None:
    """run-once with staged shards loads them and exits 0 with a text report."""
    _stage(project, 0, 10)

    result = _loader(project, "run-once")

    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["table", "status", "jobs"]
    assert row.split()[:6] == [TABLE, "loaded", "1", "1", "2", "10"]
    assert table_ids(project.warehouse()) == list(range(10))


def test_run_once_json_report_parses(project: Project) -> None:
    """--format json prints one JSON list with each table's figures and job ids."""
    _stage(project, 0, 10)

    result = _loader(project, "run-once", "--format", "json")

    assert result.exit_code == 0
    (report,) = json.loads(result.stdout)
    assert (report["table"], report["status"], report["rows"]) == (TABLE, "loaded", 10)
    assert report["jobs"] == 1
    assert report["job_ids"] == [manifests(project.store())[0].job_id]


def test_run_once_with_nothing_staged_exits_0(project: Project) -> None:
    """Nothing to do is not a failure."""
    result = _loader(project, "run-once", "--format", "json")

    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["status"] == "idle"


def test_run_once_exits_1_when_a_table_failed(project: Project) -> None:
    """A failed job makes run-once exit 1, naming the table on one stderr line."""
    project.warehouse().query("CREATE SCHEMA ds")
    project.warehouse().query("CREATE TABLE ds.events (id DATE)")
    _stage(project, 0, 3)

    result = _loader(project, "--log-level", "ERROR", "run-once")

    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" not in line]
    assert len(errors) == 1
    assert errors[0].startswith(f"table {TABLE}: job dropload-{TABLE}-")


def test_run_once_of_an_unknown_table_exits_2(project: Project) -> None:
    """--table with an unconfigured table exits 2 with one line naming it."""
    result = _loader(project, "run-once", "--table", "orders")

    assert result.exit_code == 2
    line = _one_line(result.stderr)
    assert "tables.orders" in line
    assert "known: events" in line


def test_a_bad_config_key_exits_2(tmp_path: Path) -> None:
    """A misspelt config key exits 2 with one line naming the key."""
    project = make_project(tmp_path)
    text = project.config_path.read_text()
    project.config_path.write_text(text + toml_section("loader", {"intervall": 1}))

    result = _loader(project, "run-once")

    assert result.exit_code == 2
    assert "loader.intervall" in _one_line(result.stderr)


def test_a_missing_config_exits_2(tmp_path: Path) -> None:
    """A config path that does not exist exits 2 with one line naming it."""
    result = CliRunner().invoke(
        main, ["--config", str(tmp_path / "absent.toml"), "status"]
    )

    assert result.exit_code == 2
    assert "absent.toml" in _one_line(result.stderr)


def test_no_config_at_all_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --config or DROPLOAD_CONFIG the command says how to give one."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)

    result = CliRunner().invoke(main, ["run-once"])

    assert result.exit_code == 2
    assert CONFIG_ENV in _one_line(result.stderr)


def test_the_config_env_variable_is_read(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DROPLOAD_CONFIG stands in for --config."""
    monkeypatch.setenv(CONFIG_ENV, str(project.config_path))
    _stage(project, 0, 3)

    result = CliRunner().invoke(main, ["run-once"])

    assert result.exit_code == 0
    assert table_ids(project.warehouse()) == [0, 1, 2]


def _unreachable_store(tmp_path: Path) -> Project:
    project = make_project(tmp_path)
    (tmp_path / "blocker").write_text("a regular file, not a folder")
    text = project.config_path.read_text()
    project.config_path.write_text(text.replace('"store"', '"blocker/store"'))
    return project


def test_an_unreachable_store_exits_1(tmp_path: Path) -> None:
    """run-once with a store folder that cannot exist exits 1 with one line."""
    project = _unreachable_store(tmp_path)

    result = _loader(project, "run-once")

    assert result.exit_code == 1
    assert "blocker/store" in _one_line(result.stderr)


def test_status_of_an_unreachable_store_exits_1(tmp_path: Path) -> None:
    """status with a store folder that cannot exist exits 1 with one line."""
    project = _unreachable_store(tmp_path)

    result = _loader(project, "status")

    assert result.exit_code == 1
    assert "cannot create the folder" in _one_line(result.stderr)


def test_an_unusable_warehouse_exits_1(tmp_path: Path) -> None:
    """run-once with a DuckDB file that cannot exist exits 1 with one line."""
    project = make_project(tmp_path)
    (tmp_path / "blocker").write_text("a regular file, not a folder")
    text = project.config_path.read_text()
    project.config_path.write_text(text.replace('"warehouse.duckdb"', '"blocker/w"'))
    _stage(project, 0, 3)

    result = _loader(project, "run-once")

    assert result.exit_code == 1
    assert "blocker/w" in _one_line(result.stderr)
    assert len(staged(project.store())) == 1


def test_status_text(project: Project) -> None:
    """status lists staged shards, bytes and the last load per table."""
    _stage(project, 0, 10)
    _loader(project, "run-once")
    _stage(project, 10, 13)

    result = _loader(project, "status")

    assert result.exit_code == 0
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["table", "staged_shards", "staged_bytes"]
    assert header == header.rstrip()
    assert row == row.rstrip()
    cells = row.split()
    assert (cells[0], cells[1]) == (TABLE, "1")
    assert manifests(project.store())[0].job_id in cells


def test_status_json(project: Project) -> None:
    """status --format json gives each table's figures as numbers."""
    _stage(project, 0, 10)
    _loader(project, "run-once")
    _stage(project, 10, 13)
    staged_bytes = sum(i.size for i in project.store().list(f"{TABLE}/staging/"))

    result = _loader(project, "status", "--format", "json")

    assert result.exit_code == 0
    (row,) = json.loads(result.stdout)
    assert row["table"] == TABLE
    assert (row["staged_shards"], row["staged_bytes"]) == (1, staged_bytes)
    assert row["oldest_staged_seconds"] >= 0
    assert (row["archived_batches"], row["open_batches"]) == (1, 0)
    assert row["last_job_id"] == manifests(project.store())[0].job_id
    assert row["last_rows"] == 10


def test_status_of_an_empty_table(project: Project) -> None:
    """A table with nothing staged or loaded reports zeros and nulls."""
    result = _loader(project, "status", "--format", "json")

    (row,) = json.loads(result.stdout)
    assert (row["staged_shards"], row["oldest_staged_seconds"]) == (0, None)
    assert row["last_job_id"] is None


def test_stage_from_a_file(project: Project, tmp_path: Path) -> None:
    """stage reads NDJSON records from a file and stages them all."""
    source = tmp_path / "in.ndjson"
    source.write_text("".join(json.dumps(r) + "\n" for r in records(0, 7)))

    result = _loader(project, "stage", "--table", TABLE, str(source))

    assert result.exit_code == 0
    assert f"table {TABLE}: staged 7 records" in result.stderr
    assert shard_ids(project.store(), f"{TABLE}/staging/") == list(range(7))


def test_stage_from_stdin(project: Project) -> None:
    """stage with `-` (or nothing) reads stdin; blank lines are skipped."""
    lines = "".join(json.dumps(r) + "\n\n" for r in records(0, 3))

    result = _loader(project, "stage", "--table", TABLE, "-", stdin=lines)

    assert result.exit_code == 0
    assert shard_ids(project.store(), f"{TABLE}/staging/") == [0, 1, 2]


def test_stage_then_run_once(project: Project) -> None:
    """Records staged from the shell reach the table with run-once."""
    stdin = '{"id": 1, "name": "a", "ts": "2026-01-26T12:00:00Z"}\n'
    _loader(project, "stage", "--table", TABLE, stdin=stdin)

    result = _loader(project, "run-once")

    assert result.exit_code == 0
    rows = project.warehouse().query(f"SELECT id, name, ts FROM {DESTINATION}")
    assert rows == [(1, "a", datetime(2026, 1, 26, 12, tzinfo=UTC))]


def test_stage_stops_at_a_line_that_is_not_json(project: Project) -> None:
    """A line that is not JSON exits 2 naming it; the lines before are staged."""
    stdin = '{"id": 1}\n{"id": 2}\nnot json\n{"id": 4}\n'

    result = _loader(project, "stage", "--table", TABLE, stdin=stdin)

    assert result.exit_code == 2
    assert "line 3: not JSON" in result.stderr
    assert "the 2 lines before it were staged" in result.stderr
    assert "Usage:" not in result.stderr
    assert "Traceback" not in result.stderr
    assert shard_ids(project.store(), f"{TABLE}/staging/") == [1, 2]


def test_stage_stops_at_a_record_that_does_not_fit(project: Project) -> None:
    """A record that does not fit exits 2 naming its line, table and field."""
    stdin = '{"id": 1}\n{"id": 2, "colour": "red"}\n'

    result = _loader(project, "stage", "--table", TABLE, stdin=stdin)

    assert result.exit_code == 2
    assert f"line 2: table {TABLE}: field colour:" in result.stderr
    assert shard_ids(project.store(), f"{TABLE}/staging/") == [1]


def test_stage_refuses_a_line_that_is_not_an_object(project: Project) -> None:
    """A JSON value that is not an object exits 2 naming the line."""
    result = _loader(project, "stage", "--table", TABLE, stdin="[1, 2]\n")

    assert result.exit_code == 2
    assert "line 1: expected a JSON object" in result.stderr


def test_stage_into_an_unknown_table_exits_2(project: Project) -> None:
    """stage --table with an unconfigured table exits 2 with one line."""
    result = _loader(project, "stage", "--table", "orders", stdin='{"id": 1}\n')

    assert result.exit_code == 2
    assert "tables.orders" in _one_line(result.stderr)


def test_version() -> None:
    """--version prints the package version."""
    result = CliRunner().invoke(main, ["--version"])

    assert result.exit_code == 0
    assert "0.1.0" in result.stdout


@pytest.mark.parametrize(
    ("schema", "problem"),
    [(None, "cannot read"), ('[{"name": "id", "type": "INTEGR"}]', "INTEGR")],
)
def test_a_bad_schema_file_exits_2(
    project: Project, schema: str | None, problem: str
) -> None:
    """A missing or invalid schema file exits 2 with one line naming it."""
    path = project.folder / "schema.json"
    if schema is None:
        path.unlink()
    else:
        path.write_text(schema)

    result = _loader(project, "run-once")

    assert result.exit_code == 2
    line = _one_line(result.stderr)
    assert "schema.json" in line
    assert problem in line


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"clustering": ["nope"]}, "tables.events.clustering"),
        ({"time_partitioning": {"field": "name"}}, "tables.events.time_partitioning"),
    ],
)
def test_run_once_checks_columns_the_table_options_name(
    tmp_path: Path, options: dict[str, object], key: str
) -> None:
    """A clustering or partitioning column the schema lacks exits 2 naming the key."""
    project = make_project(
        tmp_path, tables={TABLE: {"destination": DESTINATION, **options}}
    )
    result = CliRunner().invoke(
        main, ["--config", str(project.config_path), "run-once"]
    )
    assert result.exit_code == 2
    assert key in result.output
