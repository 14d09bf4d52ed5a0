"""Warehouse error messages lose their quoted row values before logs and reports."""

from __future__ import annotations

from dropload.warehouse.base import redact_values


def test_quoted_values_are_replaced() -> None:
    """Single- and double-quoted values become an ellipsis."""
    message = "Could not convert string 'hunter2' to INT64: \"seven\""
    assert redact_values(message) == "Could not convert string '…' to INT64: \"…\""


def test_quoted_paths_stay() -> None:
    """A quoted path or URI (it holds a /) is kept: it names the shard."""
    message = 'Error in "gs://b/t/batches/x/s.ndjson" line 3: value "secret"'
    assert redact_values(message) == (
        'Error in "gs://b/t/batches/x/s.ndjson" line 3: value "…"'
    )
