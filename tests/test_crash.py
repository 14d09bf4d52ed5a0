"""kill -9 of `loader run-once` at every named step and at random moments.

Records with unique ids are staged between runs; after the last kill the loader
runs until the stage is empty, then every id must be in its table exactly once,
nothing left in intents, batches or leases, and the archive manifests must list
every archived shard once. Seeds are fixed, so a failure replays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.cloud import bigquery

from cloud_fixtures import make_cloud_project
from cloud_fixtures import table_ids as cloud_table_ids
from dropload.stager import Stager
from embedded import make_project
from embedded import table_ids as embedded_table_ids
from faults.crash import Backend, CrashHarness

EMBEDDED_KILLS = 110
CLOUD_KILLS = 32
TABLES = ("events", "clicks")


def _stage_with(config_path: Path) -> Any:
    from dropload.config import load_config

    config = load_config(config_path)

    def stage(table: str, rows: list[dict[str, Any]]) -> None:
        with Stager(config, table) as stager:
            stager.extend(rows)

    return stage


def _report(harness: CrashHarness) -> str:
    tally = harness.tally
    return (
        f"{tally.kills} kills in {tally.runs} runs, {tally.staged_ids} ids,"
        f" by point {dict(tally.by_point)}, exits {dict(tally.exits)}"
    )


@pytest.mark.slow
def test_embedded_loader_killed_110_times_loads_every_record_once(
    tmp_path: Path,
) -> None:
    """110 SIGKILLs of run-once, a fifth of the jobs failing: every id once."""
    project = make_project(
        tmp_path,
        stager={"max_records": 5},
        tables={t: {"destination": f"ds.{t}"} for t in TABLES},
    )
    warehouse = project.warehouse()
    backend = Backend(
        config_path=project.config_path,
        store=project.store(),
        tables=TABLES,
        stage=_stage_with(project.config_path),
        table_ids=lambda t: embedded_table_ids(warehouse, f"ds.{t}"),
    )
    harness = CrashHarness(backend, seed=20261204, job_failures=0.2)

    harness.run(EMBEDDED_KILLS)

    print(_report(harness))
    assert harness.tally.kills >= EMBEDDED_KILLS
    assert harness.leftovers() == []
    assert harness.problems() == []


@pytest.mark.slow
@pytest.mark.emulator
def test_cloud_loader_killed_32_times_loads_every_record_once(
    tmp_path: Path,
    gcs_emulator: Any,
    bq_emulator: Any,
    gcs_bucket: str,
    bq_dataset: str,
    bq_client: bigquery.Client,
) -> None:
    """32 SIGKILLs against the emulators, a fifth of the jobs failing: ids once."""
    project = make_cloud_project(
        tmp_path / "project",
        bucket=gcs_bucket,
        dataset=bq_dataset,
        gcs_endpoint=gcs_emulator.endpoint,
        bq_endpoint=bq_emulator.endpoint,
        tables={t: {} for t in TABLES},
        stager={"max_records": 5},
    )
    backend = Backend(
        config_path=project.config_path,
        store=project.store(),
        tables=TABLES,
        stage=_stage_with(project.config_path),
        table_ids=lambda t: cloud_table_ids(bq_client, project, t),
    )
    harness = CrashHarness(backend, seed=4242, job_failures=0.2)

    harness.run(CLOUD_KILLS)

    print(_report(harness))
    assert harness.tally.kills >= CLOUD_KILLS
    assert harness.leftovers() == []
    assert harness.problems() == []
