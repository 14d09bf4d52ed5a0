"""Helpers for tests of the embedded default: a local folder store and DuckDB.

A `Project` is a folder holding a config file, a schema file, the store folder,
the spool and the DuckDB file, all relative to the config as a user writes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropload import layout
from dropload.config import Config, load_config
from dropload.manifest import Manifest
from dropload.store.local import LocalStore
from dropload.warehouse.duckdb import LEDGER, DuckDBWarehouse

SCHEMA: list[dict[str, str]] = [
    {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "name", "type": "STRING", "mode": "NULLABLE"},
    {"name": "ts", "type": "TIMESTAMP", "mode": "NULLABLE"},
]
"""The schema of the test tables: a required id, a string, a timestamp."""

TABLE = "events"
DESTINATION = "ds.events"


def toml_value(value: Any) -> str:
    """A TOML literal for a str, bool, int, float, list or inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        body = ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items())
        return "{ " + body + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_section(header: str, body: Mapping[str, Any]) -> str:
    """One `[header]` section with its keys."""
    lines = [f"[{header}]", *(f"{k} = {toml_value(v)}" for k, v in body.items())]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Project:
    """A folder with a dropload config of the embedded default."""

    folder: Path

    @property
    def config_path(self) -> Path:
        """The TOML file."""
        return self.folder / "dropload.toml"

    @property
    def config(self) -> Config:
        """The config, loaded afresh."""
        return load_config(self.config_path)

    @property
    def store_root(self) -> Path:
        """The store folder."""
        return self.folder / "store"

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file."""
        return self.folder / "warehouse.duckdb"

    def store(self) -> LocalStore:
        """A store over the project's folder."""
        return LocalStore(self.store_root)

    def warehouse(self) -> DuckDBWarehouse:
        """The project's DuckDB warehouse."""
        return DuckDBWarehouse(self.warehouse_path)


def make_project(
    folder: Path,
    *,
    stager: Mapping[str, Any] | None = None,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
    schema: list[dict[str, str]] | None = None,
) -> Project:
    """Write a schema file and a config (store, DuckDB, spool) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schema.json").write_text(json.dumps(schema or SCHEMA))
    tables = tables or {TABLE: {"destination": DESTINATION}}
    sections = [
        toml_section("store", {"url": "store"}),
        toml_section("warehouse", {"kind": "duckdb", "path": "warehouse.duckdb"}),
        toml_section("stager", {"spool_dir": "spool", **(stager or {})}),
    ]
    for name, body in tables.items():
        sections.append(
            toml_section(f"tables.{name}", {"schema": "schema.json", **body})
        )
    project = Project(folder)
    project.config_path.write_text("\n".join(sections))
    return project


def records(start: int, stop: int) -> list[dict[str, Any]]:
    """Records with ids start..stop-1."""
    return [{"id": i, "name": f"n{i}"} for i in range(start, stop)]


def staged(store: LocalStore, table: str = TABLE) -> list[str]:
    """Base names of the table's staged shards."""
    return [i.basename for i in store.list(layout.staging(table))]


def archived(store: LocalStore, table: str = TABLE) -> list[str]:
    """Base names of the table's archived shards (manifests excluded)."""
    return [
        i.basename
        for i in store.list(layout.archive(table))
        if not i.name.endswith(layout.MANIFEST_SUFFIX)
    ]


def manifests(store: LocalStore, table: str = TABLE) -> list[Manifest]:
    """Every manifest of the table's archive."""
    return [
        Manifest.from_json(store.read(i.name))
        for i in store.list(layout.archive(table))
        if i.name.endswith(layout.MANIFEST_SUFFIX)
    ]


def shard_ids(store: LocalStore, prefix: str) -> list[int]:
    """Record ids in every NDJSON shard under `prefix`, sorted."""
    ids = []
    for info in store.list(prefix):
        if info.name.endswith(".ndjson"):
            for line in store.read(info.name).splitlines():
                ids.append(json.loads(line)["id"])
    return sorted(ids)


def table_ids(warehouse: DuckDBWarehouse, destination: str = DESTINATION) -> list[int]:
    """Ids in the DuckDB table, sorted (duplicates kept)."""
    return [
        row[0] for row in warehouse.query(f"SELECT id FROM {destination} ORDER BY id")
    ]


def ledger(warehouse: DuckDBWarehouse) -> list[tuple[Any, ...]]:
    """(job_id, state, error_reason, output_rows) of every ledger row."""
    columns = "job_id, state, error_reason, output_rows"
    return warehouse.query(f"SELECT {columns} FROM {LEDGER} ORDER BY created")
