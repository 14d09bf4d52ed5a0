"""retry.py alone decides what is transient: by HTTP class and by `reason`."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as api_exceptions

from dropload import retry


@pytest.mark.parametrize(
    ("reason", "message", "outcome"),
    [
        ("backendError", "", "transient"),
        ("internalError", "", "transient"),
        ("rateLimitExceeded", "", "transient"),
        ("jobRateLimitExceeded", "", "transient"),
        (
            "quotaExceeded",
            "Exceeded rate limits: too many table update operations",
            "transient",
        ),
        ("quotaExceeded", "Quota exceeded: imports per table", "quota"),
        ("invalid", "Error while reading data", "terminal"),
        ("notFound", "Not found: URI", "terminal"),
        (None, "", "terminal"),
    ],
)
def test_a_failed_job_is_judged_by_its_reason(
    reason: str | None, message: str, outcome: str
) -> None:
    """Rate limits and backend errors retry, quotas pause, the rest is terminal."""
    assert retry.job_outcome(reason, message) == outcome


@pytest.mark.parametrize(
    "exc",
    [
        api_exceptions.TooManyRequests("slow down"),
        api_exceptions.ServiceUnavailable("later"),
        api_exceptions.InternalServerError("oops"),
        api_exceptions.Forbidden("rate", errors=[{"reason": "rateLimitExceeded"}]),
        api_exceptions.Forbidden("user", errors=[{"reason": "userRateLimitExceeded"}]),
        ConnectionResetError("reset"),
    ],
)
def test_transient_http_failures_are_repeated(exc: BaseException) -> None:
    """429, 5xx, lost connections and 403 rate limits are worth repeating."""
    assert retry.is_transient_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        api_exceptions.Forbidden("quota", errors=[{"reason": "quotaExceeded"}]),
        api_exceptions.Forbidden("denied", errors=[{"reason": "accessDenied"}]),
        api_exceptions.PreconditionFailed("412"),
        api_exceptions.Conflict("409"),
        api_exceptions.NotFound("404"),
        api_exceptions.BadRequest("invalid", errors=[{"reason": "invalid"}]),
    ],
)
def test_terminal_http_failures_are_not_repeated(exc: BaseException) -> None:
    """A quota, a refusal, a failed precondition or a conflict is never repeated."""
    assert not retry.is_transient_error(exc)


def test_the_reason_comes_from_the_first_error() -> None:
    """error_reason reads the `reason` BigQuery and Cloud Storage put in errors."""
    exc = api_exceptions.Forbidden("x", errors=[{"reason": "rateLimitExceeded"}])

    assert retry.error_reason(exc) == "rateLimitExceeded"
    assert retry.error_reason(ValueError("no reason")) is None


def test_retries_have_deadlines() -> None:
    """Store and API retries stop at their deadlines (120 s and 60 s)."""
    assert retry.store_retry().timeout == retry.STORE_DEADLINE_SECONDS == 120.0
    assert retry.api_retry().timeout == retry.API_DEADLINE_SECONDS == 60.0
