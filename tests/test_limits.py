"""Every BigQuery and Cloud Storage limit dropload names is pinned to its value."""

from __future__ import annotations

import pytest

from dropload import retry
from dropload.config import LoaderConfig
from dropload.loader import tick
from dropload.warehouse import base


def test_job_id_max_length() -> None:
    """BigQuery job ids have at most 1,024 characters."""
    assert base.JOB_ID_MAX_LENGTH == 1024


def test_source_uris_per_job() -> None:
    """A load job takes at most 10,000 source URIs."""
    assert base.MAX_SOURCE_URIS == 10_000


def test_files_per_job() -> None:
    """A load job reads at most 10,000,000 files."""
    assert base.MAX_FILES_PER_JOB == 10_000_000


def test_bytes_per_job() -> None:
    """A load job reads at most 15 TB."""
    assert base.MAX_BYTES_PER_JOB == 15_000_000_000_000


def test_ndjson_row_bytes() -> None:
    """An NDJSON row is at most 100 MB."""
    assert base.MAX_NDJSON_ROW_BYTES == 100 * 1024 * 1024


def test_loads_per_table_per_day() -> None:
    """BigQuery allows 1,500 load jobs per table per day, failures included."""
    assert base.LOADS_PER_TABLE_PER_DAY == 1500


def test_default_budget_leaves_headroom() -> None:
    """The default daily budget is 1,000 of the 1,500 BigQuery allows."""
    assert LoaderConfig().daily_job_budget == 1000


@pytest.mark.parametrize("budget", [0, base.LOADS_PER_TABLE_PER_DAY + 1])
def test_budget_cannot_leave_bigquerys_limit(budget: int) -> None:
    """A budget of 0 or above 1,500 is not a valid setting."""
    with pytest.raises(ValueError, match="daily_job_budget"):
        LoaderConfig(daily_job_budget=budget)


def test_budget_may_be_the_whole_limit() -> None:
    """A budget of exactly 1,500 is accepted."""
    limit = base.LOADS_PER_TABLE_PER_DAY
    assert LoaderConfig(daily_job_budget=limit).daily_job_budget == limit


def test_shards_per_batch_fit_one_job() -> None:
    """One batch claims at most 10,000 shards, within a job's file limit."""
    assert tick.MAX_SHARDS_PER_BATCH == 10_000
    assert tick.MAX_SHARDS_PER_BATCH <= base.MAX_FILES_PER_JOB


def test_attempts_per_tick() -> None:
    """A tick spends at most 3 job ids on a transiently failing batch."""
    assert tick.MAX_ATTEMPTS_PER_TICK == 3


def test_store_deadline() -> None:
    """A store call retries for at most 120 seconds."""
    assert retry.STORE_DEADLINE_SECONDS == 120.0


def test_transient_and_quota_reasons_are_disjoint() -> None:
    """No BigQuery reason counts both as transient and as a quota stop."""
    assert not retry.TRANSIENT_REASONS & retry.QUOTA_REASONS
    assert retry.is_quota_reason("quotaExceeded", "Quota exceeded: load jobs")
    assert not retry.is_quota_reason(
        "quotaExceeded", "Exceeded rate limits: too many table update operations"
    )


def test_partitions_per_load_job() -> None:
    """A load job modifies at most 4,000 partitions."""
    from dropload.partition import MAX_PARTITIONS_PER_JOB

    assert MAX_PARTITIONS_PER_JOB == 4000


def test_compose_sources_per_call() -> None:
    """Cloud Storage composes at most 32 sources in one call."""
    from dropload.store.base import MAX_COMPOSE_SOURCES

    assert MAX_COMPOSE_SOURCES == 32


def test_load_jobs_count_over_a_rolling_day() -> None:
    """The metrics count load jobs over a rolling 24 hours, as BigQuery does."""
    from datetime import timedelta

    from dropload import metrics

    assert timedelta(hours=24) == metrics.WINDOW


def test_a_mismatch_names_at_most_twenty_shards() -> None:
    """A reconciliation message names at most 20 shards and counts the rest."""
    from dropload import reconcile

    assert reconcile.MAX_NAMED_SHARDS == 20
