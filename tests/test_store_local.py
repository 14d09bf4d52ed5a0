"""The local folder store keeps the Cloud Storage contract dropload relies on."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dropload import (
    ObjectExists,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
)
from dropload.store import ROWS_METADATA
from dropload.store.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """An empty store folder."""
    return LocalStore(tmp_path / "store")


def test_write_creates_a_file(store: LocalStore) -> None:
    """A create-if-absent write puts the bytes at the object's path."""
    info = store.write("t/staging/a.ndjson", b"{}\n")

    assert (store.root / "t" / "staging" / "a.ndjson").read_bytes() == b"{}\n"
    assert (info.name, info.size) == ("t/staging/a.ndjson", 3)
    assert info.generation > 0


def test_create_if_absent_refuses_an_existing_name(store: LocalStore) -> None:
    """A second create of the same name raises ObjectExists and keeps the first."""
    store.write("a", b"first")

    with pytest.raises(ObjectExists, match="never overwritten"):
        store.write("a", b"second")

    assert store.read("a") == b"first"


def test_conditional_replace_at_the_current_generation(store: LocalStore) -> None:
    """A write at the current generation replaces the object with a newer one."""
    first = store.write("lease.json", b"one")

    second = store.write("lease.json", b"two", if_generation_match=first.generation)

    assert store.read("lease.json") == b"two"
    assert second.generation > first.generation


def test_conditional_replace_with_a_stale_generation_fails(store: LocalStore) -> None:
    """A write at an old generation raises PreconditionFailed and changes nothing."""
    first = store.write("lease.json", b"one")
    store.write("lease.json", b"two", if_generation_match=first.generation)

    with pytest.raises(PreconditionFailed):
        store.write("lease.json", b"three", if_generation_match=first.generation)

    assert store.read("lease.json") == b"two"


def test_conditional_delete_with_a_stale_generation_fails(store: LocalStore) -> None:
    """A delete at an old generation raises PreconditionFailed and keeps the file."""
    first = store.write("lease.json", b"one")
    store.write("lease.json", b"two", if_generation_match=first.generation)

    with pytest.raises(PreconditionFailed):
        store.delete("lease.json", if_generation_match=first.generation)

    assert store.read("lease.json") == b"two"


def test_conditional_delete_at_the_current_generation(store: LocalStore) -> None:
    """A delete at the current generation removes the object."""
    info = store.write("a", b"x")

    store.delete("a", if_generation_match=info.generation)

    assert store.stat("a") is None


def test_delete_of_a_missing_object_raises(store: LocalStore) -> None:
    """Deleting an absent object raises ObjectNotFound."""
    with pytest.raises(ObjectNotFound):
        store.delete("absent")


def test_read_of_a_missing_object_raises(store: LocalStore) -> None:
    """Reading an absent object raises ObjectNotFound naming it."""
    with pytest.raises(ObjectNotFound, match="absent"):
        store.read("absent")


def test_stat_gives_the_md5(store: LocalStore) -> None:
    """stat() reports size, generation and the content's MD5."""
    written = store.write("a", b"hello")

    info = store.stat("a")

    assert info is not None
    assert info.generation == written.generation
    assert info.md5_hash == "5d41402abc4b2a76b9719d911017c592"
    assert store.stat("absent") is None


def test_move_renames(store: LocalStore) -> None:
    """move() puts the object at its new name and removes the old one."""
    src = store.write("t/staging/a", b"data")

    moved = store.move(src, "t/batches/b/a")

    assert store.read("t/batches/b/a") == b"data"
    assert store.stat("t/staging/a") is None
    assert moved.name == "t/batches/b/a"


def test_move_repeated_after_a_crash_between_copy_and_delete(
    store: LocalStore,
) -> None:
    """A move repeated after only its copy happened finishes without an error."""
    src = store.write("t/staging/a", b"data")
    store.copy(src, "t/batches/b/a")

    store.move(src, "t/batches/b/a")

    assert store.read("t/batches/b/a") == b"data"
    assert store.stat("t/staging/a") is None


def test_move_repeated_after_it_finished(store: LocalStore) -> None:
    """A move repeated after it fully happened (a lost answer) is a no-op."""
    src = store.write("t/staging/a", b"data")
    store.move(src, "t/batches/b/a")

    store.move(src, "t/batches/b/a")

    assert store.read("t/batches/b/a") == b"data"
    assert [i.name for i in store.list("t/")] == ["t/batches/b/a"]


def test_move_onto_other_content_is_refused(store: LocalStore) -> None:
    """A move onto a different object of the same name raises ObjectExists."""
    src = store.write("t/staging/a", b"data")
    store.write("t/batches/b/a", b"other")

    with pytest.raises(ObjectExists):
        store.move(src, "t/batches/b/a")

    assert store.read("t/staging/a") == b"data"
    assert store.read("t/batches/b/a") == b"other"


def test_move_of_a_changed_source_is_refused(store: LocalStore) -> None:
    """A move of a source replaced since it was listed raises PreconditionFailed."""
    src = store.write("a", b"one")
    store.write("a", b"two", if_generation_match=src.generation)

    with pytest.raises(PreconditionFailed):
        store.move(src, "b")

    assert store.stat("b") is None


def test_move_of_a_vanished_source_raises(store: LocalStore) -> None:
    """A move whose source and target are both absent raises ObjectNotFound."""
    src = store.write("a", b"one")
    store.delete("a")

    with pytest.raises(ObjectNotFound):
        store.move(src, "b")


def test_list_sorts_by_name_and_filters_by_prefix(store: LocalStore) -> None:
    """list() returns the objects under a prefix, sorted, across folders."""
    for name in ["t/staging/c", "t/staging/a", "t/batches/x/b", "u/staging/a"]:
        store.write(name, b"x")

    assert [i.name for i in store.list("t/staging/")] == ["t/staging/a", "t/staging/c"]
    assert [i.name for i in store.list("t/")] == [
        "t/batches/x/b",
        "t/staging/a",
        "t/staging/c",
    ]
    assert [i.name for i in store.list("t/staging/a")] == ["t/staging/a"]


def test_list_ignores_the_hidden_folder(store: LocalStore) -> None:
    """The store's own temporary files and locks never show in a listing."""
    store.write("a", b"x")
    store.write("lease.json", b"one")
    (store.root / ".dropload" / "tmp" / "left-over").write_bytes(b"junk")

    assert [i.name for i in store.list("")] == ["a", "lease.json"]


def test_list_of_a_missing_prefix_is_empty(store: LocalStore) -> None:
    """Listing a prefix nothing was written under returns nothing."""
    assert store.list("nothing/here/") == []


@pytest.mark.parametrize(
    "name",
    ["..", "../x", "a/../../x", "a/..", "/etc/passwd", "a//b", "./a", "a/.", ""],
)
def test_path_traversal_names_are_refused(store: LocalStore, name: str) -> None:
    """Names with empty, `.` or `..` parts, or absolute, never reach the disk."""
    with pytest.raises(StoreError, match="relative"):
        store.write(name, b"x")

    assert not (store.root.parent / "x").exists()


def test_the_hidden_folder_cannot_be_written(store: LocalStore) -> None:
    """Objects cannot be written into the store's own folder."""
    with pytest.raises(StoreError, match="reserved"):
        store.write(".dropload/tmp/x", b"x")


def test_metadata_round_trips(store: LocalStore) -> None:
    """A shard's row count written as metadata is read back by stat and list."""
    store.write("t/staging/a", b"x\n" * 7, metadata={ROWS_METADATA: "7"})

    info = store.stat("t/staging/a")

    assert info is not None
    assert info.metadata == {ROWS_METADATA: "7"}
    assert store.list("t/staging/")[0].metadata == {ROWS_METADATA: "7"}


def test_metadata_survives_a_move(store: LocalStore) -> None:
    """A moved shard keeps its row count."""
    src = store.write("t/staging/a", b"x\n", metadata={ROWS_METADATA: "1"})

    moved = store.move(src, "t/archive/a")

    assert moved.metadata == {ROWS_METADATA: "1"}


def test_a_store_under_a_regular_file_is_unavailable(tmp_path: Path) -> None:
    """A folder that cannot be created raises StoreUnavailable naming it."""
    (tmp_path / "file").write_text("not a folder")

    with pytest.raises(StoreError, match="cannot create"):
        LocalStore(tmp_path / "file" / "store")


def test_uri_is_the_local_path(store: LocalStore) -> None:
    """uri() is the path a DuckDB warehouse reads, wildcard kept."""
    assert store.uri("t/batches/b/*.ndjson") == str(store.root / "t/batches/b/*.ndjson")


@pytest.mark.parametrize("name", ["..", "../x", "a/.."])
def test_path_traversal_names_are_refused_by_every_call(
    store: LocalStore, name: str
) -> None:
    """read, stat and delete refuse the same names as write."""
    for call in (store.read, store.stat, store.delete):
        with pytest.raises(StoreError, match="relative"):
            call(name)


def _no_xattrs(path: object, *args: object) -> None:
    raise OSError(errno.ENOTSUP, "Operation not supported", str(path))


def test_a_file_system_without_xattrs_still_stores(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where user xattrs are unsupported, writes work and carry no metadata."""
    monkeypatch.setattr(os, "setxattr", _no_xattrs)
    monkeypatch.setattr(os, "listxattr", _no_xattrs)

    store.write("a", b"x", metadata={ROWS_METADATA: "1"})

    info = store.stat("a")
    assert info is not None
    assert (store.read("a"), info.metadata) == (b"x", {})


def test_a_platform_without_xattrs_still_stores(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where Python has no xattr functions (macOS), writes work too."""
    for name in ("setxattr", "listxattr", "getxattr"):
        monkeypatch.delattr(os, name, raising=False)

    store.write("a", b"x", metadata={ROWS_METADATA: "1"})

    assert [(i.name, dict(i.metadata)) for i in store.list("")] == [("a", {})]


def test_unwritable_temp_folder_raises_store_unavailable(tmp_path: Path) -> None:
    """A temp folder that cannot take files raises StoreUnavailable, not OSError."""
    store = LocalStore(tmp_path / "store")
    tmp = store.root / ".dropload" / "tmp"
    tmp.rmdir()
    tmp.write_bytes(b"")  # a file where the folder was: every write fails
    with pytest.raises(StoreUnavailable, match="cannot write"):
        store.write("t/staging/a.ndjson", b"{}\n")


def test_unwritable_target_folder_raises_store_unavailable(tmp_path: Path) -> None:
    """A target folder that cannot be made raises StoreUnavailable, not OSError."""
    store = LocalStore(tmp_path / "store")
    (store.root / "t").write_bytes(b"")  # `t` is a file, so t/staging cannot exist
    with pytest.raises(StoreUnavailable, match=r"t/staging/a\.ndjson"):
        store.write("t/staging/a.ndjson", b"{}\n")
    assert list((store.root / ".dropload" / "tmp").iterdir()) == []


def test_stale_temporary_files_are_swept_on_open(tmp_path: Path) -> None:
    """Temp files older than an hour (a killed writer's) go when a store opens."""
    LocalStore(tmp_path / "store")
    tmp = tmp_path / "store" / ".dropload" / "tmp"
    (tmp / "old").write_bytes(b"x")
    (tmp / "new").write_bytes(b"x")
    os.utime(tmp / "old", (0, 0))
    LocalStore(tmp_path / "store")
    assert sorted(p.name for p in tmp.iterdir()) == ["new"]
