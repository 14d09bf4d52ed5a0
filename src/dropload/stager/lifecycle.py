"""Flush open stagers by age, at interpreter exit and on SIGTERM.

One daemon thread per process checks every open stager's oldest record; an
atexit hook and a SIGTERM handler (installed only where none is set) flush them
all, so records appended just before a process ends still reach the store.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dropload.stager.stager import Stager

logger = logging.getLogger(__name__)

_TICK_SECONDS = 0.25
"""How often the age thread looks at the buffers."""

_open: weakref.WeakSet[Stager] = weakref.WeakSet()
_guard = threading.Lock()
_started: dict[str, Any] = {}


def register(stager: Stager) -> None:
    """Watch `stager` until it is closed or garbage collected."""
    with _guard:
        _open.add(stager)
        if _started.get("pid") != os.getpid():
            _started["pid"] = os.getpid()
            threading.Thread(target=_age_loop, name="dropload-age", daemon=True).start()
            atexit.register(flush_all)
            _install_sigterm()


def _forget_inherited() -> None:
    """In a forked child, the parent's stagers and their buffers stay the parent's.

    The child would otherwise write the parent's buffered records a second time
    (at exit, on SIGTERM or by age); it must build its own Stager instead.
    """
    global _guard
    _guard = threading.Lock()
    for stager in list(_open):
        stager.forget_after_fork()
    _open.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited)


def unregister(stager: Stager) -> None:
    """Stop watching a closed stager."""
    with _guard:
        _open.discard(stager)


def flush_all() -> None:
    """Close every open stager; errors are logged, not raised."""
    with _guard:
        stagers = list(_open)
    for stager in stagers:
        try:
            stager.close()
        except Exception:
            logger.exception("table %s: flush at exit failed", stager.table.name)


def _age_loop() -> None:
    while True:
        time.sleep(_TICK_SECONDS)
        with _guard:
            stagers = list(_open)
        now = time.monotonic()
        for stager in stagers:
            try:
                stager.flush_if_old(now)
            except Exception:
                logger.exception("table %s: timed flush failed", stager.table.name)


def _install_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # The handler runs in the main thread, which may hold a stager's lock in
        # the middle of append(); flushing here would wait for it forever. A
        # second SIGTERM during the flush ends the process at once.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        threading.Thread(target=_flush_and_die, name="dropload-sigterm").start()

    signal.signal(signal.SIGTERM, on_sigterm)


def _flush_and_die() -> None:
    """Close every stager, then end the process as SIGTERM would have."""
    flush_all()
    os.kill(os.getpid(), signal.SIGTERM)
