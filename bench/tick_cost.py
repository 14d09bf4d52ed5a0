"""One tick's cost against the number of staged shards, local store and GCS emulator.

Shards of 10 records each are written straight into staging; one `run_once`
then claims, loads (one job) and archives them, moves running on
`loader.max_workers` threads. Step hooks split the tick into its phases.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import embedded_config, print_table, write_result
from dropload import Loader, layout
from dropload.config import LoaderConfig, load_config
from dropload.shard import new_shard_name
from dropload.store import ROWS_METADATA, Store, open_store

TABLE = "events"
RECORDS_PER_SHARD = 10
LOCAL_SIZES = (100, 1_000, 10_000)
GCS_SIZES = (100, 200)
"""The emulator answers each request in time growing with the objects it holds
(about 10 ms at 100 objects, 50 ms at 1,000, measured): 1,000 shards take
minutes there and 10,000 hours, so the larger counts run on the local store."""
SCHEMA = [
    {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "name", "type": "STRING"},
]
PHASES = (
    ("lease, list, intent", None, "claim"),
    ("claim moves", "claim", "load"),
    ("load job", "load", "judge"),
    ("reconcile, manifest", "judge", "archive"),
    ("archive moves", "archive", None),
)


def main(with_gcs: bool = True) -> dict[str, Any]:
    """Measure every size on the local store, then the small ones on the emulator."""
    rows = [_local(count) for count in LOCAL_SIZES]
    if with_gcs:
        rows += _on_emulators(GCS_SIZES)
    workers = LoaderConfig().max_workers
    print_table(f"one tick against staged shards ({workers} move threads)", rows)
    return {"records_per_shard": RECORDS_PER_SHARD, "table": rows}


def prepare(
    folder: Path,
    count: int,
    store_section: dict[str, Any] | None = None,
    warehouse: dict[str, Any] | None = None,
) -> Path:
    """A config in `folder` and `count` staged shards; returns the config path."""
    (folder / "schema.json").write_text(json.dumps(SCHEMA))
    config = embedded_config(
        folder,
        {TABLE: {"destination": "bench.events", "schema": "schema.json"}},
        store_url=(store_section or {}).get("url", "store"),
        warehouse=warehouse,
    )
    if store_section and "api_endpoint" in store_section:
        text = config.read_text().replace(
            "[store]\n",
            f"[store]\napi_endpoint = {json.dumps(store_section['api_endpoint'])}\n",
        )
        config.write_text(text)
    stage_shards(open_store(load_config(config)), count)
    return config


def stage_shards(store: Store, count: int) -> None:
    """Write `count` small NDJSON shards into staging, 8 at a time."""

    def write(number: int) -> None:
        first = number * RECORDS_PER_SHARD
        body = b"".join(
            b'{"id":%d,"name":"n%d"}\n' % (i, i)
            for i in range(first, first + RECORDS_PER_SHARD)
        )
        name = layout.staging(TABLE) + new_shard_name("ndjson")
        store.write(name, body, metadata={ROWS_METADATA: str(RECORDS_PER_SHARD)})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(count)))


def measure_tick(config: Path) -> dict[str, Any]:
    """Run one tick; its report and the seconds of each phase."""
    marks: dict[str, float] = {}
    loader = Loader(
        load_config(config),
        step_hook=lambda s: marks.setdefault(s, time.perf_counter()),
    )
    start = time.perf_counter()
    (report,) = loader.run_once([TABLE])
    end = time.perf_counter()
    loader.close()
    if report.status != "loaded":
        raise RuntimeError(f"the tick did not load: {report}")
    phases = {
        name: marks.get(last, end) - (marks[first] if first else start)
        for name, first, last in PHASES
    }
    return {"report": report, "seconds": end - start, "phases": phases}


def _row(store: str, count: int, measured: dict[str, Any]) -> dict[str, Any]:
    report = measured["report"]
    if report.status != "loaded" or report.rows != count * RECORDS_PER_SHARD:
        raise RuntimeError(f"tick did not load everything: {report}")
    return {
        "store": store,
        "shards": count,
        "tick_s": measured["seconds"],
        "ms_per_shard": measured["seconds"] * 1000 / count,
        **{f"{k}_s": v for k, v in measured["phases"].items()},
    }


def _local(count: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="dropload-bench-tick-"))
    try:
        return _row("local", count, measure_tick(prepare(folder, count)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _on_emulators(sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from bench.emulators import PROJECT, running_emulators

    rows = []
    with running_emulators() as endpoints:
        client = storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoints.gcs},
        )
        for count in sizes:
            bucket = f"dropload-bench-{count}"
            client.create_bucket(bucket)
            folder = Path(tempfile.mkdtemp(prefix="dropload-bench-gcs-"))
            try:
                config = prepare(
                    folder,
                    count,
                    {"url": f"gs://{bucket}/dl", "api_endpoint": endpoints.gcs},
                    {
                        "kind": "bigquery",
                        "project": PROJECT,
                        "api_endpoint": endpoints.bigquery,
                    },
                )
                rows.append(_row("gcs emulator", count, measure_tick(config)))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        client.close()
    return rows


if __name__ == "__main__":
    write_result("tick_cost", main())
