"""The context object every command gets: config and clients, opened lazily."""

from __future__ import annotations

from functools import cached_property

from dropload.config import Config, load_config
from dropload.loader import Loader


class AppContext:
    """Holds the config path; loads the config and clients on first use."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    @cached_property
    def config(self) -> Config:
        """The validated config; raises ConfigError."""
        return load_config(self.config_path)

    @cached_property
    def loader(self) -> Loader:
        """A loader over the config's store and warehouse."""
        return Loader(self.config)

    def close(self) -> None:
        """Close clients that were opened."""
        if "loader" in self.__dict__:
            self.loader.close()
