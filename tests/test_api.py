"""The public API: what `dropload` exports, and that it ships its type hints."""

from __future__ import annotations

from importlib import resources

import dropload

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
