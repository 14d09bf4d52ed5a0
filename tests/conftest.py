"""Shared fixtures: Cloud Storage and BigQuery emulators and clients bound to them.

Tests that use the emulator fixtures carry ``@pytest.mark.emulator``. The BigQuery
emulator runs from a sidecar venv that ``scripts/setup-emulators.sh`` builds; without
it those fixtures fail (they never skip).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, storage

from emulators import bigquery_server, gcs_preconditions

PROJECT = bigquery_server.PROJECT
HOST = bigquery_server.HOST


@dataclass(frozen=True)
class GcsEmulator:
    """The in-process Cloud Storage emulator: its URL and its disk-mode data dir."""

    endpoint: str
    data_dir: Path


@dataclass(frozen=True)
class BigQueryEmulator:
    """The local-bigquery subprocess: its REST URL and the project it serves."""

    endpoint: str
    project: str


def pytest_configure(config: pytest.Config) -> None:
    """Register the emulator marker unless pyproject.toml already does."""
    registered = (line.split(":")[0].strip() for line in config.getini("markers"))
    if "emulator" not in registered:
        config.addinivalue_line(
            "markers", "emulator: runs against the Cloud Storage and BigQuery emulators"
        )


def _with_no_proxy(value: str | None) -> str:
    """Add the emulators' host to a NO_PROXY list, so that no proxy sees tests."""
    hosts = [host for host in (value or "").split(",") if host]
    return ",".join([*hosts, HOST] if HOST not in hosts else hosts)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """Run gcp-storage-emulator in this process, in disk mode, with preconditions.

    Also sets STORAGE_EMULATOR_HOST for the session.
    """
    from gcp_storage_emulator.server import create_server

    data_dir = tmp_path_factory.mktemp("gcs")
    gcs_preconditions.install()
    server = create_server(HOST, 0, in_memory=False, data_dir=str(data_dir))
    # The emulator's API thread is not a daemon: a session that dies before the
    # teardown would otherwise hang at exit.
    server._api.daemon = True
    server.start()
    # Port 0 picks a free port; the emulator keeps the bound one only here.
    endpoint = f"http://{HOST}:{server._api._httpd.server_address[1]}"
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("STORAGE_EMULATOR_HOST", endpoint)
            for name in ("NO_PROXY", "no_proxy"):
                env.setenv(name, _with_no_proxy(os.environ.get(name)))
            yield GcsEmulator(endpoint, data_dir)
    finally:
        server.stop()
        gcs_preconditions.uninstall()


@pytest.fixture(scope="session")
def bq_emulator(
    gcs_emulator: GcsEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BigQueryEmulator]:
    """Run local-bigquery from the sidecar venv; gs:// reads the GCS data dir."""
    failure = None
    try:
        server = bigquery_server.start_bigquery_server(
            gcs_emulator.data_dir, tmp_path_factory.mktemp("bigquery")
        )
    except (
        bigquery_server.SidecarMissingError,
        bigquery_server.EmulatorStartError,
    ) as error:
        failure = str(error)
    if failure is not None:  # outside the except block: no chained traceback
        pytest.fail(failure, pytrace=False)
    try:
        yield BigQueryEmulator(server.endpoint, PROJECT)
    finally:
        server.stop()


@pytest.fixture
def gcs_client(gcs_emulator: GcsEmulator) -> Iterator[storage.Client]:
    """A Cloud Storage client for the emulator, with anonymous credentials."""
    client = storage.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs_emulator.endpoint},
    )
    yield client
    client.close()


@pytest.fixture
def bq_client(bq_emulator: BigQueryEmulator) -> Iterator[bigquery.Client]:
    """A BigQuery client for the emulator's project, with anonymous credentials."""
    client = bigquery.Client(
        project=bq_emulator.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": bq_emulator.endpoint},
    )
    yield client
    client.close()


@pytest.fixture
def gcs_bucket(gcs_client: storage.Client) -> str:
    """Create a bucket with a unique name for this test and return the name."""
    name = f"dropload-test-{uuid.uuid4().hex[:12]}"
    gcs_client.create_bucket(name)
    return name


@pytest.fixture
def bq_dataset(bq_client: bigquery.Client) -> str:
    """Create a dataset with a unique id for this test and return its dataset_id."""
    dataset_id = f"test_{uuid.uuid4().hex[:12]}"
    bq_client.create_dataset(dataset_id)
    return dataset_id


@pytest.fixture(autouse=True)
def _restore_dropload_logging() -> Iterator[None]:
    """`loader` commands replace dropload's log handlers; put them back after."""
    logger = logging.getLogger("dropload")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
