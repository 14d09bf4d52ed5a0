"""Logging set-up and report printing shared by the commands."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from dropload.logs import FIELDS

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FIELDS = FIELDS


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and known fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: int, fmt: str) -> None:
    """Send dropload's logs to stderr at `level`, as text or JSON lines."""
    handler = _StderrHandler()
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger("dropload")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def emit(rows: Sequence[Mapping[str, Any]], fmt: str, columns: Sequence[str]) -> None:
    """Print rows as an aligned text table or as JSON on stdout."""
    if fmt == "json":
        click.echo(json.dumps(list(rows), default=str, indent=1))
        return
    widths = [max([len(c), *(len(_cell(r.get(c))) for r in rows)]) for c in columns]
    header = (c.ljust(w) for c, w in zip(columns, widths, strict=True))
    click.echo("  ".join(header).rstrip())
    for row in rows:
        cells = (
            _cell(row.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)
        )
        click.echo("  ".join(cells).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Text table, or JSON on stdout.",
)
