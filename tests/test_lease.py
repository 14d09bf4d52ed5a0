"""The per-table lease: one holder, lost answers recognised, dead holders replaced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dropload import layout
from dropload import lease as lease_module
from dropload.errors import LeaseHeld
from dropload.lease import Lease, holder_is_dead, new_owner
from dropload.store.local import LocalStore
from faults.wrappers import Fault, FaultyStore


@pytest.fixture
def store(tmp_path: Path) -> FaultyStore:
    """A local store behind the fault seam."""
    return FaultyStore(LocalStore(tmp_path / "store"))


def _exited_owner() -> str:
    script = "from dropload.lease import new_owner; print(new_owner())"
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return run.stdout.strip()


def test_a_second_loader_is_refused_while_the_first_holds(store: FaultyStore) -> None:
    """A live lease makes another owner's acquire raise LeaseHeld naming the holder."""
    first = Lease.acquire(store, "t", new_owner(), 900)

    with pytest.raises(LeaseHeld, match=first.owner):
        Lease.acquire(store, "t", new_owner(), 900)
    assert first.held()


def test_a_lost_answer_to_the_create_is_recognised(store: FaultyStore) -> None:
    """The create landed, its retry saw 412: the lease is ours, not held by another."""
    owner = new_owner()
    store.arm(Fault("write", "repeat", pattern="lease.json$"))

    lease = Lease.acquire(store, "t", owner, 900)

    assert lease.held()
    assert json.loads(store.read(layout.lease("t")))["owner"] == owner


def test_a_lost_answer_to_a_renewal_is_recognised(store: FaultyStore) -> None:
    """A renewal that landed but answered 412 on its retry keeps the lease."""
    lease = Lease.acquire(store, "t", new_owner(), 900)
    store.arm(Fault("write", "repeat", pattern="lease.json$"))

    lease.renew()

    assert lease.held()
    assert store.stat(layout.lease("t")).generation == lease.generation  # type: ignore[union-attr]


def test_a_renewal_after_a_takeover_marks_the_lease_lost(store: FaultyStore) -> None:
    """Another owner's write wins; the old holder's renewal marks its lease lost."""
    lease = Lease.acquire(store, "t", new_owner(), 900)
    current = store.stat(layout.lease("t"))
    assert current is not None
    body = {"owner": "rival", "expires": "2999-01-01T00:00:00+00:00"}
    store.write(
        layout.lease("t"),
        json.dumps(body).encode(),
        if_generation_match=current.generation,
    )

    lease.renew()

    assert not lease.held()


def test_no_renewal_after_release(store: FaultyStore) -> None:
    """A released lease is gone and a late renewal does not bring it back."""
    lease = Lease.acquire(store, "t", new_owner(), 900)

    lease.release()
    lease.renew()

    assert store.stat(layout.lease("t")) is None


def test_the_lease_of_an_exited_process_on_this_host_is_taken(
    store: FaultyStore,
) -> None:
    """A holder process that has exited is replaced before its lease expires."""
    Lease.acquire(store, "t", _exited_owner(), 900)
    owner = new_owner()

    lease = Lease.acquire(store, "t", owner, 900)

    assert json.loads(store.read(layout.lease("t")))["owner"] == owner
    assert lease.held()


def test_only_an_exited_process_on_this_host_counts_as_dead() -> None:
    """This process, another host's and unparsable owners are never judged dead."""
    assert holder_is_dead(_exited_owner())
    assert not holder_is_dead(new_owner())
    assert not holder_is_dead("elsewhere:1:1:1:00000000")
    assert not holder_is_dead("host:123:abcdef")


def test_lease_limits() -> None:
    """Renew 3 times a period, stop at 5/6, confirm at most once a second."""
    assert lease_module.RENEWALS_PER_PERIOD == 3
    assert lease_module.SAFETY_FRACTION == 1 / 6
    assert lease_module.OBJECT_WRITE_INTERVAL_SECONDS == 1.0
