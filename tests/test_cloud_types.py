"""Every column type and the table's load options, loaded on the emulators."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.cloud import bigquery, storage

from cloud_fixtures import (
    EVENTS_SCHEMA,
    CloudProject,
    load_jobs,
    make_cloud_project,
    stage,
    staged,
    table_ids,
)
from dropload import layout
from dropload.shard import new_shard_name
from dropload.stager import Stager
from dropload.warehouse.base import LoadRequest

pytestmark = pytest.mark.emulator

ALL_TYPES: list[dict[str, Any]] = [
    {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "s", "type": "STRING"},
    {"name": "b", "type": "BYTES"},
    {"name": "big", "type": "INTEGER"},
    {"name": "f", "type": "FLOAT"},
    {"name": "n", "type": "NUMERIC"},
    {"name": "bn", "type": "BIGNUMERIC"},
    {"name": "ok", "type": "BOOLEAN"},
    {"name": "ts", "type": "TIMESTAMP"},
    {"name": "d", "type": "DATE"},
    {"name": "t", "type": "TIME"},
    {"name": "dt", "type": "DATETIME"},
    {"name": "j", "type": "JSON"},
    {"name": "tags", "type": "STRING", "mode": "REPEATED"},
    {
        "name": "rec",
        "type": "RECORD",
        "fields": [
            {"name": "x", "type": "INTEGER"},
            {"name": "ys", "type": "FLOAT", "mode": "REPEATED"},
            {
                "name": "inner",
                "type": "RECORD",
                "fields": [{"name": "z", "type": "STRING"}],
            },
        ],
    },
    {
        "name": "recs",
        "type": "RECORD",
        "mode": "REPEATED",
        "fields": [{"name": "k", "type": "STRING"}, {"name": "v", "type": "INTEGER"}],
    },
]
"""One column of every BigQuery type, nested and repeated ones included."""

FULL: dict[str, Any] = {
    "id": 1,
    "s": 'héllo ☃ "quoted"\n',
    "b": b"\x00\xffbin",
    "big": 2**62 + 1,
    "f": -1.5e-7,
    "n": Decimal("-12345678901234567890.123456789"),
    "bn": Decimal("123456789012345678.5"),
    "ok": True,
    "ts": datetime(2026, 1, 26, 8, 30, 0, 123456, tzinfo=UTC),
    "d": date(2026, 1, 26),
    "t": time(8, 30, 1, 500),
    "dt": datetime(2026, 1, 26, 8, 30, 2),
    "j": {"a": [1, 2, {"b": None}], "c": "d"},
    "tags": ["x", "y"],
    "rec": {"x": 3, "ys": [0.5, 2.0], "inner": {"z": "deep"}},
    "recs": [{"k": "a", "v": 1}, {"k": "b", "v": None}],
}
"""A record with a value in every column; `big` is past 2^53 on purpose."""

EMPTY: dict[str, Any] = {
    **{field["name"]: None for field in ALL_TYPES},
    "id": 2,
    "tags": [],
    "recs": [],
}
"""A record with only the required column; repeated columns read back empty."""

AVRO_GAPS = ("b", "bn")
"""Columns the emulator cannot load from Avro: BYTES fails in its reader
(`from_base64(BLOB)`) and BIGNUMERIC's decimal(77, 38) exceeds DuckDB's 38 digits."""


@pytest.fixture
def build(
    tmp_path: Path, gcs_emulator, bq_emulator, gcs_bucket: str, bq_dataset: str
) -> Any:
    """Build a config on this test's bucket and dataset (see make_cloud_project)."""

    def make(**kwargs: Any) -> CloudProject:
        return make_cloud_project(
            tmp_path / "project",
            bucket=gcs_bucket,
            dataset=bq_dataset,
            gcs_endpoint=gcs_emulator.endpoint,
            bq_endpoint=bq_emulator.endpoint,
            **kwargs,
        )

    return make


def _load(project: CloudProject, *rows: dict[str, Any]) -> None:
    with Stager(project.config, "events") as stager:
        stager.extend(rows)
    loader = project.loader()
    [report] = loader.run_once()
    loader.close()
    assert report.status == "loaded", report.error


def _rows(client: bigquery.Client, project: CloudProject) -> list[dict[str, Any]]:
    rows = client.list_rows(project.destination("events"))
    return [dict(row.items()) for row in sorted(rows, key=lambda row: row["id"])]


def test_every_type_round_trips_through_ndjson(
    build: Any, bq_client: bigquery.Client
) -> None:
    """Each BigQuery type, staged as NDJSON, reads back from the table unchanged.

    BIGNUMERIC keeps 18 decimal places in the emulator, so the value has fewer.
    """
    project = build(schema=ALL_TYPES)

    _load(project, FULL, {"id": 2})

    assert _rows(bq_client, project) == [FULL, EMPTY]


def test_every_type_round_trips_through_avro(
    build: Any, bq_client: bigquery.Client
) -> None:
    """Each type the emulator reads from Avro loads with logical types, unchanged."""
    schema = [field for field in ALL_TYPES if field["name"] not in AVRO_GAPS]
    project = build(schema=schema, tables={"events": {"format": "avro"}})
    full = {k: v for k, v in FULL.items() if k not in AVRO_GAPS}
    empty = {k: v for k, v in EMPTY.items() if k not in AVRO_GAPS}

    _load(project, full, {"id": 2})

    assert _rows(bq_client, project) == [full, empty]
    table = bq_client.get_table(project.destination("events"))
    types = {f.name: f.field_type for f in table.schema}
    assert (types["ts"], types["d"], types["t"], types["dt"]) == (
        "TIMESTAMP",
        "DATE",
        "TIME",
        "DATETIME",
    )


def test_partitioning_and_clustering_apply_on_creation(
    build: Any, bq_client: bigquery.Client
) -> None:
    """A table the load creates is partitioned by day on its field and clustered."""
    project = build(
        tables={
            "events": {
                "time_partitioning": {"field": "day", "type": "DAY"},
                "clustering": ["name"],
            }
        }
    )
    stage(project, 0, 6)
    loader = project.loader()
    [report] = loader.run_once()
    loader.close()

    assert report.status == "loaded"
    table = bq_client.get_table(project.destination("events"))
    assert table.time_partitioning.type_ == "DAY"
    assert table.time_partitioning.field == "day"
    assert table.clustering_fields == ["name"]
    assert table_ids(bq_client, project) == list(range(6))


def test_allow_field_addition_adds_a_new_column(
    build: Any, bq_client: bigquery.Client
) -> None:
    """With ALLOW_FIELD_ADDITION a column added to the schema file joins the table."""
    project = build()
    stage(project, 0, 2)
    loader = project.loader()
    loader.run_once()
    loader.close()
    wider = [*EVENTS_SCHEMA, {"name": "extra", "type": "STRING", "mode": "NULLABLE"}]
    project = build(
        schema=wider,
        tables={"events": {"schema_update_options": ["ALLOW_FIELD_ADDITION"]}},
    )
    with Stager(project.config, "events") as stager:
        stager.append({"id": 2, "extra": "new"})
    loader = project.loader()
    [report] = loader.run_once()
    loader.close()

    assert report.status == "loaded", report.error
    table = bq_client.get_table(project.destination("events"))
    assert [f.name for f in table.schema][-1] == "extra"
    assert [row["extra"] for row in _rows(bq_client, project)] == [None, None, "new"]


def test_max_bad_records_skips_a_bad_row_and_loads_the_rest(
    build: Any,
    gcs_client: storage.Client,
    bq_client: bigquery.Client,
    bq_dataset: str,
) -> None:
    """With max_bad_records = 1 one unparsable row is skipped; the batch is archived.

    The emulator leaves the job's errors[] empty for the skipped row.
    """
    project = build(tables={"events": {"max_bad_records": 1}})
    stage(project, 0, 3)
    bad = project.key(layout.staging("events") + new_shard_name("ndjson"))
    lines = [json.dumps({"id": 3}), json.dumps({"id": "three"})]
    gcs_client.bucket(project.bucket).blob(bad).upload_from_string(
        "\n".join(lines) + "\n"
    )
    loader = project.loader()
    [report] = loader.run_once()
    loader.close()

    assert report.status == "loaded", report.error
    assert table_ids(bq_client, project) == [0, 1, 2, 3]
    assert staged(gcs_client, project) == []
    [job] = load_jobs(bq_client, bq_dataset)
    assert job.error_result is None


def test_partition_replace_targets_the_decorator_with_write_truncate(
    build: Any, gcs_client: storage.Client, bq_client: bigquery.Client
) -> None:
    """A load with a partition goes to `table$YYYYMMDD` with WRITE_TRUNCATE.

    The emulator does not replace partitions (it writes a table literally named
    with the `$`), so this checks the job dropload submits, not its effect.
    """
    project = build(tables={"events": {"time_partitioning": {"field": "day"}}})
    name = layout.staging("events") + new_shard_name("ndjson")
    gcs_client.bucket(project.bucket).blob(project.key(name)).upload_from_string(
        json.dumps({"id": 1, "day": "2026-01-26"}) + "\n"
    )
    table = project.config.table("events")
    loader = project.loader()
    request = LoadRequest(
        job_id="dropload-events-replay-1",
        table=table,
        fields=loader.fields("events"),
        source_uris=(f"gs://{project.bucket}/dl/{name}",),
        write_disposition="WRITE_TRUNCATE",
        partition="20260126",
    )
    loader.close()
    warehouse = project.warehouse()

    since = datetime.now(UTC) - timedelta(minutes=1)

    result = warehouse.load(request, timeout=60)
    listed = warehouse.list_load_jobs(table.destination, since)
    warehouse.close()

    assert result.succeeded
    assert [job.job_id for job in listed] == ["dropload-events-replay-1"]
    job = bq_client.get_job("dropload-events-replay-1")
    assert job.destination.table_id == "events$20260126"
    assert job.destination.dataset_id == project.dataset
    assert job.write_disposition == "WRITE_TRUNCATE"
    assert job.time_partitioning.field == "day"
