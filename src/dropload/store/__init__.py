"""Object stores: a Cloud Storage prefix or a local folder, one contract."""

from __future__ import annotations

from dropload.config import StoreConfig
from dropload.store.base import ROWS_METADATA, ObjectInfo, Store

__all__ = ["ROWS_METADATA", "ObjectInfo", "Store", "open_store"]


def open_store(config: StoreConfig) -> Store:
    """The store the config names: GcsStore for gs:// URLs, else LocalStore."""
    if config.is_cloud:
        from dropload.store.gcs import GcsStore

        return GcsStore(config.url, api_endpoint=config.api_endpoint)
    from dropload.store.local import LocalStore

    return LocalStore(config.url.removeprefix("file://"))
