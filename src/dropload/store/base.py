"""The object store contract both backends keep: create-if-absent, list, move."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dropload.errors import ObjectExists, ObjectNotFound, StoreError

ROWS_METADATA = "dropload-rows"
"""Object metadata key holding a shard's row count, for reconciliation."""

MAX_COMPOSE_SOURCES = 32
"""Cloud Storage composes at most 32 source objects in one call."""


@dataclass(frozen=True)
class ObjectInfo:
    """One object as listed: its name relative to the store's prefix."""

    name: str
    size: int
    generation: int
    updated: datetime
    md5_hash: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def basename(self) -> str:
        """The last path component of the name."""
        return self.name.rsplit("/", 1)[-1]


class Store(abc.ABC):
    """Objects under one prefix; names are `/`-separated and relative to it."""

    url: str

    @abc.abstractmethod
    def write(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Write an object; `if_generation_match=0` means only if absent.

        Raises ObjectExists (absent required) or PreconditionFailed.
        """

    @abc.abstractmethod
    def stat(self, name: str) -> ObjectInfo | None:
        """The object's info, or None when it does not exist."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose name starts with `prefix`, sorted by name."""

    @abc.abstractmethod
    def read(self, name: str) -> bytes:
        """The object's bytes; raises ObjectNotFound."""

    @abc.abstractmethod
    def copy(self, src: ObjectInfo, dst: str) -> ObjectInfo:
        """Copy `src` (at its generation) to a new object `dst`.

        Raises ObjectExists when `dst` exists, PreconditionFailed when `src`
        changed, ObjectNotFound when `src` is gone.
        """

    @abc.abstractmethod
    def delete(self, name: str, *, if_generation_match: int | None = None) -> None:
        """Delete the object; raises ObjectNotFound or PreconditionFailed."""

    @abc.abstractmethod
    def uri(self, name: str) -> str:
        """What a warehouse reads: a gs:// URI or a local path (may hold `*`)."""

    def compose(
        self,
        sources: Sequence[ObjectInfo],
        dst: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Create `dst` holding the sources' bytes one after another.

        At most MAX_COMPOSE_SOURCES sources. This default reads and writes the
        bytes; Cloud Storage composes server-side. Raises ObjectExists when
        `dst` exists, ObjectNotFound when a source is gone, ValueError for too
        many sources.
        """
        check_compose_sources(sources)
        data = b"".join(self.read(src.name) for src in sources)
        return self.write(dst, data, metadata=metadata)

    def move(self, src: ObjectInfo, dst: str) -> ObjectInfo:
        """Move `src` to `dst`, safe to repeat after a crash or a lost answer.

        A copy already made by an earlier attempt (same content at `dst`) counts
        as done; the source is deleted only at the generation that was copied.
        Raises ObjectExists when `dst` holds other content, ObjectNotFound when
        neither `src` nor a copy of it exists.
        """
        try:
            moved = self.copy(src, dst)
        except (ObjectExists, ObjectNotFound) as exc:
            moved = self._earlier_copy(src, dst, exc)
        with contextlib.suppress(ObjectNotFound):
            self.delete(src.name, if_generation_match=src.generation)
        return moved

    def _earlier_copy(self, src: ObjectInfo, dst: str, exc: StoreError) -> ObjectInfo:
        existing = self.stat(dst)
        if existing is None:
            raise exc
        source = src if src.md5_hash else self.stat(src.name)
        if source is not None and source.md5_hash != existing.md5_hash:
            raise exc
        return existing

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and pools."""


def check_compose_sources(sources: Sequence[ObjectInfo]) -> None:
    """Raises ValueError unless there are 1 to MAX_COMPOSE_SOURCES sources."""
    if not 1 <= len(sources) <= MAX_COMPOSE_SOURCES:
        raise ValueError(
            f"compose takes 1 to {MAX_COMPOSE_SOURCES} sources, got {len(sources)}"
        )
