"""A per-table lease in the store, so two loaders never work on one table at once.

The lease object is created only if absent; an expired lease (or one whose holder
died on this host) is taken over only at the generation that was read, so of two
loaders racing for it one wins. The holder renews it from a background thread
and stops acting once it could no longer be sure the lease is still its own.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dropload import layout
from dropload.errors import (
    LeaseHeld,
    ObjectExists,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
)
from dropload.store.base import Store

logger = logging.getLogger(__name__)

SAFETY_FRACTION = 1 / 6
"""A holder stops acting when less than this part of the lease period remains
since its last confirmed renewal: time for one store call (120 s of retries at
the default 900 s lease) to finish before another loader may take over."""

RENEWALS_PER_PERIOD = 3
"""Renewals per lease period; one may fail and the lease still holds."""

OBJECT_WRITE_INTERVAL_SECONDS = 1.0
"""Cloud Storage allows about one write per second to one object name; a
confirmation sooner than this after the last write is skipped."""


def new_owner() -> str:
    """An owner id for this loader process: host, pid, pid namespace, start, random.

    The middle parts let a loader on the same host see that a holder has died.
    """
    pid = os.getpid()
    return (
        f"{socket.gethostname()}:{pid}:{_pid_namespace()}:{_started(pid)}:"
        + (uuid.uuid4().hex[:8])
    )


@dataclass
class Lease:
    """A held lease; renew it while working, release it when done."""

    store: Store
    table: str
    owner: str
    seconds: float
    generation: int
    lost: threading.Event
    valid_until: float = field(default=0.0)
    """time.monotonic() until which the lease is surely ours."""
    _renewing: threading.Lock = field(default_factory=threading.Lock)
    _released: bool = False
    _written: float = field(default=0.0)
    """time.monotonic() when our last write of the lease started."""

    @classmethod
    def acquire(cls, store: Store, table: str, owner: str, seconds: float) -> Lease:
        """Take the table's lease; raises LeaseHeld when another holds it."""
        name = layout.lease(table)
        current = store.stat(name)
        expected = 0 if current is None else current.generation
        if current is not None:
            _check_takeover(store, table, owner)
        started = time.monotonic()
        try:
            info = store.write(
                name, _body(owner, seconds), if_generation_match=expected
            )
        except (ObjectExists, PreconditionFailed):
            return cls._after_conflict(store, table, owner, seconds)
        lease = cls(store, table, owner, seconds, info.generation, threading.Event())
        lease.valid_until = started + seconds
        lease._written = started
        return lease

    @classmethod
    def _after_conflict(
        cls, store: Store, table: str, owner: str, seconds: float
    ) -> Lease:
        """Our write lost the race, or its answer was lost and the retry saw it."""
        holder, expires, generation = _read(store, layout.lease(table))
        if holder != owner:
            raise LeaseHeld(table, holder, expires)
        logger.info("table %s: lease write was answered late; it is ours", table)
        lease = cls(store, table, owner, seconds, generation, threading.Event())
        lease.renew()
        if lease.lost.is_set():
            raise LeaseHeld(table, "another loader", expires)
        return lease

    def confirm(self) -> None:
        """Renew now, unless the last write was under a second ago.

        A renewal is a conditional write: it fails (and marks the lease lost)
        when another loader took the lease over, so a tick confirms before it
        moves shards or starts a job.
        """
        if time.monotonic() - self._written >= OBJECT_WRITE_INTERVAL_SECONDS:
            self.renew()

    def held(self) -> bool:
        """True while the lease is surely ours (renewed recently, never lost)."""
        margin = self.seconds * SAFETY_FRACTION
        return not self.lost.is_set() and time.monotonic() < self.valid_until - margin

    def renew(self) -> None:
        """Push the expiry out; marks the lease lost when another took it."""
        with self._renewing:
            if not self._released:
                self._renew()

    def _renew(self) -> None:
        started = time.monotonic()
        try:
            info = self.store.write(
                layout.lease(self.table),
                _body(self.owner, self.seconds),
                if_generation_match=self.generation,
            )
        except (PreconditionFailed, ObjectNotFound, ObjectExists):
            self._after_renew_conflict(started)
            return
        self.generation = info.generation
        self.valid_until = started + self.seconds
        self._written = started

    def _after_renew_conflict(self, started: float) -> None:
        try:
            holder, _, generation = _read(self.store, layout.lease(self.table))
        except StoreError:
            holder, generation = "?", 0
        if holder == self.owner:
            # Our renewal landed but its answer was lost; the retry saw a 412.
            self.generation = generation
            self.valid_until = started + self.seconds
            return
        logger.error("table %s: lease lost to another loader", self.table)
        self.lost.set()

    def release(self) -> None:
        """Delete the lease if it is still ours; no renewal happens after this."""
        with self._renewing:
            self._released = True
        try:
            self.store.delete(
                layout.lease(self.table), if_generation_match=self.generation
            )
        except (PreconditionFailed, ObjectNotFound):
            logger.warning("table %s: lease was no longer ours", self.table)
        except StoreError:
            logger.warning("table %s: could not release the lease", self.table)

    def keep_alive(self) -> threading.Event:
        """Renew a few times per period until the returned event is set."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.seconds / RENEWALS_PER_PERIOD):
                try:
                    self.renew()
                except StoreError:
                    logger.warning("table %s: lease renewal failed", self.table)

        threading.Thread(target=loop, name=f"lease-{self.table}", daemon=True).start()
        return stop


def holder_is_dead(holder: str) -> bool:
    """True when `holder` ran on this host, in this pid namespace, and has exited.

    False whenever that cannot be told for sure (another host, an old-style id).
    """
    parts = holder.rsplit(":", 4)
    if len(parts) != 5:
        return False
    host, pid, namespace, started, _ = parts
    if host != socket.gethostname() or namespace != _pid_namespace():
        return False
    if not pid.isdigit() or started in ("0", "gone"):
        return False
    return _started(int(pid)) != started


def _check_takeover(store: Store, table: str, owner: str) -> None:
    holder, expires, _ = _read(store, layout.lease(table))
    if holder == owner:
        return
    if expires > _now():
        if not holder_is_dead(holder):
            raise LeaseHeld(table, holder, expires)
        logger.warning("table %s: holder %s has exited; taking over", table, holder)
        return
    logger.warning("table %s: taking over expired lease of %s", table, holder)


def _read(store: Store, name: str) -> tuple[str, datetime, int]:
    """Holder, expiry and generation of the lease (generation read first)."""
    info = store.stat(name)
    if info is None:
        return "nobody", _now(), 0
    try:
        holder, expires = _parse(store.read(name))
    except ObjectNotFound:
        return "nobody", _now(), 0
    return holder, expires, info.generation


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def _started(pid: int) -> str:
    """The process's start time in clock ticks since boot, "0" when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
    except OSError:
        return "gone"
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else "0"


def _now() -> datetime:
    return datetime.now(UTC)


def _body(owner: str, seconds: float) -> bytes:
    expires = _now() + timedelta(seconds=seconds)
    return json.dumps({"owner": owner, "expires": expires.isoformat()}).encode()


def _parse(data: bytes) -> tuple[str, datetime]:
    try:
        raw = json.loads(data)
        return str(raw["owner"]), datetime.fromisoformat(raw["expires"])
    except (ValueError, KeyError, TypeError):
        return "unreadable lease", _now()
