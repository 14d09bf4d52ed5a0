"""A per-table lease in the store, so two loaders never work on one table at once.

The lease object is created only if absent; an expired lease is taken over only
at the generation that was read, so of two loaders racing for it one wins. The
holder renews it from a background thread while its tick runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
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


def new_owner() -> str:
    """An owner id for this loader process: host, pid and random bits."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Lease:
    """A held lease; renew it while working, release it when done."""

    store: Store
    table: str
    owner: str
    seconds: float
    generation: int
    lost: threading.Event

    @classmethod
    def acquire(cls, store: Store, table: str, owner: str, seconds: float) -> Lease:
        """Take the table's lease; raises LeaseHeld when another holds it."""
        name = layout.lease(table)
        current = store.stat(name)
        expected = 0 if current is None else current.generation
        if current is not None:
            holder, expires = _parse(store.read(name))
            if expires > datetime.now(UTC) and holder != owner:
                raise LeaseHeld(table, holder, expires)
            logger.warning("table %s: taking over expired lease of %s", table, holder)
        try:
            info = store.write(
                name, _body(owner, seconds), if_generation_match=expected
            )
        except (ObjectExists, PreconditionFailed):
            winner = store.stat(name)
            holder, expires = _parse(store.read(name)) if winner else ("?", _now())
            raise LeaseHeld(table, holder, expires) from None
        return cls(store, table, owner, seconds, info.generation, threading.Event())

    def renew(self) -> None:
        """Push the expiry out; marks the lease lost when another took it."""
        try:
            info = self.store.write(
                layout.lease(self.table),
                _body(self.owner, self.seconds),
                if_generation_match=self.generation,
            )
        except (PreconditionFailed, ObjectNotFound, ObjectExists):
            logger.error("table %s: lease lost to another loader", self.table)
            self.lost.set()
            return
        self.generation = info.generation

    def release(self) -> None:
        """Delete the lease if it is still ours."""
        try:
            self.store.delete(
                layout.lease(self.table), if_generation_match=self.generation
            )
        except (PreconditionFailed, ObjectNotFound):
            logger.warning("table %s: lease was no longer ours", self.table)
        except StoreError:
            logger.warning("table %s: could not release the lease", self.table)

    def keep_alive(self) -> threading.Event:
        """Renew every third of the lease period until the returned event is set."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.seconds / 3):
                try:
                    self.renew()
                except StoreError:
                    logger.warning("table %s: lease renewal failed", self.table)

        threading.Thread(target=loop, name=f"lease-{self.table}", daemon=True).start()
        return stop


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
