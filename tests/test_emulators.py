"""The emulators behave like Cloud Storage and BigQuery where dropload relies on it."""

from __future__ import annotations

import datetime as dt
import io
import json

import fastavro
import pytest
from google.api_core import exceptions
from google.cloud import bigquery, storage

pytestmark = pytest.mark.emulator

SCHEMA = [
    bigquery.SchemaField("id", "INTEGER", mode="REQUIRED"),
    bigquery.SchemaField("name", "STRING"),
]


def _ndjson(*ids: int) -> bytes:
    return b"".join(
        json.dumps({"id": i, "name": f"n{i}"}).encode() + b"\n" for i in ids
    )


def _count(client: bigquery.Client, table: str) -> int:
    return sum(1 for _row in client.list_rows(table))


def _upload(
    client: storage.Client, bucket: str, name: str, data: bytes
) -> storage.Blob:
    blob = client.bucket(bucket).blob(name)
    blob.upload_from_string(data, if_generation_match=0)
    return blob


def test_if_generation_match_zero_refuses_an_existing_object(
    gcs_client: storage.Client, gcs_bucket: str
) -> None:
    """A second create-only upload answers 412 and leaves the first content."""
    _upload(gcs_client, gcs_bucket, "shard.ndjson", b"first\n")

    with pytest.raises(exceptions.PreconditionFailed):
        _upload(gcs_client, gcs_bucket, "shard.ndjson", b"second\n")

    blob = gcs_client.bucket(gcs_bucket).blob("shard.ndjson")
    assert blob.download_as_bytes() == b"first\n"


def test_resumable_upload_honours_if_generation_match(
    gcs_client: storage.Client, gcs_bucket: str
) -> None:
    """A resumable (chunked) create-only upload of an existing name answers 412."""
    data = b"x" * (512 * 1024)
    for attempt in range(2):
        blob = gcs_client.bucket(gcs_bucket).blob("big.bin", chunk_size=256 * 1024)
        if attempt == 0:
            blob.upload_from_string(data, if_generation_match=0)
            continue
        with pytest.raises(exceptions.PreconditionFailed):
            blob.upload_from_string(data, if_generation_match=0)


def test_stale_generation_preconditions_answer_412(
    gcs_client: storage.Client, gcs_bucket: str
) -> None:
    """Overwrite, metadata patch and not-match checks refuse stale generations."""
    blob = _upload(gcs_client, gcs_bucket, "a.ndjson", b"1\n")
    stale = blob.generation
    blob.upload_from_string(b"2\n", if_generation_match=stale)
    assert blob.generation != stale

    with pytest.raises(exceptions.PreconditionFailed):
        blob.upload_from_string(b"3\n", if_generation_match=stale)
    with pytest.raises(exceptions.PreconditionFailed):
        blob.upload_from_string(b"3\n", if_generation_not_match=blob.generation)
    blob.metadata = {"claimed": "yes"}
    with pytest.raises(exceptions.PreconditionFailed):
        blob.patch(if_metageneration_match=int(blob.metageneration) + 1)
    blob.patch(if_metageneration_match=blob.metageneration)


def test_copy_with_stale_source_generation_answers_412(
    gcs_client: storage.Client, gcs_bucket: str
) -> None:
    """A copy from a replaced source is refused and creates no destination."""
    bucket = gcs_client.bucket(gcs_bucket)
    source = _upload(gcs_client, gcs_bucket, "staging/a.ndjson", b"1\n")
    stale = source.generation
    source.upload_from_string(b"2\n")

    with pytest.raises(exceptions.PreconditionFailed):
        bucket.copy_blob(
            source, bucket, "archive/a.ndjson", if_source_generation_match=stale
        )

    assert bucket.get_blob("archive/a.ndjson") is None
    bucket.copy_blob(
        source,
        bucket,
        "archive/a.ndjson",
        if_generation_match=0,
        if_source_generation_match=bucket.get_blob("staging/a.ndjson").generation,
    )
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.copy_blob(source, bucket, "archive/a.ndjson", if_generation_match=0)


def test_delete_with_stale_generation_answers_412(
    gcs_client: storage.Client, gcs_bucket: str
) -> None:
    """A delete guarded by a replaced generation keeps the object, alone or batched."""
    blob = _upload(gcs_client, gcs_bucket, "a.ndjson", b"1\n")
    stale = blob.generation
    blob.upload_from_string(b"2\n")

    with pytest.raises(exceptions.PreconditionFailed):
        blob.delete(if_generation_match=stale)
    with pytest.raises(exceptions.PreconditionFailed), gcs_client.batch():
        blob.delete(if_generation_match=stale)

    assert blob.exists()
    blob.delete(if_generation_match=blob.generation)
    assert not blob.exists()


def test_wildcard_ndjson_load_and_reused_job_id(
    gcs_client: storage.Client,
    gcs_bucket: str,
    bq_client: bigquery.Client,
    bq_dataset: str,
) -> None:
    """A wildcard load reads only the prefix; its job_id again answers 409."""
    for k in range(3):
        _upload(
            gcs_client, gcs_bucket, f"some/prefix/part-{k}.ndjson", _ndjson(k, 10 + k)
        )
    _upload(gcs_client, gcs_bucket, "some/other/part-0.ndjson", _ndjson(99))
    table = f"{bq_client.project}.{bq_dataset}.events"
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON, schema=SCHEMA
    )
    uri = f"gs://{gcs_bucket}/some/prefix/*"
    job_id = f"load-events-{bq_dataset}"

    job = bq_client.load_table_from_uri(uri, table, job_id=job_id, job_config=config)
    job.result(timeout=60)

    assert job.output_rows == 6
    assert _count(bq_client, table) == 6
    with pytest.raises(exceptions.Conflict):
        bq_client.load_table_from_uri(uri, table, job_id=job_id, job_config=config)
    assert bq_client.get_job(job_id).state == "DONE"
    assert _count(bq_client, table) == 6


def test_avro_shard_loads_with_logical_types(
    gcs_client: storage.Client,
    gcs_bucket: str,
    bq_client: bigquery.Client,
    bq_dataset: str,
) -> None:
    """An Avro shard with date and timestamp logical types loads as DATE/TIMESTAMP."""
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Event",
            "fields": [
                {"name": "id", "type": "long"},
                {"name": "day", "type": {"type": "int", "logicalType": "date"}},
                {
                    "name": "at",
                    "type": {"type": "long", "logicalType": "timestamp-micros"},
                },
            ],
        }
    )
    at = dt.datetime(2026, 1, 26, 12, 30, tzinfo=dt.UTC)
    records = [{"id": i, "day": at.date(), "at": at} for i in range(4)]
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, records)
    _upload(gcs_client, gcs_bucket, "avro/part-0.avro", buffer.getvalue())
    table = f"{bq_client.project}.{bq_dataset}.events_avro"
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.AVRO, use_avro_logical_types=True
    )

    job = bq_client.load_table_from_uri(
        f"gs://{gcs_bucket}/avro/*.avro", table, job_config=config
    )
    job.result(timeout=60)

    types = {
        field.name: field.field_type for field in bq_client.get_table(table).schema
    }
    assert types == {"id": "INTEGER", "day": "DATE", "at": "TIMESTAMP"}
    rows = list(bq_client.list_rows(table))
    assert len(rows) == 4
    assert {(row["day"], row["at"]) for row in rows} == {(at.date(), at)}
