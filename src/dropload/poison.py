"""Find the shards that made a load job fail on their data, cheapest way first.

First the job's own words: error locations and messages that name a shard.
Then a local check of every shard of the batch against the table's schema
(`RecordCodec`), which costs no load job. Only when both name nothing does the
tick split the batch and spend extra jobs (see `split_batch`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dropload.config import TableConfig
from dropload.encoding import decode_shard
from dropload.errors import ObjectNotFound, RecordError
from dropload.schema import RecordCodec, SchemaField
from dropload.store.base import ObjectInfo, Store
from dropload.warehouse.base import JobResult

logger = logging.getLogger(__name__)


def named_shards(result: JobResult, names: Iterable[str]) -> dict[str, str]:
    """Shards the job's errors name, each with the first message naming it."""
    found: dict[str, str] = {}
    messages = _messages_by_shard(result)
    for name in names:
        for place, message in messages:
            if name in place:
                found.setdefault(name, message)
    return found


def _messages_by_shard(result: JobResult) -> list[tuple[str, str]]:
    pairs = [(result.error_message or "", result.error_message or "")]
    for error in result.errors:
        message = str(error.get("message") or result.error_message or "")
        place = f"{error.get('location') or ''} {message}"
        pairs.append((place, message))
    return pairs


class ShardChecker:
    """Reads shards and checks every row against the table's schema."""

    def __init__(self, table: TableConfig, fields: Sequence[SchemaField]) -> None:
        self.table = table
        self._codec = RecordCodec(table.name, fields)
        self._known = {f.name.lower() for f in fields}

    def problem(self, store: Store, info: ObjectInfo) -> str | None:
        """What is wrong with the shard's data, or None when every row fits."""
        try:
            data = store.read(info.name)
        except ObjectNotFound:
            return None
        rows = 0
        try:
            for row in decode_shard(self.table.format, data):
                rows += 1
                self._codec.to_json_row(self._known_fields(row))
        except RecordError as exc:
            return f"row {rows}: field {exc.field}: {exc.problem}"
        except ValueError as exc:
            return str(exc)
        return None

    def bad_shards(self, store: Store, shards: Iterable[ObjectInfo]) -> dict[str, str]:
        """Each shard whose data does not fit, with what is wrong."""
        found = {}
        for info in shards:
            problem = self.problem(store, info)
            if problem is not None:
                found[info.basename] = f"checked locally: {problem}"
        return found

    def _known_fields(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        if not self.table.ignore_unknown_values:
            return row
        return {k: v for k, v in row.items() if k.lower() in self._known}


def split_batch(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The older half of a batch to load now and the newer half to put back."""
    half = (len(names) + 1) // 2
    return list(names[:half]), list(names[half:])
