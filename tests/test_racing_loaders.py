"""Two and four loaders started at once on the same ten tables, writers staging.

Each loader is its own process running ten ticks of every table (as `loader
serve` would, back to back); two writer threads keep staging shards of unique
ids meanwhile (fewer against the emulators, whose Cloud Storage server is
single-threaded). After a final drain every id is in its table exactly once.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.cloud import bigquery

from cloud_fixtures import make_cloud_project
from cloud_fixtures import table_ids as cloud_table_ids
from dropload import layout
from dropload.config import load_config
from dropload.loader import Loader
from dropload.stager import Stager
from dropload.store.base import Store
from embedded import make_project
from embedded import table_ids as embedded_table_ids

TABLES = tuple(f"t{i}" for i in range(10))
TICKS = 10

_TICKER = """
import json, sys
from dropload.config import load_config
from dropload.loader import Loader

loader = Loader(load_config(sys.argv[1]))
reports = []
for _ in range(int(sys.argv[2])):
    reports += [(report.status, report.error) for report in loader.run_once()]
loader.close()
print(json.dumps(reports))
"""
"""One loader process: ten ticks of every table, (status, error) pairs as JSON."""

UNANSWERED = "did not answer"
"""In the error of a tick the (overloaded, single-threaded) emulator left
unanswered: allowed, as long as nothing is lost or loaded twice."""

DRAIN_TICKS = 5


class _Writers:
    """Threads staging five-record shards of fresh ids into random tables."""

    def __init__(
        self, config_path: Path, *, pause: float, shards: int, count: int = 2
    ) -> None:
        self.config = load_config(config_path)
        self.pause = pause
        self.shards = shards
        self.staged: dict[str, list[int]] = {t: [] for t in TABLES}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._write, args=(seed,)) for seed in range(count)
        ]

    def __enter__(self) -> _Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _write(self, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(self.shards):
            if self._stop.wait(self.pause):
                return
            table = rng.choice(TABLES)
            with self._lock:
                ids = [next(self._ids) for _ in range(5)]
            with Stager(self.config, table) as stager:
                stager.extend([{"id": i, "name": f"n{i}"} for i in ids])
            with self._lock:
                self.staged[table].extend(ids)


def _race(
    config_path: Path, loaders: int, *, pause: float, shards: int
) -> tuple[_Writers, Counter[str], list[str]]:
    env = {**os.environ}
    command = [sys.executable, "-c", _TICKER, str(config_path), str(TICKS)]
    with _Writers(config_path, pause=pause, shards=shards) as writers:
        children = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(loaders)
        ]
        outputs = [child.communicate(timeout=600)[0] for child in children]
    assert [child.returncode for child in children] == [0] * loaders
    reports = [tuple(pair) for out in outputs for pair in json.loads(out)]
    statuses = Counter(status for status, _ in reports)
    errors = [error for status, error in reports if status == "failed"]
    loader = Loader(load_config(config_path))
    try:
        for _ in range(DRAIN_TICKS):
            if all(r.status == "idle" for r in loader.run_once()):
                break
    finally:
        loader.close()
    return writers, statuses, errors


def _check(
    writers: _Writers, store: Store, table_ids: Callable[[str], list[int]]
) -> None:
    for table in TABLES:
        assert table_ids(table) == sorted(writers.staged[table]), table
        for prefix in (layout.staging, layout.intents, layout.batches):
            assert store.list(prefix(table)) == [], (table, prefix(table))


@pytest.mark.slow
@pytest.mark.parametrize("loaders", [2, 4])
def test_embedded_loaders_racing_load_every_record_once(
    tmp_path: Path, loaders: int
) -> None:
    """2 or 4 loaders x 10 ticks x 10 tables, writers staging: every id once."""
    project = make_project(
        tmp_path, tables={t: {"destination": f"ds.{t}"} for t in TABLES}
    )

    writers, statuses, errors = _race(
        project.config_path, loaders, pause=0.01, shards=400
    )

    warehouse = project.warehouse()
    assert statuses["skipped"] > 0
    assert errors == []
    assert sum(len(ids) for ids in writers.staged.values()) > 0
    _check(writers, project.store(), lambda t: embedded_table_ids(warehouse, f"ds.{t}"))


@pytest.mark.slow
@pytest.mark.emulator
@pytest.mark.parametrize("loaders", [2, 4])
def test_cloud_loaders_racing_load_every_record_once(
    tmp_path: Path,
    gcs_emulator: Any,
    bq_emulator: Any,
    gcs_bucket: str,
    bq_dataset: str,
    bq_client: bigquery.Client,
    loaders: int,
) -> None:
    """2 or 4 loaders against the emulators, writers staging: every id once."""
    project = make_cloud_project(
        tmp_path / "project",
        bucket=gcs_bucket,
        dataset=bq_dataset,
        gcs_endpoint=gcs_emulator.endpoint,
        bq_endpoint=bq_emulator.endpoint,
        tables={t: {} for t in TABLES},
        loader={"max_workers": 4},
    )

    writers, statuses, errors = _race(
        project.config_path, loaders, pause=0.05, shards=40
    )

    assert statuses["skipped"] > 0
    assert [e for e in errors if UNANSWERED not in (e or "")] == []
    _check(writers, project.store(), lambda t: cloud_table_ids(bq_client, project, t))
