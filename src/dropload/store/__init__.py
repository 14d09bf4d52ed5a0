"""Object stores: a Cloud Storage prefix or a local folder, one contract."""

from __future__ import annotations

from dropload.config import Config
from dropload.store.base import ROWS_METADATA, ObjectInfo, Store

__all__ = ["ROWS_METADATA", "ObjectInfo", "Store", "open_store"]


def open_store(config: Config, *, deadline: float | None = None) -> Store:
    """The store the config names: GcsStore for gs:// URLs, else LocalStore.

    A local folder is taken relative to the config file's folder; `deadline`
    bounds each Cloud Storage call's retries (default `store.deadline_seconds`).
    """
    store = config.store
    if store.is_cloud:
        from dropload.store.gcs import GcsStore

        return GcsStore(
            store.url,
            api_endpoint=store.api_endpoint,
            deadline=deadline or store.deadline_seconds,
        )
    from dropload.store.local import LocalStore

    return LocalStore(config.resolve(store.url.removeprefix("file://")))
