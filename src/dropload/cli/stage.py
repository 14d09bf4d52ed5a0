"""`loader stage`: stage NDJSON records from a file or stdin."""

from __future__ import annotations

import json
from typing import IO

import click

from dropload.cli.context import AppContext
from dropload.errors import RecordError
from dropload.stager import Stager


@click.command()
@click.option("--table", required=True, help="The configured table to stage into.")
@click.argument("source", type=click.File("rb"), default="-")
@click.pass_obj
def stage(app: AppContext, table: str, source: IO[bytes]) -> None:
    """Stage NDJSON records (one JSON object per line) from SOURCE or stdin.

    A bad line stops the command with its line number; the lines before it are
    staged. Exits 2 on a bad record or unknown table.
    """
    count = 0
    with Stager(app.config, table) as stager:
        try:
            for number, line in enumerate(source, start=1):
                if line.strip():
                    stager.append(_parse(line, number, table))
                    count += 1
        except (RecordError, _BadLine) as exc:
            raise _BadInput(
                f"line {number}: {exc}; the {count} lines before it were staged"
            ) from None
    waiting = (
        f" ({stager.spooled} shards wait in the local spool)" if stager.spooled else ""
    )
    click.echo(f"table {table}: staged {count} records{waiting}", err=True)


class _BadLine(ValueError):
    """A line that is not one JSON object."""


class _BadInput(click.ClickException):
    """Bad input data: exit 2, without the usage banner (the command was right)."""

    exit_code = 2


def _parse(line: bytes, number: int, table: str) -> dict[str, object]:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadLine(
            f"not JSON ({exc.__class__.__name__});"
            f" table {table} takes one JSON object per line"
        ) from None
    if not isinstance(record, dict):
        raise _BadLine("expected a JSON object")
    return record
