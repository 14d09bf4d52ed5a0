"""The stager: records are validated at append and reach the store exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from dropload import (
    BufferFull,
    DroploadError,
    RecordError,
    Stager,
    StoreUnavailable,
    layout,
)
from dropload.store import ROWS_METADATA, ObjectInfo
from dropload.store.local import LocalStore
from embedded import TABLE, Project, make_project, records, shard_ids, staged
from seams import DelegatingStore

STAGING = layout.staging(TABLE)


class GatedStore(DelegatingStore):
    """A LocalStore whose writes wait at a gate, or fail, while told to."""

    def __init__(self, inner: LocalStore) -> None:
        super().__init__(inner)
        self.gate = threading.Event()
        self.gate.set()
        self.failing = False
        self.waiting = threading.Semaphore(0)
        """Released once for every write that reaches the closed gate."""

    def write(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Wait for the gate, fail when told to, else write to the folder."""
        if not self.gate.is_set():
            self.waiting.release()
            self.gate.wait()
        if self.failing:
            raise StoreUnavailable(name, "the test made the store unreachable")
        return self.inner.write(
            name, data, if_generation_match=if_generation_match, metadata=metadata
        )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project whose stager writes a shard every 5 records."""
    return make_project(tmp_path, stager={"max_records": 5})


@pytest.fixture
def stager(project: Project) -> Iterator[Stager]:
    """A stager of the `events` table, closed after the test."""
    with Stager(project.config, TABLE) as opened:
        yield opened


def _ids(project: Project) -> list[int]:
    return shard_ids(project.store(), STAGING)


def _wait_for_ids(project: Project, expected: list[int]) -> list[int]:
    """Poll the store (at most 20 s) until it holds `expected`; returns the last."""
    deadline = time.monotonic() + 20
    found = _ids(project)
    while found != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        found = _ids(project)
    return found


def _run_child(project: Project, body: str, *args: str) -> subprocess.Popen[bytes]:
    code = textwrap.dedent(
        f"""
        import sys
        from dropload import Stager
        stager = Stager({str(project.config_path)!r}, {TABLE!r})
        """
    ) + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_shard_is_written_at_max_records(project: Project, stager: Stager) -> None:
    """Every 5th record writes a shard of 5; the rest wait in the buffer."""
    stager.extend(records(0, 12))

    assert _ids(project) == list(range(10))
    assert len(staged(project.store())) == 2


def test_a_shard_is_written_at_max_bytes(tmp_path: Path) -> None:
    """A buffer past max_bytes is written without waiting for more records."""
    project = make_project(tmp_path, stager={"max_bytes": 1024})
    big = "x" * 400

    with Stager(project.config, TABLE) as stager:
        stager.extend({"id": i, "name": big} for i in range(3))

        assert _ids(project) == [0, 1, 2]


def test_a_shard_is_written_at_max_age(tmp_path: Path) -> None:
    """Records older than max_age_seconds are written by the background thread."""
    project = make_project(tmp_path, stager={"max_age_seconds": 0.2})

    with Stager(project.config, TABLE) as stager:
        stager.extend(records(0, 3))

        assert _wait_for_ids(project, [0, 1, 2]) == [0, 1, 2]


def test_shards_carry_their_row_count(project: Project, stager: Stager) -> None:
    """Each shard's metadata holds its number of records."""
    stager.extend(records(0, 5))

    (info,) = project.store().list(STAGING)

    assert info.metadata[ROWS_METADATA] == "5"


def test_flush_writes_the_buffer(project: Project, stager: Stager) -> None:
    """flush() writes what is buffered, however little."""
    stager.extend(records(0, 2))

    stager.flush()

    assert _ids(project) == [0, 1]


def test_flush_of_an_empty_buffer_writes_nothing(
    project: Project, stager: Stager
) -> None:
    """flush() with nothing buffered writes no shard."""
    stager.flush()

    assert staged(project.store()) == []


def test_close_flushes(project: Project) -> None:
    """close() writes the buffer."""
    stager = Stager(project.config, TABLE)
    stager.extend(records(0, 3))

    stager.close()

    assert _ids(project) == [0, 1, 2]


def test_the_context_manager_flushes(project: Project) -> None:
    """Leaving the `with` block writes the buffer."""
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(0, 3))

    assert _ids(project) == [0, 1, 2]


def test_close_twice_is_harmless(project: Project) -> None:
    """A second close() does nothing."""
    stager = Stager(project.config, TABLE)
    stager.append({"id": 1})
    stager.close()

    stager.close()

    assert _ids(project) == [1]


def test_a_closed_stager_refuses_appends(project: Project) -> None:
    """append() after close() raises, naming the table."""
    stager = Stager(project.config, TABLE)
    stager.close()

    with pytest.raises(DroploadError, match="table events: stager is closed"):
        stager.append({"id": 1})


def test_a_stager_takes_a_config_path(project: Project) -> None:
    """A Stager can be built from the config file's path."""
    with Stager(project.config_path, TABLE) as stager:
        stager.append({"id": 7})

    assert _ids(project) == [7]


def test_an_unknown_table_is_a_config_error(project: Project) -> None:
    """A Stager of an unconfigured table is refused, naming the table."""
    with pytest.raises(DroploadError, match=r"tables\.orders"):
        Stager(project.config, "orders")


def test_records_are_flushed_at_interpreter_exit(project: Project) -> None:
    """A process that appends and exits without close() still stages its records."""
    child = _run_child(project, "stager.extend({'id': i} for i in range(3))\n")
    _, err = child.communicate(timeout=60)

    assert child.returncode == 0, err.decode()
    assert _ids(project) == [0, 1, 2]


def test_records_are_flushed_on_sigterm(tmp_path: Path) -> None:
    """A process killed by SIGTERM while appending stages every accepted record."""
    project = make_project(tmp_path, stager={"max_records": 50})
    child = _run_child(
        project,
        """
        i = 0
        while True:
            stager.append({'id': i})
            i += 1
            if i == 1000:
                print('ready', flush=True)
        """,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.communicate()

    assert child.returncode == -signal.SIGTERM, err.decode()
    ids = _ids(project)
    assert len(ids) >= 1000
    assert ids == list(range(len(ids)))


def test_concurrent_appends_are_staged_exactly_once(tmp_path: Path) -> None:
    """8 threads appending 1,000 records each: every record in one shard, once."""
    project = make_project(tmp_path, stager={"max_records": 97})
    start = threading.Barrier(8)

    def append_many(stager: Stager, first: int) -> None:
        start.wait()
        for record in records(first, first + 1000):
            stager.append(record)

    with Stager(project.config, TABLE) as stager:
        threads = [
            threading.Thread(target=append_many, args=(stager, n * 1000))
            for n in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert _ids(project) == list(range(8000))
    rows = [int(i.metadata[ROWS_METADATA]) for i in project.store().list(STAGING)]
    assert sum(rows) == 8000


@pytest.mark.parametrize(
    ("record", "field", "problem"),
    [
        ({"id": "seven"}, "id", "integer"),
        ({"name": "no id"}, "id", "REQUIRED field is missing"),
        ({"id": None}, "id", "REQUIRED field is None"),
        ({"id": 1, "colour": "red"}, "colour", "not in the table's schema"),
        ({"id": 1, "name": b"\xff\xfe"}, "name", "not valid UTF-8"),
        ({"id": 1, "name": "\udcff"}, "name", "not valid UTF-8"),
        ({"id": 1, "ts": "yesterday"}, "ts", ""),
    ],
)
def test_bad_records_are_refused_naming_table_and_field(
    project: Project,
    stager: Stager,
    record: dict[str, Any],
    field: str,
    problem: str,
) -> None:
    """append() refuses a record that does not fit, naming table and field."""
    with pytest.raises(RecordError) as caught:
        stager.append(record)

    assert (caught.value.table, caught.value.field) == (TABLE, field)
    assert str(caught.value).startswith(f"table {TABLE}: field {field}: ")
    assert problem in caught.value.problem


def test_a_refused_record_leaves_accepted_ones_intact(
    project: Project, stager: Stager
) -> None:
    """Records accepted before and after a refused one are all staged."""
    stager.extend(records(0, 3))
    with pytest.raises(RecordError):
        stager.append({"id": "bad"})
    stager.extend(records(3, 6))

    stager.flush()

    assert _ids(project) == list(range(6))


def test_extend_stops_at_the_first_refused_record(
    project: Project, stager: Stager
) -> None:
    """extend() keeps the records before a refused one and none after it."""
    with pytest.raises(RecordError):
        stager.extend([{"id": 0}, {"id": "bad"}, {"id": 2}])

    stager.flush()

    assert _ids(project) == [0]


def test_avro_tables_stage_avro_shards(tmp_path: Path) -> None:
    """An Avro table's stager writes .avro shards with the records in them."""
    from dropload.encoding import decode_shard

    project = make_project(
        tmp_path, tables={TABLE: {"destination": "ds.events", "format": "avro"}}
    )
    with Stager(project.config, TABLE) as stager:
        stager.extend(records(0, 3))

    store = project.store()
    (info,) = store.list(STAGING)
    assert info.name.endswith(".avro")
    rows = list(decode_shard("avro", store.read(info.name)))
    assert [r["id"] for r in rows] == [0, 1, 2]


def test_an_unreachable_store_spools_and_uploads_later(tmp_path: Path) -> None:
    """A shard the store refuses waits on local disk and reaches the store later."""
    project = make_project(tmp_path)
    store = GatedStore(project.store())
    store.failing = True

    with Stager(project.config, TABLE, store=store) as stager:
        stager.extend(records(0, 3))
        stager.flush()

        assert stager.spooled == 1
        assert _ids(project) == []
        store.failing = False
        stager.append({"id": 3})

    assert _ids(project) == [0, 1, 2, 3]
    assert stager.spooled == 0


def test_a_new_stager_uploads_what_an_earlier_one_spooled(tmp_path: Path) -> None:
    """Shards spooled by a stager are uploaded by the next stager of the table."""
    project = make_project(tmp_path)
    store = GatedStore(project.store())
    store.failing = True
    with Stager(project.config, TABLE, store=store) as stager:
        stager.extend(records(0, 3))

    with Stager(project.config, TABLE):
        pass

    assert _ids(project) == [0, 1, 2]


def test_the_memory_ceiling_raises_buffer_full(tmp_path: Path) -> None:
    """With uploads stuck, append raises BufferFull once buffer and upload fill it.

    Accepted records are all staged once the store answers again.
    """
    project = make_project(
        tmp_path,
        stager={"max_buffer_bytes": 1024, "max_bytes": 2048, "when_full": "raise"},
    )
    store = GatedStore(project.store())
    stager = Stager(project.config, TABLE, store=store)
    stager.extend(records(0, 10))
    store.gate.clear()
    flusher = threading.Thread(target=stager.flush)
    flusher.start()
    store.waiting.acquire()

    accepted = 10
    while accepted < 100:
        try:
            stager.append({"id": accepted, "name": "x" * 50})
        except BufferFull as exc:
            refused = exc
            break
        accepted += 1

    store.gate.set()
    flusher.join()
    stager.close()
    assert "ceiling of 1024 bytes" in str(refused)
    assert 10 < accepted < 10 + 1024 // 50
    assert _ids(project) == list(range(accepted))


def test_the_memory_ceiling_blocks_until_the_upload_ends(tmp_path: Path) -> None:
    """With when_full = "block", an append at the ceiling waits for the upload."""
    project = make_project(
        tmp_path, stager={"max_buffer_bytes": 1024, "max_bytes": 2048}
    )
    store = GatedStore(project.store())
    stager = Stager(project.config, TABLE, store=store)
    stager.extend({"id": i, "name": "x" * 50} for i in range(12))
    store.gate.clear()
    flusher = threading.Thread(target=stager.flush)
    flusher.start()
    store.waiting.acquire()
    events: list[str] = []

    def fill() -> None:
        stager.extend({"id": i, "name": "x" * 50} for i in range(12, 40))
        events.append("appended")

    appender = threading.Thread(target=fill)
    appender.start()
    appender.join(0.5)
    events.append("released")
    store.gate.set()
    appender.join()
    flusher.join()
    stager.close()

    assert events == ["released", "appended"]
    assert _ids(project) == list(range(40))


def test_flush_waits_for_an_upload_another_thread_started(tmp_path: Path) -> None:
    """Records are durable when flush() returns, even if another thread uploads them."""
    project = make_project(tmp_path, stager={"max_records": 2})
    store = GatedStore(project.store())
    stager = Stager(project.config, TABLE, store=store)
    stager.append({"id": 0})
    store.gate.clear()
    other = threading.Thread(target=stager.append, args=({"id": 1},))
    other.start()
    store.waiting.acquire()
    seen: list[list[int]] = []

    def flush() -> None:
        stager.flush()
        seen.append(_ids(project))

    flusher = threading.Thread(target=flush)
    flusher.start()
    flusher.join(0.5)
    store.gate.set()
    flusher.join()
    other.join()
    stager.close()

    assert seen == [[0, 1]]


def test_an_append_racing_close_is_refused_or_staged(tmp_path: Path) -> None:
    """A record appended while close() uploads is either refused or staged."""
    project = make_project(tmp_path)
    store = GatedStore(project.store())
    stager = Stager(project.config, TABLE, store=store)
    stager.append({"id": 0})
    store.gate.clear()
    closer = threading.Thread(target=stager.close)
    closer.start()
    store.waiting.acquire()

    try:
        stager.append({"id": 1})
        expected = [0, 1]
    except DroploadError:
        expected = [0]
    store.gate.set()
    closer.join()

    assert _ids(project) == expected


def test_stagers_in_two_processes_never_overwrite(project: Project) -> None:
    """Two processes staging at once each keep all their records."""
    body = """
        first = int(sys.argv[1])
        stager.extend({'id': i} for i in range(first, first + 500))
        stager.close()
        """
    children = [_run_child(project, body, str(first)) for first in (0, 500)]

    errors = [child.communicate(timeout=60)[1].decode() for child in children]

    assert [child.returncode for child in children] == [0, 0], errors
    assert _ids(project) == list(range(1000))
    assert os.listdir(project.store_root / ".dropload" / "tmp") == []


def test_a_buffer_at_the_ceiling_is_written_by_the_appender(tmp_path: Path) -> None:
    """With no upload under way, reaching max_buffer_bytes writes a shard at once."""
    project = make_project(
        tmp_path,
        stager={"max_buffer_bytes": 1024, "max_bytes": 4096, "max_age_seconds": 3600},
    )
    with Stager(project.config, TABLE) as stager:
        stager.extend({"id": i, "name": "x" * 50} for i in range(30))

        written = _ids(project)

    assert written
    assert written == list(range(len(written)))


def test_a_forked_child_does_not_write_its_parents_buffer(project: Project) -> None:
    """Records buffered before a fork are written once, by the parent only."""
    child = _run_child(
        project,
        """
        import os
        stager.extend({'id': i} for i in range(3))
        pid = os.fork()
        if pid == 0:
            try:
                stager.append({'id': 99})
            except Exception as exc:
                print(exc, flush=True)
            sys.exit(0)
        os.waitpid(pid, 0)
        stager.close()
        """,
    )
    out, err = child.communicate(timeout=60)

    assert child.returncode == 0, err.decode()
    assert _ids(project) == [0, 1, 2]
    assert out.decode() == f"table {TABLE}: stager is closed\n"


def test_a_buffered_ndjson_record_costs_about_its_encoded_size(
    tmp_path: Path,
) -> None:
    """5,000 buffered records take under 3 times their encoded bytes of memory."""
    project = make_project(tmp_path, stager={"max_records": 100_000})
    stager = Stager(project.config, TABLE)
    wide = [{"id": i, "name": f"name {i} " * 20} for i in range(5_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        stager.extend(wide)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    buffered = stager._bytes
    stager.close()

    assert buffered > 500_000
    assert held < 3 * buffered
