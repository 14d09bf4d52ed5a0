"""The archive: pruning old days, partitions of shards without metadata, Avro."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner, Result

from dropload import layout
from dropload.cli import main
from dropload.partition import PARTITIONS_METADATA
from embedded import Project, manifests
from flights import (
    DAYS,
    DESTINATION,
    TABLE,
    expected,
    flights_project,
    in_partition,
    load_days,
    rows_of,
    stage_rows,
    table_rows,
    tick,
)


def _loader(project: Project, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(project.config_path), *args])


def _age_archive(project: Project, day: str) -> None:
    """Move today's archive folder to an old day, as if loaded back then."""
    root = project.store_root / TABLE / "archive"
    (today,) = [p for p in root.iterdir()]
    today.rename(root / day)


def test_prune_deletes_old_days_only_and_never_staging_or_quarantine(
    tmp_path: Path,
) -> None:
    """archive prune removes days past the cutoff; today, staging, quarantine stay."""
    project = flights_project(tmp_path / "p")
    load_days(project, DAYS[:1])
    _age_archive(project, "2020-01-01")
    load_days(project, DAYS[1:2])
    stage_rows(project, rows_of(DAYS[2]))
    store = project.store()
    store.write(layout.quarantine(TABLE) + "x.ndjson", b"{}\n")
    kept = [
        i.name
        for p in (layout.staging(TABLE), layout.quarantine(TABLE))
        for i in store.list(p)
    ]

    before = store.list(layout.archive(TABLE))
    dry = _loader(project, "archive", "prune", "--older-than", "30", "--dry-run")
    after_dry = store.list(layout.archive(TABLE))
    result = _loader(
        project, "archive", "prune", "--older-than", "30", "--format", "json"
    )

    assert dry.exit_code == 0, dry.output
    assert after_dry == before
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["day_list"] == ["2020-01-01"]
    assert [m.day for m in manifests(store, TABLE)] == [
        layout.day_of(datetime.now(UTC))
    ]
    assert kept == [
        i.name
        for p in (layout.staging(TABLE), layout.quarantine(TABLE))
        for i in store.list(p)
    ]


def test_manifest_reads_partitions_of_shards_without_metadata(tmp_path: Path) -> None:
    """A shard without partition metadata (spooled) is read for its partitions."""
    project = flights_project(tmp_path / "p")
    stage_rows(project, rows_of(DAYS[0]) + rows_of(DAYS[1]))
    for path in (project.store_root / TABLE / "staging").iterdir():
        os.removexattr(path, "user.dropload." + PARTITIONS_METADATA)

    tick(project)

    (manifest,) = manifests(project.store(), TABLE)
    assert manifest.partitions == ("20130101", "20130102")
    assert all(s.partitions is None for s in manifest.shards)


def test_avro_table_replace_and_compaction_keep_every_row_once(tmp_path: Path) -> None:
    """Avro: a two-day batch split for a replace, then compacted and replayed."""
    project = flights_project(tmp_path / "p", format="avro")
    stage_rows(project, rows_of(DAYS[0]) + rows_of(DAYS[1]))
    tick(project)
    project.warehouse().query(
        f"DELETE FROM {DESTINATION} WHERE {in_partition(DAYS[1])}"
    )

    replace = _loader(
        project, "replay", "--table", TABLE, "--mode", "replace",
        "--from", "2013-01-02", "--to", "2013-01-02",
    )  # fmt: skip
    compact = _loader(project, "compact", "--older-than", "0")
    project.warehouse().query(f"DROP TABLE {DESTINATION}")
    append = _loader(
        project,
        "replay",
        "--table",
        TABLE,
        "--from",
        "2013-01-01",
        "--to",
        "2013-01-02",
    )

    assert replace.exit_code == compact.exit_code == append.exit_code == 0
    assert table_rows(project) == expected(DAYS[:2])
    assert [m.batch_id[:8] for m in manifests(project.store(), TABLE)] == ["compact-"]
