"""Shard and batch names: unique across threads, processes and hosts, sorted by time.

A shard name is ``<UTC time>-<host>-<pid>-<random>-<sequence><suffix>``: the time
first so names sort oldest first, then the host's hash, the process id, 64
random bits drawn once per process (re-drawn after a fork) and a counter under a
lock. Writes are create-if-absent anyway, so even a collision overwrites nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import secrets
import socket
import threading
from datetime import UTC, datetime

SHARD_NAME = re.compile(
    r"^(?P<time>\d{8}T\d{12}Z)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-"
    r"(?P<nonce>[0-9a-f]{16})-(?P<seq>\d{6,})\.(?P<format>ndjson|avro)$"
)
"""What a shard's base name looks like; anything else in staging is ignored."""

BATCH_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
"""A batch id: its claim time and 32 random bits."""

_lock = threading.Lock()
_state: dict[str, object] = {}


def _process_identity() -> tuple[str, int, str, itertools.count[int]]:
    pid = os.getpid()
    if _state.get("pid") != pid:
        host = socket.gethostname().encode()
        _state.update(
            pid=pid,
            host=hashlib.blake2s(host, digest_size=4).hexdigest(),
            nonce=secrets.token_hex(8),
            counter=itertools.count(),
        )
    return (
        str(_state["host"]),
        pid,
        str(_state["nonce"]),
        _state["counter"],  # type: ignore[return-value]
    )


def new_shard_name(fmt: str, now: datetime | None = None) -> str:
    """A fresh shard base name for format `fmt` (`ndjson` or `avro`)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    with _lock:
        host, pid, nonce, counter = _process_identity()
        seq = next(counter)
    return f"{moment:%Y%m%dT%H%M%S%f}Z-{host}-{pid}-{nonce}-{seq:06d}.{fmt}"


def is_shard_name(name: str) -> bool:
    """True when `name` (a base name) is a shard dropload wrote."""
    return SHARD_NAME.match(name) is not None


def shard_time(name: str) -> datetime:
    """When the shard was named (UTC), from its name; raises ValueError."""
    found = SHARD_NAME.match(name)
    if found is None:
        raise ValueError(f"{name!r} is not a shard name")
    return datetime.strptime(found["time"], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def new_batch_id(now: datetime | None = None) -> str:
    """A fresh batch id: claim time and random bits."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}Z-{secrets.token_hex(4)}"


def job_id(table: str, batch_id: str, attempt: int) -> str:
    """The load job id of a batch's attempt: the same batch, the same id."""
    return f"dropload-{table}-{batch_id}-{attempt}"
