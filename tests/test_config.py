"""Config: one validated object from a TOML file; bad keys and values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropload import ConfigError, load_config
from dropload.config import CONFIG_ENV
from dropload.store import open_store
from dropload.warehouse import open_warehouse
from embedded import make_project, toml_section

SCHEMA = '[{"name": "id", "type": "INTEGER", "mode": "REQUIRED"}]'


def _write(folder: Path, *sections: str) -> Path:
    (folder / "schema.json").write_text(SCHEMA)
    path = folder / "dropload.toml"
    path.write_text("\n".join(sections))
    return path


def _table(**overrides: object) -> str:
    body = {"destination": "ds.events", "schema": "schema.json", **overrides}
    return toml_section("tables.events", body)


STORE = toml_section("store", {"url": "store"})


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


def test_good_config_loads(tmp_path: Path) -> None:
    """A complete config loads with every value as written."""
    project = make_project(
        tmp_path,
        stager={"max_records": 10, "when_full": "raise"},
        tables={
            "events": {
                "destination": "ds.events",
                "format": "avro",
                "interval_minutes": 5,
                "write_disposition": "WRITE_TRUNCATE",
                "create_disposition": "CREATE_NEVER",
                "schema_update_options": ["ALLOW_FIELD_ADDITION"],
                "max_bad_records": 0,
                "time_partitioning": {"field": "ts", "type": "HOUR"},
                "clustering": ["name"],
            }
        },
    )

    config = project.config
    table = config.table("events")

    assert config.path == project.config_path
    assert config.stager.max_records == 10
    assert config.stager.when_full == "raise"
    assert (table.dataset, table.table_id, table.format) == ("ds", "events", "avro")
    assert table.write_disposition == "WRITE_TRUNCATE"
    assert table.create_disposition == "CREATE_NEVER"
    assert table.schema_update_options == ("ALLOW_FIELD_ADDITION",)
    assert table.max_bad_records == 0
    assert table.time_partitioning is not None
    assert table.time_partitioning.field == "ts"
    assert table.clustering == ("name",)
    assert config.interval_minutes("events") == 5


def test_defaults(tmp_path: Path) -> None:
    """Unset options take documented defaults (NDJSON, append, 1,000 jobs a day)."""
    config = load_config(_write(tmp_path, STORE, _table()))
    table = config.table("events")

    assert table.format == "ndjson"
    assert table.write_disposition == "WRITE_APPEND"
    assert table.create_disposition == "CREATE_IF_NEEDED"
    assert config.daily_job_budget("events") == 1000
    assert config.interval_minutes("events") == config.loader.interval_minutes
    assert config.warehouse.kind == "duckdb"


def test_config_is_immutable(tmp_path: Path) -> None:
    """The config object cannot be changed after start-up."""
    config = load_config(_write(tmp_path, STORE, _table()))

    with pytest.raises(ValueError, match="frozen"):
        config.stager.max_records = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("bogus = 1\n" + STORE, "bogus"),
        (toml_section("store", {"url": "store", "bukket": "x"}), "store.bukket"),
        (STORE + toml_section("stager", {"max_recods": 5}), "stager.max_recods"),
        (STORE + toml_section("loader", {"intervall": 5}), "loader.intervall"),
    ],
)
def test_unknown_keys_are_rejected(tmp_path: Path, section: str, key: str) -> None:
    """A misspelt key outside the tables is refused, naming it."""
    error = _error(_write(tmp_path, section, _table()))

    assert error.key == key
    assert "unknown key" in str(error)


def test_unknown_table_key_is_rejected(tmp_path: Path) -> None:
    """A misspelt key in a table section is refused, naming the table and key."""
    error = _error(_write(tmp_path, STORE, _table(formatt="avro")))

    assert error.key == "tables.events.formatt"
    assert "unknown key" in str(error)


@pytest.mark.parametrize("key", ["path"])
def test_reserved_top_level_keys_are_rejected(tmp_path: Path, key: str) -> None:
    """Keys dropload fills in itself are not silently taken from the file."""
    error = _error(_write(tmp_path, f'{key} = "elsewhere"\n' + STORE, _table()))

    assert error.key == key


def test_name_key_in_a_table_is_rejected(tmp_path: Path) -> None:
    """A table's name is its section's name; a `name` key there is refused."""
    error = _error(_write(tmp_path, STORE, _table(name="other")))

    assert error.key == "tables.events.name"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"format": "csv"}, "tables.events.format"),
        ({"write_disposition": "WRITE_SOMETIMES"}, "tables.events.write_disposition"),
        ({"create_disposition": "CREATE_MAYBE"}, "tables.events.create_disposition"),
        ({"destination": "events"}, "tables.events.destination"),
        ({"destination": "ds.events.x.y"}, "tables.events.destination"),
        ({"destination": "../ds.events"}, "tables.events.destination"),
        ({"max_bad_records": -1}, "tables.events.max_bad_records"),
        ({"interval_minutes": 0}, "tables.events.interval_minutes"),
        ({"clustering": ["a", "b", "c", "d", "e"]}, "tables.events.clustering"),
        (
            {"schema_update_options": ["ALLOW_EVERYTHING"]},
            "tables.events.schema_update_options.0",
        ),
    ],
)
def test_bad_table_values_are_rejected(
    tmp_path: Path, overrides: dict[str, object], key: str
) -> None:
    """A bad value in a table section is refused, naming the key."""
    error = _error(_write(tmp_path, STORE, _table(**overrides)))

    assert error.key == key
    assert str(error).startswith(f"config {key}:")


@pytest.mark.parametrize("name", ["Events", "../events", "1events", "a" * 64])
def test_bad_table_names_are_rejected(tmp_path: Path, name: str) -> None:
    """Table names are lower-case identifiers: no capitals, no path parts."""
    section = toml_section(
        f'tables."{name}"', {"destination": "ds.events", "schema": "schema.json"}
    )
    error = _error(_write(tmp_path, STORE, section))

    assert error.key == f"tables.{name}.name"
    assert name in str(error)


@pytest.mark.parametrize(
    ("stager", "key"),
    [
        ({"max_records": 0}, "stager.max_records"),
        ({"max_bytes": 10}, "stager.max_bytes"),
        ({"max_age_seconds": 0}, "stager.max_age_seconds"),
        ({"when_full": "drop"}, "stager.when_full"),
    ],
)
def test_bad_stager_values_are_rejected(
    tmp_path: Path, stager: dict[str, object], key: str
) -> None:
    """A bad stager value is refused, naming the key."""
    error = _error(_write(tmp_path, STORE, toml_section("stager", stager), _table()))

    assert error.key == key


def test_duckdb_with_a_bucket_is_rejected(tmp_path: Path) -> None:
    """The DuckDB warehouse reads a local folder; a gs:// store is refused."""
    store = toml_section("store", {"url": "gs://bucket/prefix"})
    warehouse = toml_section("warehouse", {"kind": "duckdb", "path": "w.duckdb"})

    error = _error(_write(tmp_path, store, warehouse, _table()))

    assert "warehouse kind duckdb" in str(error)
    assert "gs://" in str(error)


def test_bigquery_with_a_folder_is_rejected(tmp_path: Path) -> None:
    """BigQuery loads from Cloud Storage; a local folder store is refused."""
    warehouse = toml_section("warehouse", {"kind": "bigquery", "project": "p-123"})

    error = _error(_write(tmp_path, STORE, warehouse, _table()))

    assert "bigquery" in str(error)


@pytest.mark.parametrize("url", ["s3://bucket/x", "gs://B!/x"])
def test_bad_store_urls_are_rejected(tmp_path: Path, url: str) -> None:
    """Only gs:// buckets with valid names and local folders are stores."""
    error = _error(_write(tmp_path, toml_section("store", {"url": url}), _table()))

    assert error.key == "store.url"


def test_no_tables_is_rejected(tmp_path: Path) -> None:
    """A config without a table section is refused, naming `tables`."""
    error = _error(_write(tmp_path, STORE))

    assert error.key == "tables"


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A config path that does not exist is reported with its path."""
    error = _error(tmp_path / "absent.toml")

    assert "absent.toml" in str(error)
    assert "not found" in str(error)


def test_bad_toml_is_reported(tmp_path: Path) -> None:
    """A file that is not TOML is refused with the parser's reason."""
    path = tmp_path / "dropload.toml"
    path.write_text("[store\nurl = ")

    assert "not valid TOML" in str(_error(path))


def test_unknown_table_names_the_known_ones(tmp_path: Path) -> None:
    """Asking for an unconfigured table names it and the configured ones."""
    config = load_config(_write(tmp_path, STORE, _table()))

    with pytest.raises(ConfigError, match="known: events") as caught:
        config.table("orders")

    assert caught.value.key == "tables.orders"


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Store, warehouse and schema paths are relative to the config, not the cwd."""
    project = make_project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = project.config
    store = open_store(config)
    warehouse = open_warehouse(config)

    assert config.resolve("schema.json") == project.folder / "schema.json"
    assert store.uri("x") == str(project.store_root / "x")
    assert project.warehouse_path.is_file()
    assert list(elsewhere.iterdir()) == []
    warehouse.close()


def test_config_env_is_used_without_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no path given, DROPLOAD_CONFIG names the file."""
    project = make_project(tmp_path)
    monkeypatch.setenv(CONFIG_ENV, str(project.config_path))

    assert load_config().path == project.config_path


def test_an_explicit_path_wins_over_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config (a path argument) takes precedence over DROPLOAD_CONFIG."""
    project = make_project(tmp_path)
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "absent.toml"))

    assert load_config(project.config_path).path == project.config_path


def test_no_path_and_no_env_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --config and DROPLOAD_CONFIG the error says how to give one."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)

    with pytest.raises(ConfigError, match=CONFIG_ENV) as caught:
        load_config()

    assert caught.value.key == "--config"


def test_a_folder_as_config_is_a_config_error(tmp_path: Path) -> None:
    """A config path that is a folder is reported, not a traceback."""
    error = _error(tmp_path)

    assert "cannot read" in str(error)


def test_duckdb_refuses_max_bad_records(tmp_path: Path) -> None:
    """max_bad_records > 0 with the DuckDB warehouse is refused, naming the key."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[store]\nurl = "store"\n[warehouse]\nkind = "duckdb"\npath = "w.duckdb"\n'
        '[tables.t]\ndestination = "d.t"\nschema = "s.json"\nmax_bad_records = 3\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "tables.t.max_bad_records"


def test_boolean_is_not_a_count(tmp_path: Path) -> None:
    """A boolean where a count belongs is refused, naming the key."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[store]\nurl = "store"\n[stager]\nmax_records = true\n'
        '[tables.t]\ndestination = "d.t"\nschema = "s.json"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "stager.max_records"
