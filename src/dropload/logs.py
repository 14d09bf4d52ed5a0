"""Structured fields for log records: the table, batch and job id of a line.

Pass `extra=log_fields(...)` to a log call; the JSON formatter of
`--log-format json` writes them as fields of their own.
"""

from __future__ import annotations

from dropload.manifest import Intent
from dropload.warehouse.base import JobResult

FIELDS = ("table", "batch_id", "job_id")
"""The field names, in the order the JSON formatter writes them."""


def log_fields(
    intent: Intent | None = None,
    result: JobResult | None = None,
    *,
    table: str | None = None,
) -> dict[str, str]:
    """The `extra=` mapping for a log call about a table, batch or job."""
    fields: dict[str, str] = {}
    name = table or (intent.table if intent is not None else None)
    if name:
        fields["table"] = name
    if intent is not None:
        fields["batch_id"] = intent.batch_id
        fields["job_id"] = intent.job_id
    if result is not None:
        fields["job_id"] = result.job_id
    return fields
