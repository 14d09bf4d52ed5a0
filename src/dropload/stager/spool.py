"""A local folder for shards the store refused; drained by later flushes.

A writer that cannot reach the store keeps the shard here (with its row count)
and uploads it later under the same name, create-if-absent, so a shard that did
reach the store before the answer was lost is never written twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from dropload.errors import ObjectExists, StoreError
from dropload.store.base import ROWS_METADATA, Store

SPOOLED_METADATA = "dropload-spooled"
"""Marks a shard uploaded late from the spool (it may have arrived before)."""

logger = logging.getLogger(__name__)

_META = ".meta.json"


def default_spool_root() -> Path:
    """`$XDG_CACHE_HOME/dropload/spool`, else `~/.cache/dropload/spool`."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "dropload" / "spool"


class Spool:
    """Shards of one table of one store, waiting on local disk."""

    def __init__(self, root: Path, store_url: str, table: str) -> None:
        key = hashlib.blake2s(store_url.encode(), digest_size=6).hexdigest()
        self.folder = root / key / table

    def put(self, name: str, data: bytes, rows: int) -> Path:
        """Keep a shard (written atomically, then synced); returns its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / Path(name).name
        tmp = path.with_suffix(".partial")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        meta = {"name": name, "rows": rows}
        Path(str(path) + _META).write_text(json.dumps(meta))
        os.replace(tmp, path)
        return path

    def pending(self) -> list[Path]:
        """Spooled shards, oldest name first."""
        if not self.folder.is_dir():
            return []
        return sorted(
            p
            for p in self.folder.iterdir()
            if p.is_file() and not p.name.endswith((_META, ".partial"))
        )

    def drain(self, store: Store) -> int:
        """Upload every spooled shard; returns how many reached the store.

        Stops at the first one the store does not take; raises nothing.
        """
        sent = 0
        for path in self.pending():
            try:
                meta = json.loads(Path(str(path) + _META).read_text())
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # another process or thread drained it meanwhile
            metadata = {ROWS_METADATA: str(meta["rows"]), SPOOLED_METADATA: "1"}
            try:
                store.write(meta["name"], data, metadata=metadata)
            except ObjectExists:
                logger.info("spool: %s had reached the store already", meta["name"])
            except StoreError as exc:
                logger.warning("spool: %d shards still waiting: %s", len(self), exc)
                return sent
            path.unlink(missing_ok=True)
            Path(str(path) + _META).unlink(missing_ok=True)
            sent += 1
        return sent

    def __len__(self) -> int:
        return len(self.pending())
