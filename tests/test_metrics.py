"""Prometheus metrics: scraped over HTTP while a tick runs."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dropload import Loader, Stager, layout
from dropload.metrics import LoaderMetrics, start_metrics_server
from dropload.shard import new_shard_name
from dropload.store import ROWS_METADATA
from embedded import Project, make_project, records

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

TABLES = {
    "events": {"destination": "ds.events"},
    "other": {"destination": "ds.other"},
    "broken": {"destination": "ds.broken"},
}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """Three tables whose stagers write a shard every 5 records."""
    return make_project(tmp_path, stager={"max_records": 5}, tables=TABLES)


def _stage(project: Project, table: str, first: int, stop: int) -> None:
    with Stager(project.config, table) as stager:
        stager.extend(records(first, stop))


def _put(project: Project, name: str, body: bytes, rows: int = 1) -> None:
    project.store().write(name, body, metadata={ROWS_METADATA: str(rows)})


def _scrape(port: int) -> Samples:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def metered(
    project: Project,
) -> Iterator[tuple[Loader, dict[str, int], list[Samples]]]:
    """A metered loader, its metrics port, and the scrapes its armed hook took."""
    scrapes: list[Samples] = []
    box: dict[str, int] = {"armed": 0}

    def step(name: str) -> None:
        if name == "close-intent" and box["armed"] and not scrapes:
            scrapes.append(_scrape(box["port"]))

    loader = Loader(project.config, step_hook=step)
    metrics = LoaderMetrics(
        project.config,
        lambda: loader.store,
        lambda: loader.warehouse,
        refresh_seconds=0,
    )
    loader.metrics = metrics
    server, box["port"] = start_metrics_server(metrics, "127.0.0.1", 0)
    yield loader, box, scrapes
    server.shutdown()
    server.server_close()
    loader.close()


def test_a_scrape_during_a_tick_finds_the_figures(
    project: Project, metered: tuple[Loader, dict[str, int], list[Samples]]
) -> None:
    """Staged, quarantined, loaded, failed and budget figures, scraped mid-tick."""
    loader, box, scrapes = metered
    _put(project, layout.staging("broken") + new_shard_name("ndjson"), b"{not json\n")
    (failed,) = loader.run_once(["broken"])
    _stage(project, "events", 0, 15)
    _stage(project, "other", 100, 110)
    quarantined = layout.quarantine("events") + new_shard_name("ndjson")
    _put(project, quarantined, b'{"id": 1}\n')
    _put(project, quarantined + layout.ERROR_SUFFIX, b"{}")

    box["armed"] = 1
    (loaded,) = loader.run_once(["events"])
    after = _scrape(box["port"])

    assert (len(failed.jobs), failed.quarantined, loaded.status) == (1, 1, "loaded")
    (during,) = scrapes
    assert _value(during, "dropload_staged_shards", table="other") == 2
    assert _value(during, "dropload_staged_bytes", table="other") > 0
    age = _value(during, "dropload_oldest_staged_shard_age_seconds", table="other")
    assert age >= 0
    assert _value(during, "dropload_staged_shards", table="events") == 0
    assert _value(during, "dropload_open_batches", table="events") == 1
    assert _value(during, "dropload_quarantined_shards", table="events") == 1
    assert _value(during, "dropload_quarantined_shards", table="broken") == 1
    assert _value(during, "dropload_rows_loaded_total", table="events") == 15
    assert _value(during, "dropload_load_jobs_last_24h", table="events") == 1
    assert _value(during, "dropload_load_jobs_last_24h", table="broken") == 1
    assert _value(during, "dropload_failed_load_jobs_last_24h", table="broken") == 1
    assert (
        _value(
            during, "dropload_failed_load_jobs_total", table="broken", reason="invalid"
        )
        == 1
    )
    assert (
        _value(during, "dropload_load_job_duration_seconds_count", table="events") == 1
    )
    assert _value(
        during, "dropload_load_job_budget", table="events", kind="budget"
    ) == (1000)
    assert _value(during, "dropload_load_job_budget", table="events", kind="limit") == (
        1500
    )
    assert _value(after, "dropload_shards_loaded_total", table="events") == 3
    assert _value(after, "dropload_ticks_total", table="events", status="loaded") == 1
    assert _value(after, "dropload_open_batches", table="events") == 0


def test_a_job_fetched_again_counts_once(project: Project) -> None:
    """A job answered twice (recovery, 409) adds its rows once."""
    loader = Loader(project.config)
    metrics = LoaderMetrics(
        project.config, lambda: loader.store, lambda: loader.warehouse
    )
    _stage(project, "events", 0, 5)
    (report,) = loader.run_once(["events"])
    result = loader.warehouse.get_job(report.jobs[0])
    assert result is not None

    metrics.observe_job("events", result)
    metrics.observe_job("events", result)

    value = metrics.registry.get_sample_value(
        "dropload_rows_loaded_total", {"table": "events"}
    )
    loader.close()
    assert value == 5
