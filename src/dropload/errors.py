"""Exceptions raised by dropload; every one names what failed and what to do.

The tree::

    DroploadError
    ├── ConfigError            a setting, a schema file or a table name is wrong
    ├── RecordError            append() refused a record (names table and field)
    ├── StoreError             an object store operation failed
    │   ├── ObjectExists       create-if-absent found the object there already
    │   ├── PreconditionFailed the object's generation was not the expected one
    │   ├── ObjectNotFound     the object is not there
    │   └── StoreUnavailable   the store did not answer after retries
    ├── WarehouseError         the warehouse refused or failed an operation
    │   └── JobFailed          a load job ended with an error result
    ├── LeaseHeld              another loader works on the table right now
    ├── BudgetExhausted        the table has spent its load-job budget
    ├── ArchiveError           a manifest of the archive cannot be read
    └── ReplayRefused          a replay would do harm or cannot run
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class DroploadError(Exception):
    """Base of every error dropload raises on purpose.

    Errors survive pickling (a multiprocessing worker hands them to its parent)
    with their message and attributes, whatever their constructor takes.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


def _rebuild(
    cls: type[DroploadError], message: str, attributes: dict[str, Any]
) -> DroploadError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error


class ConfigError(DroploadError):
    """A configuration key, schema file or name is missing or has a bad value."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config {key}: {problem}")


class RecordError(DroploadError):
    """A record does not fit its table's schema; nothing was staged for it."""

    def __init__(self, table: str, field: str, problem: str) -> None:
        self.table = table
        self.field = field
        self.problem = problem
        super().__init__(f"table {table}: field {field}: {problem}")


class StoreError(DroploadError):
    """An operation on an object of the store failed."""

    def __init__(self, object_name: str, problem: str) -> None:
        self.object_name = object_name
        self.problem = problem
        super().__init__(f"object {object_name}: {problem}")


class ObjectExists(StoreError):
    """A create-if-absent write found the object already there."""

    def __init__(self, object_name: str) -> None:
        super().__init__(object_name, "already exists; shards are never overwritten")


class PreconditionFailed(StoreError):
    """The object changed since it was read (its generation differs)."""

    def __init__(self, object_name: str, expected: int | None = None) -> None:
        self.expected = expected
        super().__init__(
            object_name,
            f"generation is no longer {expected}; another process changed it",
        )


class ObjectNotFound(StoreError):
    """The object does not exist (any more)."""

    def __init__(self, object_name: str) -> None:
        super().__init__(object_name, "not found")


class StoreUnavailable(StoreError):
    """The store did not answer, even after retries."""


class WarehouseError(DroploadError):
    """The warehouse refused an operation or could not be reached."""


class JobFailed(WarehouseError):
    """A load job is DONE with an error result."""

    def __init__(self, job_id: str, reason: str, message: str) -> None:
        self.job_id = job_id
        self.reason = reason
        self.message = message
        super().__init__(f"job {job_id}: failed ({reason}): {message}")


class LeaseHeld(DroploadError):
    """Another loader holds the table's lease; this tick skips the table."""

    def __init__(self, table: str, holder: str, expires: datetime) -> None:
        self.table = table
        self.holder = holder
        self.expires = expires
        super().__init__(
            f"table {table}: lease held by {holder} until {expires:%Y-%m-%dT%H:%M:%SZ};"
            " skipped this tick"
        )


class BudgetExhausted(DroploadError):
    """The table has no load jobs left in its rolling 24-hour budget."""

    def __init__(self, table: str, used: int, budget: int) -> None:
        self.table = table
        self.used = used
        self.budget = budget
        super().__init__(
            f"table {table}: {used} load jobs in the last 24 hours reach the budget"
            f" of {budget}; staged shards wait for the window to free up"
        )


class ArchiveError(DroploadError):
    """A manifest of the archive is unreadable; names it and what to do."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(
            f"manifest {name}: {problem}; move it out of the archive or restore it"
        )


class ReplayRefused(DroploadError):
    """A replay that would do harm or cannot run; says why and what to do."""

    def __init__(self, table: str, problem: str) -> None:
        self.table = table
        self.problem = problem
        super().__init__(f"table {table}: replay refused: {problem}")
