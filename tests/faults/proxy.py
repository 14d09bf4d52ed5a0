"""An HTTP proxy on 127.0.0.1 between the official clients and an emulator.

Tests add rules; a request that matches a rule's method and path gets the rule's
fault instead of (or on top of) being forwarded:

- ``drop``: forward, let the server act, then close the connection unanswered
  (a response lost on the way back);
- ``status``: answer an HTTP error (503, 429, ...) without forwarding;
- ``delay``: wait, then forward;
- ``job_error``: answer a BigQuery jobs.insert with a job DONE with an
  errorResult, without forwarding (a failed job loads nothing); later jobs.get
  calls for that job id get the same failed job;
- ``running``: forward, then show the job as RUNNING (a wait that timed out).

Every request is logged, so tests can count what the clients sent.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOST = "127.0.0.1"
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}
_NOT_FORWARDED = {*_HOP_HEADERS, "accept-encoding", "host"}
"""Request headers the proxy drops: hop-by-hop ones, and compression (so that
the proxy can read and rewrite answers)."""
_JOB_GET = re.compile(r"/bigquery/v2/projects/[^/]+/jobs/([^/?]+)")


@dataclass
class Rule:
    """One fault: which requests it hits, what it does, how many times."""

    action: str
    method: str = "*"
    path: str = ""
    """A regular expression searched in the request's path and query."""
    times: int = 1
    status: int = 503
    reason: str = "backendError"
    message: str = "injected by the test proxy"
    delay: float = 0.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """True while the rule has uses left and the request fits it."""
        if self.hits >= self.times:
            return False
        if self.method not in ("*", method):
            return False
        return re.search(self.path, path) is not None


@dataclass
class FaultProxy:
    """A threaded forwarding proxy to `upstream`; start() before use."""

    upstream: str
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status answered; 0 when the answer was dropped)."""
    _jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Where clients should send their requests."""
        assert self._server is not None, "start() the proxy first"
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        self._server = ThreadingHTTPServer((HOST, 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def add(self, rule: Rule) -> Rule:
        """Arm a rule; returns it so the test can read its hits."""
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Disarm every rule (failed jobs already answered stay failed)."""
        with self._lock:
            self.rules.clear()

    def requests(self, method: str, path: str) -> list[tuple[str, str, int]]:
        """Logged requests with this method whose path matches the regex."""
        with self._lock:
            return [e for e in self.log if e[0] == method and re.search(path, e[1])]

    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    return rule
        return None

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append((method, path, status))


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = proxy

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the proxy's own log is `FaultProxy.log`."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        method, path = self.command, self.path
        faked = self._fake_job(method, path)
        if faked is not None:
            self._answer(200, json.dumps(faked).encode(), "application/json")
            return
        rule = self.owner._take(method, path)
        if rule is None:
            self._forward(method, path, body)
        else:
            self._apply(rule, method, path, body)

    def _apply(self, rule: Rule, method: str, path: str, body: bytes) -> None:
        if rule.action == "status":
            self._answer(rule.status, _error_body(rule), "application/json")
        elif rule.action == "drop":
            self._call_upstream(method, path, body)
            self._drop(method, path)
        elif rule.action == "delay":
            time.sleep(rule.delay)
            self._forward(method, path, body)
        elif rule.action == "job_error":
            job = _failed_job(body, rule)
            self.owner._jobs[job["jobReference"]["jobId"]] = job
            self._answer(200, json.dumps(job).encode(), "application/json")
        elif rule.action == "running":
            status, headers, data = self._call_upstream(method, path, body)
            self._answer(status, _as_running(data), headers.get("content-type", ""))
        else:
            raise ValueError(f"unknown proxy action {rule.action!r}")

    def _fake_job(self, method: str, path: str) -> dict[str, Any] | None:
        found = _JOB_GET.search(path) if method == "GET" else None
        return self.owner._jobs.get(found.group(1)) if found else None

    def _forward(self, method: str, path: str, body: bytes) -> None:
        status, headers, data = self._call_upstream(method, path, body)
        self._answer(status, data, headers.get("content-type", ""), headers)

    def _call_upstream(
        self, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        target = urlsplit(self.owner.upstream)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED
        }
        headers["Host"] = target.netloc
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            answer = {k.lower(): v for k, v in response.getheaders()}
            return response.status, answer, data
        finally:
            conn.close()

    def _answer(
        self,
        status: int,
        data: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            if key not in _HOP_HEADERS and key != "content-type":
                self.send_header(key, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.owner._record(self.command, self.path, status)

    def _drop(self, method: str, path: str) -> None:
        self.owner._record(method, path, 0)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _error_body(rule: Rule) -> bytes:
    error = {"reason": rule.reason, "message": rule.message}
    body = {"error": {"code": rule.status, "message": rule.message, "errors": [error]}}
    return json.dumps(body).encode()


def _failed_job(body: bytes, rule: Rule) -> dict[str, Any]:
    request = json.loads(body)
    reference = dict(request.get("jobReference") or {})
    now = str(int(time.time() * 1000))
    error = {"reason": rule.reason, "message": rule.message}
    return {
        "kind": "bigquery#job",
        "id": f"{reference.get('projectId')}:{reference.get('jobId')}",
        "jobReference": reference,
        "configuration": request.get("configuration", {}),
        "status": {"state": "DONE", "errorResult": error, "errors": [error]},
        "statistics": {"creationTime": now, "startTime": now, "endTime": now},
    }


def _as_running(data: bytes) -> bytes:
    job = json.loads(data)
    job["status"] = {"state": "RUNNING"}
    job.get("statistics", {}).pop("endTime", None)
    return json.dumps(job).encode()
