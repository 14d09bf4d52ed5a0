"""Run the local-bigquery emulator as a subprocess from its Python 3.13 sidecar venv.

scripts/setup-emulators.sh builds the sidecar; gs:// URIs in load jobs resolve to
files under the Cloud Storage emulator's data directory, not over HTTP.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".venv-bq"
# Written by scripts/setup-emulators.sh once the sidecar is complete.
STAMP_NAME = ".setup-stamp"
# The extensions the setup script installs, one `duckdb-extension-NAME==` a line.
EXTENSIONS_FILE = REPO_ROOT / "scripts" / "requirements-bq-extensions.txt"
PROJECT = "test-project"
HOST = "127.0.0.1"

# DuckDB opens lazily on the first request, which takes 1-2 s on a warm machine;
# a cold CI disk can take several times that.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# A free port found by binding port 0 can be taken before the emulator binds it.
START_ATTEMPTS = 3
_LOG_TAIL_LINES = 40
_BODY_CHARS = 500

# Runs the emulator's CLI in the sidecar with DuckDB's extension repository set to
# a folder that does not exist: DuckDB installs a missing extension on demand even
# with autoinstall_known_extensions off (seen for spatial), and would otherwise
# fetch it from the internet. A missing extension now fails at once, offline.
_LAUNCHER = """
import os
import sys

import duckdb

_connect = duckdb.connect
_NOWHERE = os.path.join(sys.prefix, "no-extension-repository")
_OFFLINE = {
    "autoinstall_known_extensions": False,
    "autoinstall_extension_repository": _NOWHERE,
    "custom_extension_repository": _NOWHERE,
}


def connect(database=":memory:", read_only=False, config=None):
    config = {**(config or {}), **_OFFLINE}
    return _connect(database, read_only=read_only, config=config)


duckdb.connect = connect
from local_bigquery.cli import main

main(sys.argv[1:])
"""


class SidecarMissingError(RuntimeError):
    """The sidecar venv is missing or incomplete."""

    def __init__(self, venv: Path) -> None:
        self.venv = venv
        super().__init__(
            f"BigQuery emulator sidecar venv {venv} is missing or incomplete: "
            "run `make test` or `scripts/setup-emulators.sh` to build it"
        )


class EmulatorStartError(RuntimeError):
    """The emulator exited or did not answer in time."""

    def __init__(self, reason: str, log_path: Path) -> None:
        self.log_path = log_path
        tail = _tail(log_path)
        super().__init__(f"local-bigquery {reason}; last lines of {log_path}:\n{tail}")


@dataclass
class BigQueryServer:
    """A running local-bigquery process and where it answers."""

    endpoint: str
    port: int
    grpc_port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """Terminate the process, killing it if it does not exit in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)


def sidecar_venv() -> Path:
    """Return the sidecar venv: $DROPLOAD_BQ_VENV, else <repo>/.venv-bq."""
    return Path(os.environ.get("DROPLOAD_BQ_VENV", DEFAULT_VENV))


def check_sidecar(venv: Path) -> None:
    """Check that the sidecar venv was completely built.

    Raises:
        SidecarMissingError: the venv or one of its DuckDB extensions is missing.
    """
    python = venv / "bin" / "python"
    if not (venv / STAMP_NAME).is_file() or not python.is_file():
        raise SidecarMissingError(venv)
    extensions = venv / "home" / ".duckdb" / "extensions"
    for name in re.findall(
        r"^duckdb-extension-(\w+)==", EXTENSIONS_FILE.read_text(), re.M
    ):
        if not any(extensions.glob(f"*/*/{name}.duckdb_extension")):
            raise SidecarMissingError(venv)


def start_bigquery_server(
    gcs_data_dir: Path,
    work_dir: Path,
    *,
    venv: Path | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> BigQueryServer:
    """Start local-bigquery on 127.0.0.1 and wait until it answers the REST API.

    ``gcs_data_dir`` is the Cloud Storage emulator's disk-mode data directory;
    ``work_dir`` receives the emulator's tables and its log.

    Raises:
        SidecarMissingError: the sidecar venv was not built.
        EmulatorStartError: the process exited or did not answer within ``timeout``.
    """
    venv = venv or sidecar_venv()
    check_sidecar(venv)
    for attempt in range(1, START_ATTEMPTS + 1):
        server = _spawn(venv, gcs_data_dir, work_dir, attempt)
        try:
            _wait_until_ready(server, timeout)
        except EmulatorStartError:
            server.stop()
            if attempt < START_ATTEMPTS and _lost_port_race(server.log_path):
                continue
            raise
        return server
    raise AssertionError("unreachable")  # pragma: no cover


def _spawn(
    venv: Path, gcs_data_dir: Path, work_dir: Path, attempt: int
) -> BigQueryServer:
    port, grpc_port = _free_port(), _free_port()
    log_path = work_dir / f"local-bigquery-{attempt}.log"
    command = [
        str(venv / "bin" / "python"),
        "-c",
        _LAUNCHER,
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--project",
        PROJECT,
        "--data-dir",
        str(work_dir / "data"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=_environment(venv, gcs_data_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://{HOST}:{port}"
    return BigQueryServer(endpoint, port, grpc_port, process, log_path)


def _environment(venv: Path, gcs_data_dir: Path) -> dict[str, str]:
    """Build the emulator's environment from ours.

    HOME is the sidecar's, where the setup script put DuckDB's extension files;
    gs:// URIs resolve to files under the Cloud Storage emulator's data directory,
    which takes precedence over STORAGE_EMULATOR_HOST (dropped to be explicit).
    """
    env = dict(os.environ)
    for name in ("STORAGE_EMULATOR_HOST", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    env["HOME"] = str(venv / "home")
    env["GCS_LOCAL_ROOT"] = str(gcs_data_dir / ".cloudstorage")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_ready(server: BigQueryServer, timeout: float) -> None:
    """Poll datasets.list until it answers 200; that also opens DuckDB."""
    deadline = time.monotonic() + timeout
    path = f"/bigquery/v2/projects/{PROJECT}/datasets"
    while True:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise EmulatorStartError(f"exited with code {code}", server.log_path)
        answer = _get(server.port, path)
        if answer is not None and answer[0] == 200:
            return
        if answer is not None:
            status, body = answer
            reason = f"answered {status} to GET {path}: {body[:_BODY_CHARS]}"
            raise EmulatorStartError(reason, server.log_path)
        if time.monotonic() > deadline:
            raise EmulatorStartError(
                f"not ready after {timeout:.0f} s", server.log_path
            )
        time.sleep(0.1)


def _get(port: int, path: str) -> tuple[int, str] | None:
    """Return the status and body of GET ``path``, or None if nothing answers."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    except OSError:
        return None
    finally:
        connection.close()


def _lost_port_race(log_path: Path) -> bool:
    text = log_path.read_text(errors="replace")
    return any(
        sign in text
        for sign in ("Address already in use", "Errno 98", "Failed to bind")
    )


def _tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(lines[-_LOG_TAIL_LINES:])
