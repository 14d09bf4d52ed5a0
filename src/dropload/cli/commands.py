"""Registers every sub-command on the `loader` group (one line a module)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Attach the sub-commands to `group`."""
    from dropload.cli import archive, load, quarantine, quota, replay, stage, status

    group.add_command(load.run_once)
    group.add_command(load.serve)
    group.add_command(status.status)
    group.add_command(stage.stage)
    group.add_command(replay.replay)
    group.add_command(archive.archive)
    group.add_command(archive.compact)
    group.add_command(quota.quota)
    group.add_command(quarantine.quarantine)
