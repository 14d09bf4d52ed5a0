"""Intents (what a tick is about to do) and manifests (what a batch loaded).

Both are small JSON objects in the store. An intent is written before any shard
moves, so a tick that dies anywhere can be finished by the next one; a manifest
is written into the archive before the shards, so replays never guess.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from dropload.shard import job_id as make_job_id

VERSION = 1


@dataclass(frozen=True)
class ShardEntry:
    """One shard of a batch, as it was when claimed."""

    name: str
    """Base name (the same in staging, batch and archive folders)."""
    generation: int
    size: int
    rows: int | None = None
    partitions: tuple[str, ...] | None = None
    """Partition ids its rows cover, from the stager; None when unknown."""

    def __post_init__(self) -> None:
        if isinstance(self.partitions, list):
            object.__setattr__(self, "partitions", tuple(self.partitions))


@dataclass(frozen=True)
class Intent:
    """A batch a tick has started: its shards and the job that loads them."""

    table: str
    batch_id: str
    created: datetime
    shards: tuple[ShardEntry, ...]
    attempt: int = 1
    attempts_log: tuple[str, ...] = ()
    """Job ids of earlier attempts and why each ended, for the manifest."""

    @property
    def job_id(self) -> str:
        """The job id of the current attempt."""
        return make_job_id(self.table, self.batch_id, self.attempt)

    @property
    def size(self) -> int:
        """Bytes in the batch's shards."""
        return sum(s.size for s in self.shards)

    def next_attempt(self, why: str) -> Intent:
        """The same batch with a new attempt number (a new job id)."""
        log = (*self.attempts_log, f"{self.job_id}: {why}")
        return replace(self, attempt=self.attempt + 1, attempts_log=log)

    def without(self, names: set[str]) -> Intent:
        """The same batch less the shards named."""
        kept = tuple(s for s in self.shards if s.name not in names)
        return replace(self, shards=kept)

    def to_json(self) -> bytes:
        """Serialise for the store."""
        return _dump({"version": VERSION, **asdict(self)})

    @classmethod
    def from_json(cls, data: bytes) -> Intent:
        """Parse what `to_json` wrote; raises ValueError."""
        raw = _load(data)
        return cls(
            table=raw["table"],
            batch_id=raw["batch_id"],
            created=_time(raw["created"]),
            shards=tuple(ShardEntry(**s) for s in raw["shards"]),
            attempt=int(raw["attempt"]),
            attempts_log=tuple(raw.get("attempts_log", ())),
        )


@dataclass(frozen=True)
class Manifest:
    """What one archived batch holds and which job loaded it."""

    table: str
    destination: str
    batch_id: str
    job_id: str
    attempt: int
    day: str
    shards: tuple[ShardEntry, ...]
    rows: int
    byte_count: int
    format: str
    claimed_at: datetime
    loaded_at: datetime
    partitions: tuple[str, ...] = ()
    attempts_log: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """Serialise for the store."""
        return _dump({"version": VERSION, **asdict(self)})

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse what `to_json` wrote; raises ValueError."""
        raw = _load(data)
        raw["shards"] = tuple(ShardEntry(**s) for s in raw["shards"])
        raw["claimed_at"] = _time(raw["claimed_at"])
        raw["loaded_at"] = _time(raw["loaded_at"])
        raw["partitions"] = tuple(raw.get("partitions", ()))
        raw["attempts_log"] = tuple(raw.get("attempts_log", ()))
        raw.pop("version", None)
        return cls(**raw)


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, default=_encode, sort_keys=True, indent=1).encode()


def _load(data: bytes) -> dict[str, Any]:
    raw = json.loads(data)
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        raise ValueError(f"not a version {VERSION} dropload document")
    return raw


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
