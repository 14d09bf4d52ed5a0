"""Make the in-process gcp-storage-emulator honour Cloud Storage preconditions.

Test-only. The emulator ignores ``ifGenerationMatch`` and its siblings; `install`
wraps its object handlers so that a failed precondition answers 412 (304 for a
``...NotMatch`` on a read), as Cloud Storage does, before the handler runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from importlib import metadata
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gcp_storage_emulator import server as _server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects as _objects

# The shim patches the emulator's private route table and handler names; another
# release may move them, so install() refuses any version but this one.
EMULATOR_VERSION = "2026.7.19"

Handler = Callable[..., Any]
Query = Mapping[str, list[str]]
_Location = tuple[str | None, str | None]


@dataclass(frozen=True)
class _Condition:
    """One precondition query parameter and what it compares."""

    param: str
    on_source: bool  # compares the copy source, not the object being written
    field: str  # "generation" or "metageneration" of the object resource
    equal: bool  # True: must equal the current value; False: must differ


_CONDITIONS = (
    _Condition("ifGenerationMatch", False, "generation", True),
    _Condition("ifGenerationNotMatch", False, "generation", False),
    _Condition("ifMetagenerationMatch", False, "metageneration", True),
    _Condition("ifMetagenerationNotMatch", False, "metageneration", False),
    _Condition("ifSourceGenerationMatch", True, "generation", True),
    _Condition("ifSourceGenerationNotMatch", True, "generation", False),
    _Condition("ifSourceMetagenerationMatch", True, "metageneration", True),
    _Condition("ifSourceMetagenerationNotMatch", True, "metageneration", False),
)


@dataclass(frozen=True)
class _Refusal:
    """The answer to a request whose preconditions do not hold."""

    status: HTTPStatus
    reason: str
    message: str

    def body(self) -> dict[str, Any]:
        """Return a Cloud Storage style JSON error body."""
        error = {"domain": "global", "reason": self.reason, "message": self.message}
        return {
            "error": {
                "code": self.status.value,
                "message": self.message,
                "errors": [error],
            }
        }


@dataclass(frozen=True)
class _Operation:
    """How to find the objects that one emulator handler touches."""

    target: Callable[[Any, Any], _Location]
    source: Callable[[Any, Any], _Location] | None = None
    creates: bool = False  # writes the target: a missing target has generation 0
    reads: bool = False  # a failed ...NotMatch answers 304 Not Modified
    check_body: Callable[[Any, Any], _Refusal | None] | None = None


def _lookup(storage: Any, location: _Location) -> dict[str, Any] | None:
    bucket, name = location
    if not bucket or not name:
        return None
    try:
        resource: dict[str, Any] = storage.get_file_obj(bucket, name)
    except NotFound:
        return None
    return resource


def _compare(
    condition: _Condition, wanted: str, resource: dict[str, Any] | None
) -> str:
    """Return why the condition fails, or "" when it holds."""
    current = int(resource[condition.field]) if resource else 0
    if (int(wanted) == current) == condition.equal:
        return ""
    subject = "source object" if condition.on_source else "object"
    state = f"{condition.field} {current}" if resource else "no live version"
    return f"{condition.param}={wanted} does not hold: the {subject} has {state}"


def _check_query(
    query: Query,
    target: dict[str, Any] | None,
    source: dict[str, Any] | None,
    operation: _Operation,
) -> _Refusal | None:
    for condition in _CONDITIONS:
        if condition.param not in query:
            continue
        wanted = query[condition.param][0]
        if not wanted.lstrip("-").isdigit():
            message = f"Invalid value for {condition.param}: {wanted!r}"
            return _Refusal(HTTPStatus.BAD_REQUEST, "invalid", message)

        resource = source if condition.on_source else target
        if resource is None and not (operation.creates and not condition.on_source):
            continue  # the handler answers 404 for a missing object

        failure = _compare(condition, wanted, resource)
        if failure:
            status = HTTPStatus.PRECONDITION_FAILED
            if operation.reads and not condition.equal:
                status = HTTPStatus.NOT_MODIFIED
            return _Refusal(status, "conditionNotMet", failure)
    return None


def _evaluate(
    operation: _Operation, query: Query, request: Any, storage: Any
) -> _Refusal | None:
    """Return the refusal for this request, or None when it may go ahead."""
    if not any(key.startswith("if") for key in query):
        return None
    target = _lookup(storage, operation.target(request, storage))
    source = None
    if operation.source is not None:
        source = _lookup(storage, operation.source(request, storage))
    return _check_query(query, target, source, operation)


def _path_object(request: Any, storage: Any) -> _Location:
    params = request.params or {}
    return params.get("bucket_name"), params.get("object_id")


def _copy_destination(request: Any, storage: Any) -> _Location:
    params = request.params or {}
    return params.get("dest_bucket_name"), params.get("dest_object_id")


def _resumable_object(request: Any, storage: Any) -> _Location:
    try:
        resource = storage.get_resumable_file_obj(request.query["upload_id"][0])
    except NotFound:
        return None, None
    return resource.get("bucket"), resource.get("name")


def _upload_object(request: Any, storage: Any) -> _Location:
    """Locate the object of a media, multipart or resumable upload."""
    if "upload_id" in request.query:
        return _resumable_object(request, storage)
    bucket = (request.params or {}).get("bucket_name")
    if "name" in request.query:
        return bucket, request.query["name"][0]
    data = request.data  # multipart: {"meta": ...}; resumable start: the metadata
    if isinstance(data, dict):
        metadata_ = data.get("meta", data)
        if isinstance(metadata_, dict):
            return bucket, metadata_.get("name")
    return bucket, None


def _compose_sources(request: Any, storage: Any) -> _Refusal | None:
    """Check the per-source ``objectPreconditions`` in a compose request body."""
    data = request.data if isinstance(request.data, dict) else {}
    bucket = (request.params or {}).get("bucket_name")
    for source in data.get("sourceObjects") or []:
        wanted = (source.get("objectPreconditions") or {}).get("ifGenerationMatch")
        resource = _lookup(storage, (bucket, source.get("name")))
        if wanted is None or resource is None:
            continue
        condition = _Condition("ifGenerationMatch", True, "generation", True)
        failure = _compare(condition, str(wanted), resource)
        if failure:
            return _Refusal(HTTPStatus.PRECONDITION_FAILED, "conditionNotMet", failure)
    return None


def _guard(handler: Handler, operation: _Operation) -> Handler:
    """Wrap a route handler so that it first checks the request's preconditions."""

    @functools.wraps(handler)
    def guarded(
        request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any
    ) -> Any:
        refusal = _evaluate(operation, request.query, request, storage)
        if refusal is None and operation.check_body is not None:
            refusal = operation.check_body(request, storage)
        if refusal is not None:
            response.status = refusal.status
            if refusal.status != HTTPStatus.NOT_MODIFIED:
                response.json(refusal.body())
            return None
        return handler(request, response, storage, *args, **kwargs)

    return guarded


def _batch_query(item: Any) -> dict[str, list[str]]:
    """Return the query string of a batch part's request line, parsed."""
    for line in str(item.get_payload()).splitlines():
        words = line.split()
        if words:
            return parse_qs(urlsplit(words[1]).query) if len(words) > 1 else {}
    return {}


def _keep_query(parse: Handler) -> Handler:
    """Wrap the emulator's batch-part parser so that parts keep their query."""

    @functools.wraps(parse)
    def parse_with_query(item: Any) -> dict[str, Any]:
        parsed: dict[str, Any] = parse(item)
        parsed["query"] = _batch_query(item)
        return parsed

    return parse_with_query


def _batch_location(first: str, second: str) -> Callable[[Any, Any], _Location]:
    def locate(item: Any, storage: Any) -> _Location:
        return item.get(first), item.get(second)

    return locate


_BATCH_OPERATIONS = {
    "DELETE": _Operation(_batch_location("bucket_name", "object_id")),
    "PATCH": _Operation(_batch_location("bucket_name", "object_id")),
    "POST": _Operation(  # objects.copy, the only POST the emulator batches
        _batch_location("dest_bucket_name", "dest_object_id"),
        source=_batch_location("bucket_name", "object_id"),
        creates=True,
    ),
}


def _guard_batch(handler: Handler, operation: _Operation) -> Handler:
    """Wrap a batch-part handler so that it first checks the part's preconditions."""

    @functools.wraps(handler)
    def guarded(
        request: Any,
        item: Any,
        storage: Any,
        bucket_name: Any,
        object_id: Any,
        meta: Any,
        response: Any,
    ) -> Any:
        refusal = None
        if object_id:  # a part without an object is a bucket operation
            refusal = _evaluate(operation, item.get("query") or {}, item, storage)
        if refusal is not None:
            status_line = f"HTTP/1.1 {refusal.status.value} {refusal.status.phrase}"
            _objects._batch_write_json(response, status_line, refusal.body())
            return True
        return handler(request, item, storage, bucket_name, object_id, meta, response)

    return guarded


# (mapping, key, original value) of every patch install() made, to undo it.
_PATCHES: list[tuple[MutableMapping[Any, Any], Any, Any]] = []


def _route_operations() -> dict[Handler, tuple[str, _Operation]]:
    """Map each object handler of the emulator to how its request is checked."""
    target = _Operation(_path_object)
    read = _Operation(_path_object, reads=True)
    upload = _Operation(_upload_object, creates=True)
    return {
        _objects.insert: ("insert", upload),
        _objects.upload_partial: ("upload_partial", upload),
        _objects.copy: ("copy", _Operation(_copy_destination, _path_object, True)),
        _objects.rewrite: (
            "rewrite",
            _Operation(_copy_destination, _path_object, True),
        ),
        _objects.compose: (
            "compose",
            _Operation(_path_object, creates=True, check_body=_compose_sources),
        ),
        _objects.delete: ("delete", target),
        _objects.patch: ("patch", target),
        _objects.get: ("get", read),
        _objects.download: ("download", read),
    }


def _patch(mapping: MutableMapping[Any, Any], key: Any, value: Any) -> None:
    _PATCHES.append((mapping, key, mapping[key]))
    mapping[key] = value


def _routes() -> Iterator[MutableMapping[str, Handler]]:
    for _pattern, methods in _server.HANDLERS:
        yield methods


def install() -> None:
    """Patch the emulator so that object requests honour their preconditions.

    Call it before the in-process server handles requests; it is idempotent and
    `uninstall` undoes it. The server handles one request at a time, so a check
    and the write after it cannot interleave with another request.

    Raises:
        RuntimeError: the installed emulator is not the version this shim knows.
    """
    if _PATCHES:
        return
    version = metadata.version("gcp-storage-emulator")
    if version != EMULATOR_VERSION:
        raise RuntimeError(
            f"gcp-storage-emulator {version} is installed but the precondition shim "
            f"was written for {EMULATOR_VERSION}: pin it, or re-check the shim"
        )

    operations = _route_operations()
    wrapped = set()
    for methods in _routes():
        for method, handler in list(methods.items()):
            if handler in operations:
                name, operation = operations[handler]
                _patch(methods, method, _guard(handler, operation))
                wrapped.add(name)
    # The router falls back to objects.insert for uploads posted without /upload.
    _patch(
        vars(_objects),
        "insert",
        _guard(_objects.insert, operations[_objects.insert][1]),
    )

    _patch(vars(_server), "_parse_batch_item", _keep_query(_server._parse_batch_item))
    batch_handlers = _objects._BATCH_METHOD_HANDLERS
    for method, operation in _BATCH_OPERATIONS.items():
        _patch(batch_handlers, method, _guard_batch(batch_handlers[method], operation))

    missing = {name for name, _op in operations.values()} - wrapped
    if missing:
        uninstall()
        raise RuntimeError(f"gcp-storage-emulator has no routes for {sorted(missing)}")


def uninstall() -> None:
    """Undo `install`; a no-op when it is not installed."""
    while _PATCHES:
        mapping, key, original = _PATCHES.pop()
        mapping[key] = original
