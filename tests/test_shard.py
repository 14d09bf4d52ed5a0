"""Shard names and batch ids: unique across threads and processes, sorted by time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from dropload.shard import (
    BATCH_ID,
    is_shard_name,
    job_id,
    new_batch_id,
    new_shard_name,
    shard_time,
)
from dropload.warehouse.base import check_job_id

THREADS = 8
PER_THREAD = 2_000
PROCESSES = 4


def test_names_are_unique_across_threads() -> None:
    """8 threads naming 2,000 shards each never produce the same name twice."""
    results: list[list[str]] = [[] for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def name_many(out: list[str]) -> None:
        start.wait()
        out.extend(new_shard_name("ndjson") for _ in range(PER_THREAD))

    threads = [threading.Thread(target=name_many, args=(r,)) for r in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    names = [name for result in results for name in result]
    assert len(names) == THREADS * PER_THREAD
    assert len(set(names)) == len(names)


def test_names_are_unique_across_processes() -> None:
    """4 processes naming shards at once never produce the same name twice."""
    code = (
        "from dropload.shard import new_shard_name\n"
        f"print('\\n'.join(new_shard_name('avro') for _ in range({PER_THREAD})))"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        for _ in range(PROCESSES)
    ]
    outputs = [child.communicate()[0].decode().split() for child in children]

    assert [child.returncode for child in children] == [0] * PROCESSES
    names = [name for output in outputs for name in output]
    assert len(names) == PROCESSES * PER_THREAD
    assert len(set(names)) == len(names)
    assert all(is_shard_name(name) for name in names)


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_a_forked_child_draws_its_own_identity() -> None:
    """A forked process does not reuse its parent's random part."""
    parent = new_shard_name("ndjson").split("-")[3]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_shard_name("ndjson").encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 4096).decode()
    os.close(read)
    os.waitpid(pid, 0)

    assert child.split("-")[3] != parent


def test_names_sort_by_time() -> None:
    """Names made at later moments sort after earlier ones, across days and years."""
    base = datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    steps = (0, 1, 2, 86_400_000_000)
    moments = [base + timedelta(microseconds=step) for step in steps]

    names = [new_shard_name("ndjson", now) for now in reversed(moments)]

    assert [shard_time(n) for n in sorted(names)] == moments


def test_names_made_in_sequence_sort_in_sequence() -> None:
    """One process's names, made one after another, are already sorted."""
    names = [new_shard_name("ndjson") for _ in range(1_000)]

    assert names == sorted(names)


def test_shard_time_round_trips() -> None:
    """shard_time() reads back the UTC moment the name was made for."""
    moment = datetime(2026, 1, 26, 12, 30, 15, 123_456, tzinfo=UTC)

    assert shard_time(new_shard_name("avro", moment)) == moment


def test_local_times_are_named_in_utc() -> None:
    """A moment given in another zone is named by its UTC time."""
    moment = datetime(2026, 1, 26, 14, 0, tzinfo=timezone(timedelta(hours=2)))

    assert shard_time(new_shard_name("ndjson", moment)) == moment.astimezone(UTC)


@pytest.mark.parametrize(
    "name",
    [
        "notes.txt",
        "20260126T120000000000Z-0011aabb-12-0011223344556677-000001.csv",
        "20260126T120000000000Z-0011aabb-12-0011223344556677-000001.ndjson.tmp",
    ],
)
def test_other_files_are_not_shards(name: str) -> None:
    """Files in staging that dropload did not name are not taken for shards."""
    assert not is_shard_name(name)
    with pytest.raises(ValueError, match="not a shard name"):
        shard_time(name)


def test_batch_ids_are_unique_and_well_formed() -> None:
    """Batch ids match their pattern and do not repeat."""
    ids = [new_batch_id() for _ in range(1_000)]

    assert all(BATCH_ID.match(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_job_ids_pass_bigquerys_rules() -> None:
    """A job id of the longest table name and a late attempt is a valid job id."""
    table = "t" * 63

    made = job_id(table, new_batch_id(), 999)

    assert check_job_id(made) == made


def test_job_ids_are_stable_per_batch_and_attempt() -> None:
    """The same batch and attempt give the same job id; a new attempt a new one."""
    batch = new_batch_id()

    assert job_id("events", batch, 1) == job_id("events", batch, 1)
    assert job_id("events", batch, 1) != job_id("events", batch, 2)


@pytest.mark.parametrize("bad", ["", "a" * 1025, "has space", "dot.ted", "ü"])
def test_bad_job_ids_are_refused(bad: str) -> None:
    """check_job_id refuses what BigQuery would refuse."""
    with pytest.raises(ValueError, match="job id"):
        check_job_id(bad)
