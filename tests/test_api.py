"""The public API: what `dropload` exports, and that it ships its type hints."""

from __future__ import annotations

import pickle
from importlib import resources

import pytest

import dropload
from dropload import (
    ConfigError,
    DroploadError,
    ObjectExists,
    PreconditionFailed,
    RecordError,
    StoreUnavailable,
)

EXPECTED = [
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


def test_all_is_the_pinned_public_api() -> None:
    """`dropload.__all__` is exactly the documented names."""
    assert dropload.__all__ == EXPECTED


def test_all_is_sorted() -> None:
    """`__all__` is kept sorted, so additions show in review."""
    assert dropload.__all__ == sorted(dropload.__all__)


def test_every_exported_name_exists() -> None:
    """Each name in `__all__` is an attribute of the package."""
    missing = [name for name in dropload.__all__ if not hasattr(dropload, name)]
    assert missing == []


def test_errors_share_one_base() -> None:
    """Every exported exception derives from DroploadError."""
    errors = [
        getattr(dropload, name)
        for name in dropload.__all__
        if isinstance(getattr(dropload, name), type)
        and issubclass(getattr(dropload, name), Exception)
    ]
    assert errors
    assert all(issubclass(error, dropload.DroploadError) for error in errors)


def test_py_typed_ships() -> None:
    """The package carries the py.typed marker (PEP 561)."""
    assert resources.files("dropload").joinpath("py.typed").is_file()


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("tables.t", "bad"),
        RecordError("t", "f", "expected INTEGER"),
        StoreUnavailable("t/staging/x", "down"),
        ObjectExists("t/staging/x"),
        PreconditionFailed("t/lease.json", 7),
    ],
)
def test_errors_survive_pickling(error: DroploadError) -> None:
    """Errors cross process boundaries (multiprocessing) with message and fields."""
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__
