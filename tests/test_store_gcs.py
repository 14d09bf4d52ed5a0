"""GcsStore keeps the store contract against the Cloud Storage emulator."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest
from google.cloud import storage

from cloud_fixtures import closed_endpoint
from dropload.errors import (
    ObjectExists,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
)
from dropload.store.base import ROWS_METADATA
from dropload.store.gcs import GcsStore

pytestmark = pytest.mark.emulator

PREFIX = "dl"


@pytest.fixture
def store(gcs_emulator, gcs_bucket: str) -> Iterator[GcsStore]:
    """A GcsStore over `gs://<fresh bucket>/dl` on the emulator."""
    opened = GcsStore(f"gs://{gcs_bucket}/{PREFIX}", api_endpoint=gcs_emulator.endpoint)
    yield opened
    opened.close()


def _content(client: storage.Client, bucket: str, name: str) -> bytes:
    return client.bucket(bucket).blob(f"{PREFIX}/{name}").download_as_bytes()


def test_write_is_create_if_absent(store: GcsStore, gcs_client, gcs_bucket) -> None:
    """A second create of the same name raises ObjectExists and keeps the first."""
    first = store.write("t/staging/a.ndjson", b"first\n")

    with pytest.raises(ObjectExists) as caught:
        store.write("t/staging/a.ndjson", b"second\n")

    assert caught.value.object_name == "t/staging/a.ndjson"
    assert _content(gcs_client, gcs_bucket, "t/staging/a.ndjson") == b"first\n"
    assert store.stat("t/staging/a.ndjson") == first


def test_write_reports_object_info(store: GcsStore) -> None:
    """A write returns the object's relative name, size, generation and md5 (hex)."""
    info = store.write("t/x.bin", b"abc", metadata={ROWS_METADATA: "1"})

    assert info.name == "t/x.bin"
    assert info.basename == "x.bin"
    assert info.size == 3
    assert info.generation > 0
    assert info.md5_hash == hashlib.md5(b"abc", usedforsecurity=False).hexdigest()
    assert info.updated is not None


def test_rows_metadata_round_trip(store: GcsStore, gcs_client, gcs_bucket) -> None:
    """The row count written as object metadata comes back from stat and list."""
    store.write("t/staging/a.ndjson", b"{}\n{}\n", metadata={ROWS_METADATA: "2"})

    blob = gcs_client.bucket(gcs_bucket).get_blob(f"{PREFIX}/t/staging/a.ndjson")
    assert blob.metadata == {ROWS_METADATA: "2"}
    assert store.stat("t/staging/a.ndjson").metadata[ROWS_METADATA] == "2"
    [listed] = store.list("t/staging/")
    assert listed.metadata == {ROWS_METADATA: "2"}


def test_stale_generation_write_and_delete_fail(
    store: GcsStore, gcs_client, gcs_bucket
) -> None:
    """A replace or delete at a stale generation raises PreconditionFailed."""
    old = store.write("t/lease.json", b"1")
    new = store.write("t/lease.json", b"2", if_generation_match=old.generation)
    assert new.generation != old.generation

    with pytest.raises(PreconditionFailed) as caught:
        store.write("t/lease.json", b"3", if_generation_match=old.generation)
    assert caught.value.expected == old.generation
    with pytest.raises(PreconditionFailed):
        store.delete("t/lease.json", if_generation_match=old.generation)

    assert _content(gcs_client, gcs_bucket, "t/lease.json") == b"2"
    store.delete("t/lease.json", if_generation_match=new.generation)
    assert store.stat("t/lease.json") is None


def test_missing_objects(store: GcsStore) -> None:
    """stat answers None, read and delete raise ObjectNotFound for a missing name."""
    assert store.stat("t/nothing") is None
    with pytest.raises(ObjectNotFound):
        store.read("t/nothing")
    with pytest.raises(ObjectNotFound):
        store.delete("t/nothing")


def test_copy_is_guarded(store: GcsStore) -> None:
    """copy refuses an existing target, a changed source and a missing source."""
    src = store.write("t/staging/a", b"a1")
    store.write("t/batches/b/a", b"other")

    with pytest.raises(ObjectExists):
        store.copy(src, "t/batches/b/a")

    changed = store.write("t/staging/a", b"a2", if_generation_match=src.generation)
    with pytest.raises(PreconditionFailed):
        store.copy(src, "t/batches/c/a")
    assert store.stat("t/batches/c/a") is None

    store.delete("t/staging/a", if_generation_match=changed.generation)
    with pytest.raises(ObjectNotFound):
        store.copy(changed, "t/batches/d/a")


def test_move_copies_then_deletes(store: GcsStore) -> None:
    """move leaves the content at the target and nothing at the source."""
    src = store.write("t/staging/a", b"payload", metadata={ROWS_METADATA: "7"})

    moved = store.move(src, "t/batches/b/a")

    assert store.stat("t/staging/a") is None
    assert store.read("t/batches/b/a") == b"payload"
    assert moved.name == "t/batches/b/a"
    assert moved.md5_hash == src.md5_hash
    assert moved.metadata[ROWS_METADATA] == "7"


def test_move_is_idempotent_after_a_crash(store: GcsStore) -> None:
    """A move repeated after a crash between copy and delete finishes the move."""
    src = store.write("t/staging/a", b"payload")
    store.copy(src, "t/batches/b/a")  # the crash: the delete never happened

    moved = store.move(src, "t/batches/b/a")

    assert moved.name == "t/batches/b/a"
    assert store.stat("t/staging/a") is None
    assert store.read("t/batches/b/a") == b"payload"
    again = store.move(src, "t/batches/b/a")  # the answer to the delete was lost
    assert again.generation == moved.generation


def test_move_refuses_other_content_at_the_target(store: GcsStore) -> None:
    """move raises ObjectExists and keeps the source when the target differs."""
    src = store.write("t/staging/a", b"mine")
    store.write("t/batches/b/a", b"theirs")

    with pytest.raises(ObjectExists):
        store.move(src, "t/batches/b/a")

    assert store.read("t/staging/a") == b"mine"
    assert store.read("t/batches/b/a") == b"theirs"


def test_list_is_sorted_and_stays_under_the_prefix(
    store: GcsStore, gcs_client, gcs_bucket
) -> None:
    """list returns names under the prefix only, relative to the store, sorted."""
    for name in ("t/staging/c", "t/staging/a", "t/staging/b", "t/stagingx/z", "u/a"):
        store.write(name, b"x")
    bucket = gcs_client.bucket(gcs_bucket)
    bucket.blob("elsewhere/t/staging/d").upload_from_string(b"x")
    bucket.blob(f"{PREFIX}x/t/staging/e").upload_from_string(b"x")

    listed = store.list("t/staging/")

    assert [i.name for i in listed] == ["t/staging/a", "t/staging/b", "t/staging/c"]
    assert [i.name for i in store.list("t/")] == [
        "t/staging/a",
        "t/staging/b",
        "t/staging/c",
        "t/stagingx/z",
    ]
    assert store.list("nothing/") == []


def test_uri_is_the_load_source(store: GcsStore, gcs_bucket) -> None:
    """uri gives the gs:// form a load job's source_uris take, wildcards kept."""
    assert (
        store.uri("t/batches/b/*.ndjson")
        == f"gs://{gcs_bucket}/dl/t/batches/b/*.ndjson"
    )


def test_unreachable_endpoint_raises_store_unavailable(gcs_bucket) -> None:
    """A closed port on 127.0.0.1 gives StoreUnavailable once the deadline passes."""
    endpoint = closed_endpoint()
    store = GcsStore(f"gs://{gcs_bucket}/dl", api_endpoint=endpoint, deadline=1.0)
    started = time.monotonic()

    with pytest.raises(StoreUnavailable) as caught:
        store.write("t/staging/a", b"x")
    with pytest.raises(StoreUnavailable):
        store.list("t/")

    assert caught.value.object_name == "t/staging/a"
    assert time.monotonic() - started < 20
    store.close()


def test_missing_bucket_is_named(gcs_emulator) -> None:
    """Writes and lists in a bucket that does not exist say so, naming the bucket."""
    store = GcsStore("gs://no-such-bucket-here/dl", api_endpoint=gcs_emulator.endpoint)

    with pytest.raises(StoreError, match="bucket no-such-bucket-here does not exist"):
        store.write("t/staging/a", b"x")
    with pytest.raises(StoreError, match="bucket no-such-bucket-here does not exist"):
        store.list("t/")
    assert store.stat("t/staging/a") is None
    store.close()
