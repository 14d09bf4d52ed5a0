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


def is_transient_reason(reason: str | None, message: str = "") -> bool:
    """True when a job that failed for `reason` may succeed on a new attempt.

    "Too many table update operations" is a short rate limit even when BigQuery
    files it under quotaExceeded: retry it, don't pause the table.
    """
    if reason in QUOTA_REASONS:
        return _TABLE_UPDATES in message.lower()
    return reason in TRANSIENT_REASONS


def is_quota_reason(reason: str | None, message: str = "") -> bool:
    """True when the failure means the load-job quota ran out."""
    if reason in QUOTA_REASONS:
        return _TABLE_UPDATES not in message.lower()
    return False
