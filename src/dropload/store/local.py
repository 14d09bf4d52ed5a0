"""A local folder as the bucket: atomic hard links and per-name locks.

Objects are files below the root. A write goes to a temporary file first and is
linked into place, so it is atomic and never overwrites; generations are the
file's nanosecond modification time. Conditional deletes and replacements take a
lock striped by name, so processes on one host agree on who won.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from dropload.errors import (
    ObjectExists,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
)
from dropload.store.base import ObjectInfo, Store

_HIDDEN = ".dropload"
"""Folder under the root for temporary files and locks; never listed."""

_LOCK_STRIPES = 64
_STALE_TMP_SECONDS = 3600.0
"""A temporary file this old belongs to a writer that died mid-write."""
_XATTR_PREFIX = "user.dropload."


class LocalStore(Store):
    """A folder on local disk that behaves like a Cloud Storage prefix."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        self._tmp = self.root / _HIDDEN / "tmp"
        self._locks = self.root / _HIDDEN / "locks"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            self._locks.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                self.url, f"cannot create the folder: {exc}"
            ) from None
        self._sweep_tmp()

    def write(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Write via a temporary file; raises ObjectExists or PreconditionFailed."""
        path = self._path(name)
        tmp = self._tmp / uuid.uuid4().hex
        with _unavailable(name):
            self._write_tmp(tmp, data, metadata or {})
            try:
                if if_generation_match == 0:
                    self._link_new(tmp, path, name)
                else:
                    self._replace(tmp, path, name, if_generation_match)
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
            return self._info(name, path, with_hash=False)

    def stat(self, name: str) -> ObjectInfo | None:
        """The object's info with its MD5, or None."""
        try:
            return self._info(name, self._path(name), with_hash=True)
        except FileNotFoundError:
            return None

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Objects whose names start with `prefix`, sorted by name."""
        folder, _, _ = prefix.rpartition("/")
        base = self._path(folder) if folder else self.root
        found = []
        for name, path in self._walk(base, folder):
            if name.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    found.append(self._info(name, path, with_hash=False))
        return sorted(found, key=lambda info: info.name)

    def read(self, name: str) -> bytes:
        """The file's bytes; raises ObjectNotFound."""
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(name) from None

    def copy(self, src: ObjectInfo, dst: str) -> ObjectInfo:
        """Hard-link `src` to `dst` (a copy that shares the bytes)."""
        source, target = self._path(src.name), self._path(dst)
        with _unavailable(dst), self._locked(src.name):
            current = self._generation(source, src.name)
            if current != src.generation:
                raise PreconditionFailed(src.name, src.generation)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except FileExistsError:
                raise ObjectExists(dst) from None
        return self._info(dst, target, with_hash=False)

    def delete(self, name: str, *, if_generation_match: int | None = None) -> None:
        """Unlink the file, only at `if_generation_match` when given."""
        path = self._path(name)
        with _unavailable(name), self._locked(name):
            current = self._generation(path, name)
            if if_generation_match is not None and current != if_generation_match:
                raise PreconditionFailed(name, if_generation_match)
            path.unlink()

    def uri(self, name: str) -> str:
        """The local path a DuckDB warehouse reads (globs allowed)."""
        return str(self.root / name)

    def _sweep_tmp(self) -> None:
        """Remove temporary files a killed writer left (older than an hour)."""
        cutoff = time.time() - _STALE_TMP_SECONDS
        with contextlib.suppress(OSError):
            for entry in os.scandir(self._tmp):
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)

    def _path(self, name: str) -> Path:
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise StoreError(name, "object names must be relative, without . or ..")
        if parts[0] == _HIDDEN:
            raise StoreError(name, f"{_HIDDEN}/ is reserved for the store itself")
        return self.root.joinpath(*parts)

    def _walk(self, base: Path, folder: str) -> Iterator[tuple[str, Path]]:
        try:
            entries = list(os.scandir(base))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            name = f"{folder}/{entry.name}" if folder else entry.name
            if name == _HIDDEN:
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), name)
            else:
                yield name, Path(entry.path)

    def _write_tmp(self, tmp: Path, data: bytes, metadata: Mapping[str, str]) -> None:
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            _write_xattrs(tmp, metadata)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise StoreUnavailable(str(tmp), f"cannot write: {exc.strerror}") from None

    def _link_new(self, tmp: Path, path: Path, name: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ObjectExists(name) from None

    def _replace(self, tmp: Path, path: Path, name: str, expected: int | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(name):
            try:
                current = self._generation(path, name)
            except ObjectNotFound:
                current = 0
            if expected is not None and current != expected:
                raise PreconditionFailed(name, expected)
            stamp = max(datetime.now(UTC).timestamp() * 1e9, current + 1)
            os.utime(tmp, ns=(int(stamp), int(stamp)))
            os.replace(tmp, path)

    def _generation(self, path: Path, name: str) -> int:
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            raise ObjectNotFound(name) from None

    def _info(self, name: str, path: Path, *, with_hash: bool) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(
            name=name,
            size=st.st_size,
            generation=st.st_mtime_ns,
            updated=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
            md5_hash=_md5(path) if with_hash else "",
            metadata=_read_xattrs(path),
        )

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        stripe = zlib.crc32(name.encode()) % _LOCK_STRIPES
        with open(self._locks / f"{stripe:02d}", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _unavailable(name: str) -> Iterator[None]:
    """Turn an operating-system failure (read-only, full disk) into a StoreError."""
    try:
        yield
    except StoreError:
        raise
    except OSError as exc:
        raise StoreUnavailable(name, f"local store failed: {exc.strerror}") from None


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_xattrs(path: Path, metadata: Mapping[str, str]) -> None:
    """Keep metadata in user xattrs, where the platform and file system have them.

    Without them (macOS, tmpfs before Linux 6.6) objects carry no metadata: it
    only holds row counts for manifests, which then say `rows: null`.
    """
    if not hasattr(os, "setxattr"):
        return
    for key, value in metadata.items():
        try:
            os.setxattr(path, _XATTR_PREFIX + key, value.encode())
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            return


def _read_xattrs(path: Path) -> dict[str, str]:
    if not hasattr(os, "listxattr"):
        return {}
    try:
        keys = os.listxattr(path)
    except OSError:
        return {}
    return {
        key.removeprefix(_XATTR_PREFIX): os.getxattr(path, key).decode()
        for key in keys
        if key.startswith(_XATTR_PREFIX)
    }
