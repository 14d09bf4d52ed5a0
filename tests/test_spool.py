"""The local spool: shards the store refused wait on disk and are uploaded once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dropload.stager.spool import SPOOLED_METADATA, Spool
from dropload.store import ROWS_METADATA
from dropload.store.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """An empty store folder."""
    return LocalStore(tmp_path / "store")


@pytest.fixture
def spool(tmp_path: Path, store: LocalStore) -> Spool:
    """An empty spool of table `events` for `store`."""
    return Spool(tmp_path / "spool", store.url, "events")


def _fill(spool: Spool, count: int) -> None:
    for i in range(count):
        spool.put(f"events/staging/s{i:04d}.ndjson", b'{"id": %d}\n' % i, 1)


def test_a_drain_uploads_every_shard_with_its_row_count(
    spool: Spool, store: LocalStore
) -> None:
    """drain() writes each spooled shard under its name, marked as spooled."""
    _fill(spool, 3)

    assert spool.drain(store) == 3

    infos = store.list("events/staging/")
    assert [i.basename for i in infos] == [
        "s0000.ndjson",
        "s0001.ndjson",
        "s0002.ndjson",
    ]
    assert infos[0].metadata == {ROWS_METADATA: "1", SPOOLED_METADATA: "1"}
    assert store.read(infos[2].name) == b'{"id": 2}\n'
    assert len(spool) == 0


def test_a_shard_already_in_the_store_is_not_written_twice(
    spool: Spool, store: LocalStore
) -> None:
    """A spooled shard whose name exists in the store is dropped from the spool."""
    store.write("events/staging/s0000.ndjson", b'{"id": 0}\n')
    _fill(spool, 1)

    spool.drain(store)

    assert len(store.list("events/staging/")) == 1
    assert len(spool) == 0


def test_concurrent_drains_upload_each_shard_once(
    spool: Spool, store: LocalStore
) -> None:
    """Four drains at once (writers sharing a spool) neither fail nor duplicate."""
    _fill(spool, 200)
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            spool.drain(store)
        except Exception as exc:  # the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(store.list("events/staging/")) == 200
    assert len(spool) == 0


def test_spools_are_kept_apart_per_store_and_table(tmp_path: Path) -> None:
    """Two stores or two tables never share a spool folder."""
    root = tmp_path / "spool"

    folders = {
        Spool(root, "/a", "events").folder,
        Spool(root, "/b", "events").folder,
        Spool(root, "/a", "others").folder,
    }

    assert len(folders) == 3
