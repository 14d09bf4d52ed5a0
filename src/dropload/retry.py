"""Which Cloud Storage and BigQuery failures are transient, decided in one place.

Everything that retries in dropload uses the retry objects built here, with a
deadline, so a call never loops forever and a terminal error is never retried.
"""

from __future__ import annotations

from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry

TRANSIENT_REASONS = frozenset(
    {
        "backendError",
        "internalError",
        "rateLimitExceeded",
        "jobRateLimitExceeded",
        "jobBackendError",
        "jobInternalError",
    }
)
"""BigQuery error reasons after which a new attempt (with a new job id) may work."""

QUOTA_REASONS = frozenset({"quotaExceeded"})
"""Reasons that mean the table or project ran out of jobs: pause, don't retry now."""

_TABLE_UPDATES = "table update operations"

TRANSIENT_HTTP = (
    api_exceptions.TooManyRequests,
    api_exceptions.InternalServerError,
    api_exceptions.BadGateway,
    api_exceptions.ServiceUnavailable,
    api_exceptions.GatewayTimeout,
    ConnectionError,
    TimeoutError,
)
"""HTTP answers (and lost connections) worth repeating the same request for."""

STORE_DEADLINE_SECONDS = 120.0
"""How long one store call may keep retrying before the caller gets an error."""

API_DEADLINE_SECONDS = 60.0
"""How long one BigQuery API call may keep retrying before the caller gets an error."""


def _is_transient_http(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_HTTP):
        return True
    import requests

    return isinstance(exc, requests.exceptions.ConnectionError | requests.Timeout)


def store_retry(deadline: float = STORE_DEADLINE_SECONDS) -> Retry:
    """Retry for Cloud Storage calls that a precondition makes safe to repeat."""
    return Retry(
        predicate=_is_transient_http,
        initial=0.2,
        maximum=10.0,
        multiplier=2.0,
        timeout=deadline,
    )


def api_retry(deadline: float = API_DEADLINE_SECONDS) -> Retry:
    """Retry for idempotent BigQuery API calls (job get/insert with a job id)."""
    return Retry(
        predicate=_is_transient_http,
        initial=0.5,
        maximum=10.0,
        multiplier=2.0,
        timeout=deadline,
    )


DATA_REASONS = frozenset({"invalid"})
"""Reasons of a job that failed on the data it read: bad JSON, wrong types, a
schema mismatch. Its shards are checked and the bad ones quarantined."""

JOB_BACKOFF_INITIAL_SECONDS = 2.0
"""First wait before a new attempt of a transiently failed job; 5 table updates
per 10 s means about 2 s between them."""

JOB_BACKOFF_MAXIMUM_SECONDS = 32.0
"""Longest wait between attempts of a transiently failed job."""


def is_transient_reason(reason: str | None, message: str = "") -> bool:
    """True when a job that failed for `reason` may succeed on a new attempt.

    "Too many table update operations" is a short rate limit even when BigQuery
    files it under quotaExceeded: retry it, don't pause the table.
    """
    if reason in QUOTA_REASONS:
        return _TABLE_UPDATES in message.lower()
    return reason in TRANSIENT_REASONS


TABLE_LEVEL_TEXTS = (
    "provided schema does not match table",
    "not found: table",
    "already exists: table",
    "cannot add required field",
)
"""Words of `invalid` failures that come from the table, not from one shard:
every batch would fail the same way, so no shard is quarantined for them."""


def is_data_reason(reason: str | None, message: str = "") -> bool:
    """True when the job failed on the data it read (its shards are suspects)."""
    text = message.lower()
    if any(words in text for words in TABLE_LEVEL_TEXTS):
        return False
    return reason in DATA_REASONS


def job_backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt` + 1 of a transiently failed job."""
    delay = JOB_BACKOFF_INITIAL_SECONDS * 2 ** max(attempt - 1, 0)
    return float(min(delay, JOB_BACKOFF_MAXIMUM_SECONDS))


def is_quota_reason(reason: str | None, message: str = "") -> bool:
    """True when the failure means the load-job quota ran out."""
    if reason in QUOTA_REASONS:
        return _TABLE_UPDATES not in message.lower()
    return False
