"""A Cloud Storage prefix through the official client, with generation guards.

Every write is conditional (`ifGenerationMatch`), so the client's own retries
are safe: a repeated create answers 412 instead of overwriting.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from google.api_core import exceptions as api_exceptions

from dropload.errors import (
    ObjectExists,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
)
from dropload.retry import STORE_DEADLINE_SECONDS, store_retry
from dropload.store.base import ObjectInfo, Store, check_compose_sources

logger = logging.getLogger(__name__)

T = TypeVar("T")


class GcsStore(Store):
    """Objects under `gs://bucket/prefix/`."""

    def __init__(
        self,
        url: str,
        *,
        api_endpoint: str | None = None,
        deadline: float = STORE_DEADLINE_SECONDS,
    ) -> None:
        """Open the bucket; each call retries transient failures up to `deadline` s."""
        from google.cloud import storage  # type: ignore[attr-defined]

        bucket, _, prefix = url.removeprefix("gs://").partition("/")
        self.url = url.rstrip("/")
        self.bucket_name = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.client = _client(storage, api_endpoint)
        self.bucket = self.client.bucket(bucket)
        self._retry = store_retry(deadline)

    def write(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """objects.insert with ifGenerationMatch; raises ObjectExists on 412."""
        blob = self.bucket.blob(self._key(name))
        blob.metadata = dict(metadata or {})
        self._call(
            name,
            lambda: blob.upload_from_string(
                data,
                content_type="application/octet-stream",
                if_generation_match=if_generation_match,
                retry=self._retry,
                checksum="crc32c",
            ),
            exists_is_conflict=if_generation_match == 0,
            expected=if_generation_match,
            creates=True,
        )
        return self._info(blob)

    def stat(self, name: str) -> ObjectInfo | None:
        """objects.get (metadata only); None when absent."""
        blob = self._call(
            name, lambda: self.bucket.get_blob(self._key(name), retry=self._retry)
        )
        return None if blob is None else self._info(blob)

    def list(self, prefix: str) -> list[ObjectInfo]:
        """objects.list under the prefix, every page, sorted by name."""
        blobs = self._call(
            prefix,
            lambda: list(
                self.client.list_blobs(
                    self.bucket_name, prefix=self._key(prefix), retry=self._retry
                )
            ),
            creates=True,
        )
        return sorted((self._info(blob) for blob in blobs), key=lambda i: i.name)

    def read(self, name: str) -> bytes:
        """objects.get with alt=media; raises ObjectNotFound."""
        blob = self.bucket.blob(self._key(name))
        data: bytes = self._call(
            name, lambda: blob.download_as_bytes(retry=self._retry, checksum="crc32c")
        )
        return data

    def copy(self, src: ObjectInfo, dst: str) -> ObjectInfo:
        """objects.copy guarded by ifSourceGenerationMatch and ifGenerationMatch=0.

        Raises ObjectExists, PreconditionFailed (source changed) or ObjectNotFound.
        """
        source = self.bucket.blob(self._key(src.name))
        try:
            copied = self._call(
                dst,
                lambda: self.bucket.copy_blob(
                    source,
                    self.bucket,
                    self._key(dst),
                    if_generation_match=0,
                    if_source_generation_match=src.generation,
                    retry=self._retry,
                ),
            )
        except PreconditionFailed:
            # One 412 answers both guards: a target that exists wins, else the
            # source is no longer at the generation that was listed.
            if self.stat(dst) is not None:
                raise ObjectExists(dst) from None
            raise PreconditionFailed(src.name, src.generation) from None
        return self._info(copied)

    def compose(
        self,
        sources: Sequence[ObjectInfo],
        dst: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """objects.compose into a new object (ifGenerationMatch=0), sources at
        their generations; raises ObjectExists, PreconditionFailed, ObjectNotFound.
        """
        check_compose_sources(sources)
        blob = self.bucket.blob(self._key(dst))
        blob.metadata = dict(metadata or {})
        blob.content_type = "application/octet-stream"
        parts = [self.bucket.blob(self._key(s.name)) for s in sources]
        self._call(
            dst,
            lambda: blob.compose(
                parts,
                if_generation_match=0,
                if_source_generation_match=[s.generation for s in sources],
                retry=self._retry,
            ),
            exists_is_conflict=True,
        )
        composed = self.stat(dst)  # the emulator's answer lacks the generation
        if composed is None:
            raise ObjectNotFound(dst)
        return composed

    def delete(self, name: str, *, if_generation_match: int | None = None) -> None:
        """objects.delete, at a generation when given."""
        blob = self.bucket.blob(self._key(name))
        self._call(
            name,
            lambda: blob.delete(
                if_generation_match=if_generation_match, retry=self._retry
            ),
            expected=if_generation_match,
        )

    def uri(self, name: str) -> str:
        """`gs://bucket/prefix/name`, the form a load job's source_uris take."""
        return f"gs://{self.bucket_name}/{self._key(name)}"

    def close(self) -> None:
        """Close the client's HTTP session."""
        self.client.close()

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _info(self, blob: Any) -> ObjectInfo:
        return ObjectInfo(
            name=blob.name.removeprefix(self.prefix),
            size=int(blob.size or 0),
            generation=int(blob.generation or 0),
            updated=blob.updated,
            md5_hash=_hex(blob.md5_hash),
            metadata=dict(blob.metadata or {}),
        )

    def _call(
        self,
        name: str,
        fn: Callable[[], T],
        *,
        exists_is_conflict: bool = False,
        expected: int | None = None,
        creates: bool = False,
    ) -> T:
        """Run one client call, mapping its failures onto the store's errors.

        `creates`: the call needs no existing object (a create or a list), so a
        404 can only mean that the bucket is missing.
        """
        try:
            return fn()
        except api_exceptions.PreconditionFailed:
            if exists_is_conflict:
                raise ObjectExists(name) from None
            raise PreconditionFailed(name, expected) from None
        except api_exceptions.NotFound:
            if creates:
                problem = (
                    f"bucket {self.bucket_name} does not exist;"
                    " create it or fix store.url"
                )
                raise StoreError(name, problem) from None
            raise ObjectNotFound(name) from None
        except api_exceptions.RetryError as exc:
            cause = type(exc.cause).__name__ if exc.cause else "no answer"
            message = f"Cloud Storage did not answer before the deadline: {cause}"
            raise StoreUnavailable(name, message) from exc
        except api_exceptions.GoogleAPICallError as exc:
            message = f"Cloud Storage refused the call: {exc.code} {exc.message}"
            raise StoreUnavailable(name, message) from exc
        except OSError as exc:
            message = f"Cloud Storage did not answer: {type(exc).__name__}"
            raise StoreUnavailable(name, message) from exc
        except Exception as exc:
            if type(exc).__module__.startswith(("requests", "urllib3")):
                raise StoreUnavailable(name, f"connection failed: {exc}") from exc
            raise


def _client(storage: Any, api_endpoint: str | None) -> Any:
    if api_endpoint is None:
        return storage.Client()
    from google.auth.credentials import AnonymousCredentials

    return storage.Client(
        project="dropload-local",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": api_endpoint},
    )


def _hex(md5_b64: str | None) -> str:
    if not md5_b64:
        return ""
    try:
        return base64.b64decode(md5_b64).hex()
    except (binascii.Error, ValueError):
        return md5_b64
