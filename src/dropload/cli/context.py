"""The context object every command gets: config and clients, opened lazily."""

from __future__ import annotations

from functools import cached_property

from dropload.config import Config, load_config
from dropload.loader import Loader
from dropload.metrics import LoaderMetrics


class AppContext:
    """Holds the config path; loads the config and clients on first use."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self.metrics: LoaderMetrics | None = None
        """Set before the loader is first used to meter it (`serve`)."""

    @cached_property
    def config(self) -> Config:
        """The validated config; raises ConfigError."""
        return load_config(self.config_path)

    @cached_property
    def loader(self) -> Loader:
        """A loader over the config's store and warehouse."""
        return Loader(self.config, metrics=self.metrics)

    def enable_metrics(self) -> LoaderMetrics:
        """Meter the loader; call before the loader is first used."""
        if "loader" in self.__dict__:
            raise RuntimeError("enable_metrics() after the loader was opened")
        self.metrics = LoaderMetrics(
            self.config,
            lambda: self.loader.store,
            lambda: self.loader.warehouse,
            refresh_seconds=self.config.metrics.refresh_seconds,
        )
        return self.metrics

    def close(self) -> None:
        """Close clients that were opened."""
        if "loader" in self.__dict__:
            self.loader.close()
