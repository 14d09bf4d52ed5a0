"""Which Cloud Storage and BigQuery failures are transient, decided in one place.

Everything that retries in dropload uses the retry objects built here, with a
deadline, so a call never loops forever and a terminal error is never retried.
"""

from __future__ import annotations

from typing import Literal

from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry

TRANSIENT_REASONS = frozenset(
    {
        "backendError",
        "internalError",
        "rateLimitExceeded",
        "userRateLimitExceeded",
        "jobRateLimitExceeded",
        "jobBackendError",
        "jobInternalError",
    }
)
"""Reasons (BigQuery and Cloud Storage) after which the same call, or a new job
attempt with a new job id, may work."""

QUOTA_REASONS = frozenset({"quotaExceeded"})
"""Reasons that mean the table or project ran out of jobs: pause, don't retry now."""

TABLE_UPDATE_LIMIT = "table update operations"
"""In a quotaExceeded message: the ~5 per 10 s per table limit, transient."""

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

Outcome = Literal["transient", "quota", "terminal"]
"""What a failed job means: try a new attempt, pause the table, or give up."""


def error_reason(exc: BaseException) -> str | None:
    """The `reason` of the first error an API exception carries, if any."""
    if not isinstance(exc, api_exceptions.GoogleAPICallError):
        return None
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason)
    for error in exc.errors or ():
        if isinstance(error, dict) and error.get("reason"):
            return str(error["reason"])
    return None


def is_transient_error(exc: BaseException) -> bool:
    """True for an HTTP failure or lost connection worth repeating the call for.

    A 403 counts when its reason is a rate limit (BigQuery answers some rate
    limits that way); a quotaExceeded never does.
    """
    if isinstance(exc, TRANSIENT_HTTP):
        return True
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return error_reason(exc) in TRANSIENT_REASONS
    import requests

    return isinstance(exc, requests.exceptions.ConnectionError | requests.Timeout)


def store_retry(deadline: float = STORE_DEADLINE_SECONDS) -> Retry:
    """Retry for Cloud Storage calls that a precondition makes safe to repeat."""
    return Retry(
        predicate=is_transient_error,
        initial=0.2,
        maximum=10.0,
        multiplier=2.0,
        timeout=deadline,
    )


def api_retry(deadline: float = API_DEADLINE_SECONDS) -> Retry:
    """Retry for idempotent BigQuery API calls (job get/insert with a job id)."""
    return Retry(
        predicate=is_transient_error,
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

TABLE_LEVEL_TEXTS = (
    "provided schema does not match table",
    "not found: table",
    "already exists: table",
    "cannot add required field",
)
"""Words of `invalid` failures that come from the table, not from one shard:
every batch would fail the same way, so no shard is quarantined for them."""


def job_outcome(reason: str | None, message: str = "") -> Outcome:
    """Judge a job DONE with an error result by its `reason` (and message)."""
    if reason in QUOTA_REASONS:
        table_update = TABLE_UPDATE_LIMIT in message.lower()
        return "transient" if table_update else "quota"
    return "transient" if reason in TRANSIENT_REASONS else "terminal"


def is_transient_reason(reason: str | None, message: str = "") -> bool:
    """True when a job that failed for `reason` may succeed on a new attempt."""
    return job_outcome(reason, message) == "transient"


def is_quota_reason(reason: str | None, message: str = "") -> bool:
    """True when the failure means the load-job quota ran out."""
    return job_outcome(reason, message) == "quota"


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
