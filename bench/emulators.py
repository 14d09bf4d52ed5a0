"""The Cloud Storage and BigQuery emulators for benchmarks, on 127.0.0.1 only.

The same recipe as the tests (tests/emulators): gcp-storage-emulator in this
process in disk mode, local-bigquery from its sidecar venv reading gs:// URIs
from the Cloud Storage emulator's data folder.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from emulators import bigquery_server, gcs_preconditions

HOST = bigquery_server.HOST
PROJECT = bigquery_server.PROJECT


@dataclass(frozen=True)
class Endpoints:
    """Where the running emulators answer."""

    gcs: str
    bigquery: str


@contextlib.contextmanager
def running_emulators() -> Iterator[Endpoints]:
    """Start both emulators; stop them on exit."""
    from gcp_storage_emulator.server import create_server

    with tempfile.TemporaryDirectory(prefix="dropload-bench-emu-") as tmp:
        data_dir, bq_dir = Path(tmp) / "gcs", Path(tmp) / "bq"
        data_dir.mkdir()
        bq_dir.mkdir()
        gcs_preconditions.install()
        server = create_server(HOST, 0, in_memory=False, data_dir=str(data_dir))
        server._api.daemon = True
        server.start()
        gcs = f"http://{HOST}:{server._api._httpd.server_address[1]}"
        try:
            bq = bigquery_server.start_bigquery_server(data_dir, bq_dir)
            try:
                yield Endpoints(gcs, bq.endpoint)
            finally:
                bq.stop()
        finally:
            server.stop()
            gcs_preconditions.uninstall()
