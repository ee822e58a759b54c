"""Membership: self-healing on a member's own volume, and scaling up and down.

The pure world of ``tests/unit/world.py``, observed exactly as the handlers observe it; shared
helpers live in ``tests/unit/test_plan.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from phalanx.models import (
    DeletionPolicy,
)
from phalanx.plan import (
    CreateMember,
    CreatePod,
    DeletePod,
    RetireMember,
    heal_pods,
    retire_one,
    scale,
)
from tests.unit.test_plan import (
    NOW,
    ZONES,
    described,
    member,
)
from tests.unit.world import (
    World,
    claim,
    empty_world,
    node,
    observed,
    pod,
    store_spec,
    with_members,
)

# ================================================================================================
# Self-healing: a member's pod, on the member's own volume


@pytest.mark.parametrize(
    ("pods", "claims", "expected"),
    [
        pytest.param(
            [], [claim("orders-1", "zone-b")], [("CreatePod", "orders-1")], id="missing-pod-intact-claim-new-pod"
        ),
        pytest.param(
            [],
            [claim("orders-1", "zone-b", phase="Pending")],
            [("CreatePod", "orders-1")],
            id="missing-pod-pending-claim-new-pod",
        ),
        pytest.param(
            [pod("orders-1", "zone-b", phase="Succeeded")],
            [claim("orders-1", "zone-b")],
            [("DeletePod", "orders-1")],
            id="succeeded-pod-deleted",
        ),
        pytest.param(
            [pod("orders-1", "zone-b", phase="Failed")],
            [claim("orders-1", "zone-b")],
            [("DeletePod", "orders-1")],
            id="failed-pod-deleted",
        ),
        pytest.param(
            [pod("orders-1", "zone-b", phase="Failed", terminating=True)],
            [claim("orders-1", "zone-b")],
            [],
            id="terminating-finished-pod-left-to-go",
        ),
        pytest.param(
            [pod("orders-1", "zone-b", terminating=True)],
            [claim("orders-1", "zone-b")],
            [],
            id="terminating-pod-nothing-until-gone",
        ),
        pytest.param([], [claim("orders-1", "zone-b", phase="Lost")], [], id="lost-claim-no-pod-on-it"),
        pytest.param([], [claim("orders-1", "zone-b", terminating=True)], [], id="terminating-claim-no-pod-on-it"),
        pytest.param(
            [pod("orders-1", "zone-b", ready=False)], [claim("orders-1", "zone-b")], [], id="unready-pod-left-alone"
        ),
        pytest.param(
            [pod("orders-1", "zone-b", ready=True)], [claim("orders-1", "zone-b")], [], id="ready-pod-left-alone"
        ),
        pytest.param([pod("orders-1", "zone-b", ready=True)], [], [], id="pod-without-claim-not-touched"),
    ],
)
def test_heal_pods_keeps_one_pod_per_member_on_its_own_volume(
    pods: list[dict[str, Any]], claims: list[dict[str, Any]], expected: list[tuple[str, str]]
) -> None:
    world = World(pods=tuple(pods), claims=tuple(claims))
    assert described(heal_pods(observed(world))) == expected


def test_a_recreated_pod_keeps_its_members_zone_and_seed() -> None:
    world = World(claims=(claim("orders-4", "zone-c", seeded_from="orders-snap-7"),))
    [action] = heal_pods(observed(world))
    assert action == CreatePod("orders-4", "zone-c", "orders-snap-7", action.why)


def test_a_finished_pod_is_deleted_by_its_uid() -> None:
    world = World(pods=(pod("orders-1", "zone-a", uid="u-77", phase="Failed"),), claims=(claim("orders-1", "zone-a"),))
    [action] = heal_pods(observed(world))
    assert isinstance(action, DeletePod) and action.uid == "u-77"


# ================================================================================================
# Scaling


def test_scale_up_creates_every_missing_member_in_the_fewest_zones() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"))
    actions, last, notes = scale(store_spec(6), observed(world), ZONES, NOW, 2)
    assert [(a.member, a.zone) for a in actions if isinstance(a, CreateMember)] == [
        ("orders-3", "zone-c"),
        ("orders-4", "zone-a"),
        ("orders-5", "zone-b"),
        ("orders-6", "zone-c"),
    ]
    assert (len(actions), last, notes) == (4, 6, [])


def test_new_members_get_serials_above_the_last_one_ever_used() -> None:
    world = with_members(empty_world(ZONES), (2, "zone-a"))
    seen = observed(world, {"lastSerial": 7})
    actions, last, _ = scale(store_spec(3), seen, ZONES, NOW, seen.last_serial)
    assert [a.member for a in actions if isinstance(a, CreateMember)] == ["orders-8", "orders-9"]
    assert last == 9


def test_scale_down_retires_one_member_at_a_time() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-a"), (3, "zone-b"), (4, "zone-c"))
    actions, last, notes = scale(store_spec(1), observed(world), ZONES, NOW, 4)
    assert described(actions) == [("RetireMember", "orders-2")], "the newest of the fullest zone, not the newest"
    assert (last, notes) == (4, [])


def test_scale_without_any_zone_creates_nothing_and_says_why() -> None:
    world = empty_world((), extra_nodes=[node("n1", "zone-a", ready=False)])
    actions, last, notes = scale(store_spec(3), observed(world), (), NOW, 0)
    assert (actions, last) == ([], 0)
    assert notes == ["no zone has a schedulable node: cannot place new members"]


def test_scale_at_the_desired_count_does_nothing() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    assert scale(store_spec(3), observed(world), ZONES, NOW, 3) == ([], 3, [])


@pytest.mark.parametrize(
    ("policy", "deletes"),
    [
        pytest.param(DeletionPolicy.RETAIN, False, id="retain-keeps-the-volume"),
        pytest.param(DeletionPolicy.SNAPSHOT, False, id="snapshot-keeps-the-volume"),
        pytest.param(DeletionPolicy.DELETE, True, id="delete-deletes-the-volume"),
    ],
)
def test_a_retired_members_volume_is_deleted_only_under_deletion_policy_delete(
    policy: DeletionPolicy, deletes: bool
) -> None:
    spec = store_spec(1, deletionPolicy=policy.value, snapshots={})
    [action] = retire_one(spec, [member(1, "zone-a"), member(2, "zone-b")])
    assert isinstance(action, RetireMember)
    assert (action.member, action.pod_uid, action.claim_uid, action.delete_volume) == (
        "orders-2",
        "pod-orders-2",
        "pvc-orders-2",
        deletes,
    )


@pytest.mark.parametrize(
    ("members", "retired"),
    [
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-b", "ready"), (3, "zone-c", "ready"), (4, "zone-a", "ready")],
            ["orders-4"],
            id="all-ready-newest-of-fullest-zone",
        ),
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-b", "terminating"), (3, "zone-c", "ready"), (4, "zone-a", "ready")],
            ["orders-2"],
            id="a-broken-member-leaves-before-any-ready-one",
        ),
        pytest.param(
            [(1, "zone-a", "lost"), (2, "zone-b", "lost"), (3, "zone-c", "ready")],
            ["orders-2"],
            id="without-quorum-only-broken-members-leave",
        ),
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-b", "ready"), (3, "zone-c", "starting")],
            [],
            id="no-ready-member-leaves-while-another-is-starting",
        ),
    ],
)
def test_retire_one_never_takes_a_ready_member_while_another_is_unready(
    members: list[tuple[int, str, str]], retired: list[str]
) -> None:
    views = [member(serial, zone, state) for serial, zone, state in members]
    assert [a.member for a in retire_one(store_spec(1), views) if isinstance(a, RetireMember)] == retired
