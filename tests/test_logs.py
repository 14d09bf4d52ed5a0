"""Logs as JSON lines carry the table, batch and job id as fields of their own."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dropload import Stager
from dropload.cli import main
from embedded import TABLE, make_project, records


def test_json_logs_name_table_batch_and_job(tmp_path: Path) -> None:
    """`--log-format json`: the line of a load holds table, batch_id and job_id."""
    project = make_project(tmp_path)
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(0, 3))

    result = CliRunner().invoke(
        main,
        ["--config", str(project.config_path), "--log-format", "json", "run-once"],
    )

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines() if line]
    (loaded,) = [line for line in lines if "loaded 3 rows" in line["message"]]
    assert loaded["table"] == TABLE
    assert loaded["job_id"] == f"dropload-{TABLE}-{loaded['batch_id']}-1"
    assert {line["table"] for line in lines if "table" in line} == {TABLE}
