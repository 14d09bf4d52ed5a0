"""The stager: the writers' side of dropload."""

from __future__ import annotations

from dropload.stager.stager import BufferFull, Stager

__all__ = ["BufferFull", "Stager"]
