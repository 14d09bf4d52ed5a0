"""Warehouses: BigQuery, or a DuckDB file with the same job semantics."""

from __future__ import annotations

from dropload.config import Config
from dropload.warehouse.base import JobResult, LoadRequest, Warehouse

__all__ = ["JobResult", "LoadRequest", "Warehouse", "open_warehouse"]


def open_warehouse(config: Config) -> Warehouse:
    """The warehouse the config names."""
    if config.warehouse.kind == "bigquery":
        from dropload.warehouse.bigquery import BigQueryWarehouse

        return BigQueryWarehouse(config.warehouse)
    from dropload.warehouse.duckdb import DuckDBWarehouse

    assert config.warehouse.path is not None
    return DuckDBWarehouse(config.resolve(config.warehouse.path))
