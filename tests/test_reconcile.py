"""Row-count reconciliation on the embedded default: shards' metadata vs the job."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from dropload import Loader, Stager, layout
from dropload.reconcile import MAX_NAMED_SHARDS, Mismatch, ShardCount, count_rows
from dropload.shard import new_shard_name
from dropload.store import ROWS_METADATA
from dropload.warehouse import JobResult, LoadRequest, Warehouse
from embedded import (
    TABLE,
    Project,
    archived,
    ledger,
    make_project,
    records,
    staged,
    table_ids,
)


class MiscountingWarehouse(Warehouse):
    """The real DuckDB warehouse, reporting `missing` fewer rows than it loaded."""

    def __init__(self, inner: Warehouse) -> None:
        self.inner = inner
        self.missing = 0

    def load(self, request: LoadRequest, *, timeout: float) -> JobResult:
        """The real load; its output_rows less `missing`."""
        result = self.inner.load(request, timeout=timeout)
        if result.output_rows is None or not self.missing:
            return result
        return dataclasses.replace(
            result, output_rows=result.output_rows - self.missing
        )

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


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project whose stager writes a shard every 5 records."""
    return make_project(tmp_path, stager={"max_records": 5})


@pytest.fixture
def warehouse(project: Project) -> MiscountingWarehouse:
    """The project's DuckDB warehouse, counting right until told otherwise."""
    return MiscountingWarehouse(project.warehouse())


@pytest.fixture
def loader(project: Project, warehouse: MiscountingWarehouse) -> Iterator[Loader]:
    """A loader over the project's store and the wrapped warehouse."""
    opened = Loader(project.config, warehouse=warehouse)
    yield opened
    opened.close()


def _stage(project: Project, first: int, stop: int) -> None:
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(first, stop))


def _stage_lying_shard(project: Project, ids: range, claimed_rows: int) -> str:
    """A shard holding `ids` whose row-count metadata says `claimed_rows`."""
    name = new_shard_name("ndjson")
    body = b"".join(b'{"id": %d}\n' % i for i in ids)
    metadata = {ROWS_METADATA: str(claimed_rows)}
    project.store().write(layout.staging(TABLE) + name, body, metadata=metadata)
    return name


def _tick(loader: Loader) -> Any:
    (report,) = loader.run_once([TABLE])
    return report


def test_a_shard_whose_metadata_disagrees_holds_the_batch(
    project: Project, loader: Loader
) -> None:
    """Metadata saying 7 rows over a 5-row shard: batch failed, not archived, named."""
    _stage(project, 0, 10)
    liar = _stage_lying_shard(project, range(10, 15), claimed_rows=7)

    report = _tick(loader)

    assert report.status == "failed"
    assert liar in report.error
    assert "(metadata 7, content 5)" in report.error
    assert "loaded 15 rows" in report.error
    assert archived(project.store()) == []
    assert staged(project.store()) == []
    batch_folder = project.store().list(layout.batches(TABLE))
    assert liar in [i.basename for i in batch_folder]
    assert len(batch_folder) == 3


def test_a_held_batch_is_judged_again_without_a_second_job(
    project: Project, loader: Loader
) -> None:
    """The next tick re-judges the held batch by its job id: no rows twice."""
    _stage_lying_shard(project, range(0, 5), claimed_rows=4)
    first = _tick(loader)

    second = _tick(loader)

    assert second.status == "failed"
    assert second.jobs == first.jobs
    assert len(ledger(project.warehouse())) == 1
    assert table_ids(project.warehouse()) == list(range(5))
    assert archived(project.store()) == []


def test_reconcile_warn_archives_a_held_batch(project: Project, loader: Loader) -> None:
    """With loader.reconcile = "warn", the held batch is archived on the next tick."""
    liar = _stage_lying_shard(project, range(0, 5), claimed_rows=4)
    _tick(loader)
    text = project.config_path.read_text()
    project.config_path.write_text(text + '\n[loader]\nreconcile = "warn"\n')

    warn = Loader(project.config, warehouse=project.warehouse())
    try:
        report = _tick(warn)
    finally:
        warn.close()

    assert report.status == "loaded"
    assert archived(project.store()) == [liar]
    assert len(ledger(project.warehouse())) == 1


def test_a_warehouse_that_miscounts_is_named_as_such(
    project: Project, loader: Loader, warehouse: MiscountingWarehouse
) -> None:
    """Shards that all agree with their metadata: the message says so."""
    _stage(project, 0, 10)
    warehouse.missing = 1

    report = _tick(loader)

    assert report.status == "failed"
    assert "loaded 9 rows" in report.error
    assert "adds up to 10" in report.error
    assert "every shard's metadata matches its content" in report.error
    assert archived(project.store()) == []


def test_matching_counts_archive_as_before(project: Project, loader: Loader) -> None:
    """Rows loaded equal to the shards' metadata: the batch is archived."""
    _stage(project, 0, 12)

    report = _tick(loader)

    assert (report.status, report.rows) == ("loaded", 12)
    assert len(archived(project.store())) == 3


def test_count_rows_reads_ndjson_and_avro() -> None:
    """count_rows counts non-blank NDJSON lines and Avro records."""
    schema = {"type": "record", "name": "r", "fields": [{"name": "id", "type": "long"}]}
    buffer = io.BytesIO()
    fastavro.writer(
        buffer, fastavro.parse_schema(schema), [{"id": i} for i in range(7)]
    )

    assert count_rows("ndjson", b'{"id":1}\n\n{"id":2}\n') == 2
    assert count_rows("avro", buffer.getvalue()) == 7
    with pytest.raises(ValueError, match="not an Avro container"):
        count_rows("avro", b"{}")


def test_a_long_list_of_shards_is_cut_short() -> None:
    """A mismatch over many shards names MAX_NAMED_SHARDS and counts the rest."""
    shards = tuple(ShardCount(f"s{i}", 2, 1) for i in range(MAX_NAMED_SHARDS + 3))
    mismatch = Mismatch(TABLE, "b1", "job1", 50, 25, 0, shards)

    assert "s0 (metadata 2, content 1)" in mismatch.message
    assert f"s{MAX_NAMED_SHARDS}" not in mismatch.message
    assert "and 3 more" in mismatch.message
