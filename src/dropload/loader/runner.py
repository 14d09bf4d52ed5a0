"""Run ticks for the configured tables, in parallel across tables."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING

from dropload.config import Config, TableConfig
from dropload.errors import ConfigError
from dropload.lease import new_owner
from dropload.loader.tick import TableTick, TickReport
from dropload.logs import log_fields
from dropload.partition import partition_spec
from dropload.quota import Clock, utc_now
from dropload.schema import SchemaField, load_schema_file
from dropload.store import Store, open_store
from dropload.warehouse import Warehouse, open_warehouse

if TYPE_CHECKING:
    from dropload.metrics import LoaderMetrics

logger = logging.getLogger(__name__)


def _check_clustering(table: TableConfig, fields: tuple[SchemaField, ...]) -> None:
    names = {f.name for f in fields if f.mode != "REPEATED"}
    for column in table.clustering:
        if column not in names:
            raise ConfigError(
                f"tables.{table.name}.clustering",
                f"column {column} is not a top-level, non-repeated field of the schema",
            )


class Loader:
    """Owns the store and warehouse clients; runs one tick per table on demand."""

    def __init__(
        self,
        config: Config,
        *,
        store: Store | None = None,
        warehouse: Warehouse | None = None,
        step_hook: Callable[[str], None] | None = None,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        metrics: LoaderMetrics | None = None,
    ) -> None:
        """`clock` and `sleep` stand in for real time in tests of whole days."""
        self.config = config
        self.metrics = metrics
        self._store = store
        self._warehouse = warehouse
        self.owner = new_owner()
        self.step_hook = step_hook or (lambda step: None)
        self.clock = clock
        self.sleep = sleep
        self._fields: dict[str, tuple[SchemaField, ...]] = {}

    @cached_property
    def store(self) -> Store:
        """The configured store, opened on first use."""
        return self._store or open_store(self.config)

    @cached_property
    def warehouse(self) -> Warehouse:
        """The configured warehouse, opened on first use."""
        warehouse = self._warehouse or open_warehouse(self.config)
        return self.metrics.wrap(warehouse) if self.metrics else warehouse

    def fields(self, table: str) -> tuple[SchemaField, ...]:
        """The table's schema, read once and checked against its partitioning.

        Raises ConfigError for a bad schema file, a partitioning column or a
        clustering column the schema does not have.
        """
        if table not in self._fields:
            spec = self.config.table(table)
            fields = load_schema_file(self.config.resolve(spec.schema_file))
            partition_spec(spec, fields)
            _check_clustering(spec, fields)
            self._fields[table] = fields
        return self._fields[table]

    def tick(self, table: str) -> TickReport:
        """One tick of one table."""
        report = TableTick(
            config=self.config,
            table=self.config.table(table),
            fields=self.fields(table),
            store=self.store,
            warehouse=self.warehouse,
            owner=self.owner,
            step_hook=self.step_hook,
            clock=self.clock,
            sleep=self.sleep,
        ).run()
        if self.metrics is not None:
            self.metrics.observe_tick(report)
        return report

    def run_once(self, tables: Sequence[str] | None = None) -> list[TickReport]:
        """One tick of each table (all when `tables` is empty), tables in parallel."""
        names = list(dict.fromkeys(tables or self.config.tables))
        for name in names:
            self.config.table(name)
            self.fields(name)
        # Open the clients here: a store or warehouse that cannot be opened is
        # one error for the run (exit 1), not an unexpected error of each table.
        _ = (self.store, self.warehouse)
        workers = min(len(names), self.config.loader.max_workers) or 1
        with ThreadPoolExecutor(workers, thread_name_prefix="tick") as pool:
            reports = list(pool.map(self._guarded_tick, names))
        for report in reports:
            logger.info(
                "table %s: tick %s, %d rows in %d jobs",
                report.table,
                report.status,
                report.rows,
                len(report.jobs),
                extra=log_fields(table=report.table),
            )
        return reports

    def _guarded_tick(self, table: str) -> TickReport:
        """A tick whose unexpected error fails its own table, not the others."""
        try:
            return self.tick(table)
        except Exception as exc:
            logger.exception("table %s: tick failed unexpectedly", table)
            report = TickReport(table, status="failed")
            report.error = f"unexpected {type(exc).__name__}: {exc}"
            return report

    def close(self) -> None:
        """Close the clients that were opened."""
        if "store" in self.__dict__:
            self.store.close()
        if "warehouse" in self.__dict__:
            self.warehouse.close()
