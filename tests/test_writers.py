"""Writers' records are safe: failed uploads, lost answers, a store outage."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dropload import Loader, Stager, layout
from dropload.stager.spool import SPOOLED_METADATA, Spool
from embedded import TABLE, Project, make_project, staged, table_ids
from writer_process import write_records

PROCESSES = 16
RECORDS_PER_PROCESS = 1_000
CEILING = 4096
"""stager.max_buffer_bytes in the test: a few shards of 20 records."""


def _spool(project: Project) -> Spool:
    store = project.store()
    return Spool(project.folder / "spool", store.url, TABLE)


@pytest.mark.slow
def test_16_writers_with_failing_uploads_and_an_outage_lose_nothing(
    tmp_path: Path,
) -> None:
    """16 writers, 10 % failed uploads, an outage: each record once, bounded buffers."""
    project = make_project(
        tmp_path,
        stager={"max_records": 20, "max_buffer_bytes": CEILING, "when_full": "block"},
    )
    down = tmp_path / "store-down"
    context = multiprocessing.get_context("spawn")
    summaries = [tmp_path / f"writer-{n}.json" for n in range(PROCESSES)]
    writers = [
        context.Process(
            target=write_records,
            args=(
                str(project.config_path),
                n * RECORDS_PER_PROCESS,
                RECORDS_PER_PROCESS,
                str(down),
                str(summaries[n]),
            ),
        )
        for n in range(PROCESSES)
    ]
    loader = Loader(project.config)
    stop = threading.Event()
    ticking = threading.Thread(target=_tick_until, args=(loader, stop))
    ticking.start()
    down.touch()
    for writer in writers:
        writer.start()
    _wait_for(lambda: all(Path(f"{s}.half").exists() for s in summaries))
    down.unlink()
    for writer in writers:
        writer.join(240)
    # A writer's last flush may meet an injected failure: the next process
    # start on this host (here, this one) uploads what the spool still holds.
    Stager(project.config, TABLE).close()
    stop.set()
    ticking.join(120)
    for _ in range(3):
        loader.run_once()

    assert [w.exitcode for w in writers] == [0] * PROCESSES
    done = [json.loads(s.read_text()) for s in summaries]
    assert all(CEILING // 2 < d["peak"] <= CEILING for d in done)
    assert all(d["spooled_in_outage"] > 0 and d["refused_down"] > 0 for d in done)
    assert sum(d["failures"] for d in done) > 0
    assert sum(d["lost_answers"] for d in done) > 0
    assert _spool(project).pending() == []
    assert staged(project.store()) == []
    total = PROCESSES * RECORDS_PER_PROCESS
    assert table_ids(project.warehouse()) == list(range(total))


def _wait_for(predicate: Callable[[], bool], seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "writers did not get half way"
        time.sleep(0.1)


def _tick_until(loader: Loader, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        loader.run_once()


def test_spooled_copy_of_an_archived_shard_is_dropped(tmp_path: Path) -> None:
    """A spooled re-upload of an archived shard is dropped, not loaded twice."""
    project = make_project(tmp_path)
    store = project.store()
    name = (
        layout.staging(TABLE)
        + "20260126T080000000000Z-0a0b0c0d-7-00112233445566ff-000001.ndjson"
    )
    data = b'{"id": 1}\n{"id": 2}\n'
    store.write(name, data)
    _spool(project).put(name, data, rows=2)
    [first] = Loader(project.config).run_once()

    assert _spool(project).drain(store) == 1
    [info] = store.list(layout.staging(TABLE))
    assert info.metadata[SPOOLED_METADATA] == "1"
    [second] = Loader(project.config).run_once()

    assert (first.rows, second.dropped, second.jobs) == (2, 1, [])
    assert staged(store) == []
    assert table_ids(project.warehouse()) == [1, 2]


def test_spooled_shard_that_never_arrived_loads(tmp_path: Path) -> None:
    """A spooled shard that never reached the store uploads at restart, loads once."""
    project = make_project(tmp_path)
    name = (
        layout.staging(TABLE)
        + "20260126T080000000000Z-0a0b0c0d-7-00112233445566ff-000002.ndjson"
    )
    _spool(project).put(name, b'{"id": 5}\n', rows=1)
    Stager(project.config, TABLE).close()

    [report] = Loader(project.config).run_once()

    assert (report.rows, report.dropped) == (1, 0)
    assert table_ids(project.warehouse()) == [5]
