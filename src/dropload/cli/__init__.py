"""The `loader` command: one click group, a context object, documented exit codes.

Exit codes: 0 every table fine or nothing to do; 1 some table failed (named on
stderr) or the store or warehouse could not be reached; 2 bad usage or config;
3 and 4 are `loader quota`'s warning and critical levels.
"""

from __future__ import annotations

import logging
from typing import Any

import click

from dropload.cli import commands
from dropload.cli.context import AppContext
from dropload.cli.output import configure_logging
from dropload.config import CONFIG_ENV
from dropload.errors import ConfigError, DroploadError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Group(click.Group):
    """Turns dropload errors into one clear line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise _Failure(str(exc), EXIT_USAGE) from None
        except DroploadError as exc:
            raise _Failure(str(exc), EXIT_FAILED) from None


class _Failure(click.ClickException):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return self.code


@click.group(cls=_Group, context_settings={"auto_envvar_prefix": "DROPLOAD"})
@click.option(
    "--config",
    "config_path",
    envvar=CONFIG_ENV,
    type=click.Path(dir_okay=False),
    help=f"The TOML config file (or ${CONFIG_ENV}).",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Least severe log level written to stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Logs as text lines or one JSON object per line.",
)
@click.version_option(package_name="dropload")
@click.pass_context
def main(
    ctx: click.Context, config_path: str | None, log_level: str, log_format: str
) -> None:
    """Stage records in a bucket and load them with one job per table per tick."""
    configure_logging(getattr(logging, log_level.upper()), log_format)
    ctx.obj = AppContext(config_path)
    ctx.call_on_close(ctx.obj.close)


commands.register(main)
