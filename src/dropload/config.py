"""One validated, immutable configuration object, read from a TOML file."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dropload.errors import ConfigError

CONFIG_ENV = "DROPLOAD_CONFIG"
"""Environment variable naming the config file when `--config` is not given."""

TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
"""Table keys become object prefixes and job-id parts: keep them plain."""

DESTINATION = re.compile(r"^(?:[a-z][a-z0-9-]{4,28}[a-z0-9]\.)?\w{1,1024}\.\w{1,1024}$")
"""`dataset.table`, optionally `project.dataset.table` (BigQuery's id rules)."""

MIB = 1024 * 1024


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Model):
    """Where shards live: `gs://bucket/prefix` or a local folder."""

    url: str
    api_endpoint: str | None = None
    """Cloud Storage endpoint override (an emulator); anonymous credentials then."""
    deadline_seconds: Annotated[float, Field(gt=0, le=3600)] = 120.0
    """How long one Cloud Storage call of the loader keeps retrying."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value.startswith("gs://"):
            bucket = value[5:].split("/", 1)[0]
            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", bucket):
                raise ValueError(f"bad bucket name {bucket!r} in {value!r}")
        elif "://" in value and not value.startswith("file://"):
            raise ValueError("use gs://bucket/prefix or a local folder path")
        return value

    @property
    def is_cloud(self) -> bool:
        """True for a Cloud Storage bucket, False for a local folder."""
        return self.url.startswith("gs://")


class WarehouseConfig(_Model):
    """Where rows land: a DuckDB file or a BigQuery project."""

    kind: Literal["duckdb", "bigquery"] = "duckdb"
    path: str | None = None
    project: str | None = None
    location: str | None = None
    api_endpoint: str | None = None
    """BigQuery endpoint override (an emulator); anonymous credentials then."""

    @model_validator(mode="after")
    def _check_kind(self) -> WarehouseConfig:
        if self.kind == "duckdb" and not self.path:
            raise ValueError("kind duckdb needs `path`, the DuckDB file")
        if self.kind == "bigquery" and not self.project:
            raise ValueError("kind bigquery needs `project`")
        return self


class StagerConfig(_Model):
    """When a stager writes a shard, and where it spools when the store is down."""

    max_records: Annotated[int, Field(strict=True, ge=1, le=10_000_000)] = 50_000
    max_bytes: Annotated[int, Field(strict=True, ge=1024, le=1024 * MIB)] = 16 * MIB
    max_age_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    max_buffer_bytes: Annotated[int, Field(strict=True, ge=1024)] = 256 * MIB
    """Memory ceiling of one stager's buffer; past it append blocks or raises."""
    when_full: Literal["block", "raise"] = "block"
    spool_dir: str | None = None
    """Local folder for shards the store refused; default `~/.cache/dropload/spool`."""
    upload_deadline_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0


class LoaderConfig(_Model):
    """Defaults for every table's loader, and the loader's own knobs."""

    interval_minutes: Annotated[float, Field(gt=0, le=1440)] = 15.0
    job_timeout_seconds: Annotated[float, Field(gt=0)] = 3600.0
    lease_seconds: Annotated[float, Field(ge=10)] = 900.0
    daily_job_budget: Annotated[int, Field(strict=True, ge=1, le=1500)] = 1000
    replay_reserve: Annotated[int, Field(strict=True, ge=0, le=1500)] = 100
    max_workers: Annotated[int, Field(strict=True, ge=1, le=64)] = 8
    """Concurrent object moves within one tick."""
    isolation_jobs: Annotated[int, Field(strict=True, ge=0, le=20)] = 3
    """Extra load jobs one batch may spend, per tick, to set bad shards aside."""
    reconcile: Literal["hold", "warn"] = "hold"
    """A batch whose loaded rows disagree with its shards' row counts is held
    unarchived (and its table stops), or archived with a warning."""


class MetricsConfig(_Model):
    """Where `loader serve` exposes Prometheus metrics; off without a port."""

    host: str = "127.0.0.1"
    """Loopback by default: expose it further only behind your own network rules."""
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    refresh_seconds: Annotated[float, Field(ge=0, le=3600)] = 15.0
    """How long store and warehouse readings are reused between scrapes."""


class TimePartitioning(_Model):
    """Time partitioning applied when the loader creates the table."""

    field: str | None = None
    type: Literal["HOUR", "DAY", "MONTH", "YEAR"] = "DAY"
    expiration_days: Annotated[float, Field(gt=0)] | None = None


class TableConfig(_Model):
    """One destination table: where its rows go and how they are loaded."""

    name: str
    destination: str
    format: Literal["ndjson", "avro"] = "ndjson"
    schema_file: str = Field(alias="schema")
    interval_minutes: Annotated[float, Field(gt=0, le=1440)] | None = None
    create_disposition: Literal["CREATE_IF_NEEDED", "CREATE_NEVER"] = "CREATE_IF_NEEDED"
    write_disposition: Literal["WRITE_APPEND", "WRITE_TRUNCATE", "WRITE_EMPTY"] = (
        "WRITE_APPEND"
    )
    schema_update_options: tuple[
        Literal["ALLOW_FIELD_ADDITION", "ALLOW_FIELD_RELAXATION"], ...
    ] = ()
    max_bad_records: Annotated[int, Field(strict=True, ge=0)] = 0
    ignore_unknown_values: bool = False
    time_partitioning: TimePartitioning | None = None
    clustering: tuple[str, ...] = ()
    daily_job_budget: Annotated[int, Field(strict=True, ge=1, le=1500)] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not TABLE_NAME.match(value):
            raise ValueError(
                f"table name {value!r} must be lower-case letters, digits and _,"
                " starting with a letter, at most 63 characters"
            )
        return value

    @field_validator("destination")
    @classmethod
    def _check_destination(cls, value: str) -> str:
        if not DESTINATION.match(value):
            raise ValueError(f"{value!r} is not dataset.table")
        return value

    @field_validator("clustering")
    @classmethod
    def _check_clustering(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > 4:
            raise ValueError("BigQuery clusters on at most 4 columns")
        return value

    @property
    def dataset(self) -> str:
        """The dataset part of the destination."""
        return self.destination.rsplit(".", 2)[-2]

    @property
    def table_id(self) -> str:
        """The table part of the destination."""
        return self.destination.rsplit(".", 1)[-1]


class Config(_Model):
    """The whole configuration; build it with `load_config`."""

    path: Path
    store: StoreConfig
    warehouse: WarehouseConfig = WarehouseConfig(kind="duckdb", path="warehouse.duckdb")
    stager: StagerConfig = StagerConfig()
    loader: LoaderConfig = LoaderConfig()
    metrics: MetricsConfig = MetricsConfig()
    tables: dict[str, TableConfig]

    @model_validator(mode="after")
    def _check_backends(self) -> Config:
        if self.warehouse.kind == "duckdb" and self.store.is_cloud:
            raise ValueError(
                "warehouse kind duckdb reads shards from a local folder; "
                "use kind bigquery with a gs:// store"
            )
        if self.warehouse.kind == "bigquery" and not self.store.is_cloud:
            raise ValueError("warehouse kind bigquery loads from a gs:// store")
        if self.warehouse.kind == "duckdb":
            for name, table in self.tables.items():
                if table.max_bad_records:
                    raise ConfigError(
                        f"tables.{name}.max_bad_records",
                        "the duckdb warehouse loads all rows or none; set it to 0"
                        f" (in {self.path.name})",
                    )
        for name in self.tables:
            if self.daily_job_budget(name) <= self.loader.replay_reserve:
                raise ValueError(
                    f"table {name}: daily_job_budget {self.daily_job_budget(name)}"
                    f" must exceed loader.replay_reserve {self.loader.replay_reserve};"
                    " lower the reserve or raise the budget"
                )
        return self

    def table(self, name: str) -> TableConfig:
        """The table called `name`; raises ConfigError naming the known tables."""
        try:
            return self.tables[name]
        except KeyError:
            known = ", ".join(sorted(self.tables)) or "none"
            raise ConfigError(
                f"tables.{name}", f"no such table in {self.path} (known: {known})"
            ) from None

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.path.parent / candidate

    def interval_minutes(self, table: str) -> float:
        """The table's tick interval, falling back on the loader's default."""
        return self.table(table).interval_minutes or self.loader.interval_minutes

    def daily_job_budget(self, table: str) -> int:
        """The table's rolling 24-hour load-job budget."""
        return self.table(table).daily_job_budget or self.loader.daily_job_budget


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config file (`path`, else `$DROPLOAD_CONFIG`).

    Raises ConfigError naming the first bad key.
    """
    chosen = path or os.environ.get(CONFIG_ENV)
    if not chosen:
        raise ConfigError("--config", f"give --config PATH or set {CONFIG_ENV}")
    file = Path(chosen).expanduser().resolve()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(file), "file not found") from None
    except OSError as exc:
        raise ConfigError(str(file), f"cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(file), f"not valid TOML: {exc}") from None
    return parse_config(raw, file)


def parse_config(raw: dict[str, Any], path: Path) -> Config:
    """Validate an already parsed TOML mapping; raises ConfigError."""
    tables = raw.get("tables", {})
    if not isinstance(tables, dict) or not tables:
        raise ConfigError("tables", "define at least one [tables.NAME] section")
    _refuse_filled_in_keys(raw, tables, path)
    named = {
        name: dict(body, name=name) if isinstance(body, dict) else body
        for name, body in tables.items()
    }
    try:
        return Config.model_validate({**raw, "tables": named, "path": path})
    except ValidationError as exc:
        raise _config_error(exc, path) from None


def _refuse_filled_in_keys(
    raw: dict[str, Any], tables: dict[str, Any], path: Path
) -> None:
    """`path` and a table's `name` come from the file itself, never from keys."""
    problem = f"unknown key in {path.name}; check its spelling"
    if "path" in raw:
        raise ConfigError("path", problem)
    for name, body in tables.items():
        if isinstance(body, dict) and "name" in body:
            raise ConfigError(f"tables.{name}.name", problem)


def _config_error(exc: ValidationError, path: Path) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or str(path)
    if first["type"] == "extra_forbidden":
        return ConfigError(key, f"unknown key in {path.name}; check its spelling")
    message = first["msg"].removeprefix("Value error, ")
    return ConfigError(key, f"{message} (in {path.name})")
