"""dropload: stage records in Cloud Storage, load them with one job per tick."""

from __future__ import annotations

from dropload.config import Config, load_config
from dropload.errors import (
    BudgetExhausted,
    ConfigError,
    DroploadError,
    JobFailed,
    LeaseHeld,
    ObjectExists,
    ObjectNotFound,
    PreconditionFailed,
    RecordError,
    StoreError,
    StoreUnavailable,
    WarehouseError,
)
from dropload.loader import Loader, TickReport
from dropload.stager import BufferFull, Stager

__version__ = "0.1.0"

__all__ = [
    "BudgetExhausted",
    "BufferFull",
    "Config",
    "ConfigError",
    "DroploadError",
    "JobFailed",
    "LeaseHeld",
    "Loader",
    "ObjectExists",
    "ObjectNotFound",
    "PreconditionFailed",
    "RecordError",
    "Stager",
    "StoreError",
    "StoreUnavailable",
    "TickReport",
    "WarehouseError",
    "__version__",
    "load_config",
]
