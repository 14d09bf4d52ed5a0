"""The loader: ticks that claim each table's staged shards and load them."""

from __future__ import annotations

from dropload.loader.runner import Loader
from dropload.loader.tick import TableTick, TickReport

__all__ = ["Loader", "TableTick", "TickReport"]
