"""Deletion policy (I3): data goes only when the policy says so.

The pure world of ``tests/unit/world.py``, observed exactly as the handlers observe it; shared
helpers live in ``tests/unit/test_plan.py``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phalanx.models import (
    DeletionPolicy,
)
from phalanx.observe import Observed
from phalanx.plan import (
    DeleteVolume,
    KeepVolume,
    Snapshot,
    final_snapshot_name,
    plan_deletion,
)
from tests.unit.test_plan import (
    ZONES,
    described,
)
from tests.unit.world import (
    STORE,
    World,
    claim,
    empty_world,
    final_snapshot,
    observed,
    pod,
    with_members,
)

# ================================================================================================
# Deletion policy (I3): data goes only when the policy says so


# (member, uid, retired, retained), as the finalizer hands claims over
def final(member: str) -> str:
    """The final snapshot's name for a member of the test store (it carries the store's uid)."""
    return final_snapshot_name(member, STORE.uid)


def deleting(world: World, finals: dict[str, bool]) -> Observed:
    """The world as the finalizer observes it, with final snapshots by name -> ready."""
    snapshots = [final_snapshot(name, name.split("-final-")[0], ready=ready) for name, ready in finals.items()]
    return observed(replace(world, snapshots=(*world.snapshots, *snapshots)))


PINNED = [("KeepVolume", "orders-1"), ("KeepVolume", "orders-2"), ("KeepVolume", "orders-3")]
"""Under deletionPolicy Snapshot every volume is pinned first: no final snapshot, no lost data."""


def _deletion_world() -> World:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"))
    retired = claim("orders-3", "zone-c", retired=True)
    return replace(world, claims=(*world.claims, retired), pods=(*world.pods, pod("orders-3", "zone-c")))


@pytest.mark.parametrize(
    ("policy", "snapshots", "expected", "done"),
    [
        pytest.param(
            DeletionPolicy.RETAIN,
            {},
            [("KeepVolume", "orders-1"), ("KeepVolume", "orders-2"), ("KeepVolume", "orders-3")],
            True,
            id="retain-keeps-every-volume-marked-retired-ones-too",
        ),
        pytest.param(
            DeletionPolicy.DELETE,
            {},
            [("DeleteVolume", "orders-1"), ("DeleteVolume", "orders-2"), ("DeleteVolume", "orders-3")],
            True,
            id="delete-deletes-every-volume",
        ),
        pytest.param(
            DeletionPolicy.SNAPSHOT,
            {},
            [*PINNED, ("Snapshot", final("orders-1")), ("Snapshot", final("orders-2"))],
            False,
            id="snapshot-pins-every-volume-then-takes-final-snapshots-of-live-members",
        ),
        pytest.param(
            DeletionPolicy.SNAPSHOT,
            {final("orders-1"): True},
            [*PINNED, ("Snapshot", final("orders-2"))],
            False,
            id="snapshot-one-ready-one-missing-deletes-nothing",
        ),
        pytest.param(
            DeletionPolicy.SNAPSHOT,
            {final("orders-1"): True, final("orders-2"): False},
            PINNED,
            False,
            id="snapshot-waits-for-every-final-snapshot",
        ),
        pytest.param(
            DeletionPolicy.SNAPSHOT,
            {final("orders-1"): True, final("orders-2"): True},
            [*PINNED, ("DeleteVolume", "orders-1"), ("DeleteVolume", "orders-2"), ("DeleteVolume", "orders-3")],
            True,
            id="snapshot-all-ready-then-volumes-go",
        ),
    ],
)
def test_plan_deletion_applies_the_deletion_policy(
    policy: DeletionPolicy, snapshots: dict[str, bool], expected: list[tuple[str, str]], done: bool
) -> None:
    actions, finished = plan_deletion(policy, deleting(_deletion_world(), snapshots))
    pods_first = [("DeletePod", "orders-1"), ("DeletePod", "orders-2"), ("DeletePod", "orders-3")]
    assert described(actions) == pods_first + expected
    assert finished is done


def test_retain_does_not_mark_a_volume_twice() -> None:
    world = with_members(empty_world(ZONES), (2, "zone-b"))
    world = replace(world, claims=(*world.claims, claim("orders-1", "zone-a", retained=True)))
    actions, _ = plan_deletion(DeletionPolicy.RETAIN, observed(world))
    assert [a.member for a in actions if isinstance(a, KeepVolume)] == ["orders-2"]


def test_a_final_snapshot_is_taken_in_its_members_zone_under_a_known_name() -> None:
    actions, _ = plan_deletion(DeletionPolicy.SNAPSHOT, observed(with_members(empty_world(ZONES), (1, "zone-a"))))
    [snapshot] = [a for a in actions if isinstance(a, Snapshot)]
    assert (snapshot.member, snapshot.zone, snapshot.name) == ("orders-1", "zone-a", final("orders-1"))


def test_a_final_snapshot_counts_only_when_it_is_of_its_members_claim() -> None:
    """A user's snapshot of their own volume under a final snapshot's name must not let the volumes go."""
    world = with_members(empty_world(ZONES), (1, "zone-a"))
    forged = final_snapshot(final("orders-1"), "orders-1", ready=True)
    forged["spec"]["source"]["persistentVolumeClaimName"] = "mine"
    actions, done = plan_deletion(DeletionPolicy.SNAPSHOT, observed(replace(world, snapshots=(forged,))))
    assert not done and not any(isinstance(a, DeleteVolume) for a in actions)


def test_a_lost_volume_gets_no_final_snapshot_and_does_not_block_deletion() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"))
    world = replace(world, claims=(*world.claims, claim("orders-2", "zone-b", phase="Lost")))
    actions, done = plan_deletion(DeletionPolicy.SNAPSHOT, deleting(world, {final("orders-1"): True}))
    assert not any(isinstance(a, Snapshot) for a in actions)
    assert done and {a.uid for a in actions if isinstance(a, DeleteVolume)} == {"pvc-orders-1", "pvc-orders-2"}


def test_a_predecessors_final_snapshot_is_not_taken_for_this_stores() -> None:
    """A store re-created under the same name adopts the same member names: the names must differ."""
    assert final_snapshot_name("orders-1", "aaaaaaaa-1") != final_snapshot_name("orders-1", "bbbbbbbb-2")


def test_terminating_pods_are_not_deleted_again_by_the_finalizer() -> None:
    world = World(pods=(pod("orders-1", "zone-a", terminating=True),), claims=(claim("orders-1", "zone-a"),))
    actions, _ = plan_deletion(DeletionPolicy.RETAIN, observed(world))
    assert described(actions) == [("KeepVolume", "orders-1")]


VOLUME = st.fixed_dictionaries(
    {"retired": st.booleans(), "retained": st.booleans(), "final": st.sampled_from(["none", "taking", "ready"])}
)
"""One member's volume at deletion: retired or not, marked retained or not, and its final snapshot."""


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(DeletionPolicy), st.lists(VOLUME, min_size=1, max_size=5))
def test_volumes_are_deleted_only_by_policy_and_after_every_final_snapshot(
    policy: DeletionPolicy, volumes: list[dict[str, Any]]
) -> None:
    numbered = list(enumerate(volumes, start=1))
    claims = tuple(
        claim(f"orders-{n}", ZONES[n % 3], uid=f"c{n}", retired=v["retired"], retained=v["retained"])
        for n, v in numbered
    )
    world = replace(empty_world(ZONES), claims=claims)
    finals = {final(f"orders-{n}"): v["final"] == "ready" for n, v in numbered if v["final"] != "none"}
    actions, done = plan_deletion(policy, deleting(world, finals))
    deleted = {a.uid for a in actions if isinstance(a, DeleteVolume)}
    every_final_ready = all(finals.get(final(f"orders-{n}")) for n, v in numbered if not v["retired"])
    if policy is DeletionPolicy.RETAIN:
        assert (deleted, done) == (set(), True)
    elif policy is DeletionPolicy.SNAPSHOT and not every_final_ready:
        assert (deleted, done) == (set(), False)
    else:
        assert (deleted, done) == ({c["metadata"]["uid"] for c in claims}, True)
