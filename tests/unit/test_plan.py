"""The planner, as a specification: what Phalanx decides to do about a store, and what it reports.

Read top to bottom: the placement arithmetic (where new members go, who leaves first), the named
decisions of ``plan`` (zones, self-healing, scaling, the quorum guard), the status it writes (member
states, kstatus conditions), the two stop signs (an invalid or paused store gets status only, I6),
the deletion policy (data goes only when the policy says so, I3) and the status patch act derives
from a plan. Then the invariants of the design, as properties over any valid spec: converging from
nothing, scaling up and down, quorum kept (I2), one pod per member and no name reused (I5), no
duplicate action when planning again on the world a plan produced (I7).

Worlds are raw API objects (``tests/unit/world.py``) observed exactly as the handlers observe them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phalanx import names
from phalanx.act import status_patch
from phalanx.models import (
    Condition,
    ConditionStatus,
    ConditionType,
    DeletionPolicy,
    MemberState,
    ReplicatedStoreSpec,
    StorePhase,
)
from phalanx.observe import MemberView, Observed
from phalanx.plan import (
    REQUEUE_BUSY,
    REQUEUE_STEADY,
    CreateMember,
    CreatePod,
    DeletePod,
    DeleteSnapshot,
    DeleteVolume,
    EnsureChild,
    KeepVolume,
    Plan,
    RetireMember,
    Snapshot,
    TakeSnapshot,
    build_status,
    condition,
    desired_zones,
    final_snapshot_name,
    heal_pods,
    member_state,
    place,
    placeable,
    plan,
    plan_deletion,
    retire_one,
    retirement_order,
    scale,
    skew,
    zone_counts,
)
from tests.strategies import ZONE_POOL, recovery_specs, snapshot_specs, specs
from tests.unit.world import (
    EPOCH,
    START,
    STORE,
    World,
    apply,
    claim,
    empty_world,
    final_snapshot,
    make_ready,
    make_unready,
    node,
    observed,
    pod,
    stamp,
    store_spec,
    with_members,
    zones_down,
)

NOW = EPOCH + timedelta(seconds=START)
"""The present of every world built here (a world's clock starts at START)."""
ZONES = ("zone-a", "zone-b", "zone-c")
ALL_CHILDREN = frozenset({"peers-service/orders-peers", "client-service/orders", "disruption-budget/orders"})


def member(serial: int, zone: str, state: str = "ready") -> MemberView:
    """One member, observed as the handlers would: ``ready``, ``starting`` (running, not yet ready),
    ``terminating`` (its pod going away) or ``lost`` (its volume gone)."""
    name = names.member_name("orders", serial)
    world = World(
        pods=(pod(name, zone, ready=state == "ready", terminating=state == "terminating", created=serial),),
        claims=(claim(name, zone, phase="Lost" if state == "lost" else "Bound"),),
    )
    return observed(world).members[0]


def identity(action: Any) -> tuple[str, str]:
    """An action as (kind, what it is about): its member, or the child or snapshot it names."""
    about = action.name if isinstance(action, (EnsureChild, Snapshot, DeleteSnapshot)) else action.member
    return type(action).__name__, str(about)


def described(actions: Iterable[Any]) -> list[tuple[str, str]]:
    """Actions as a reader of a table compares them."""
    return [identity(a) for a in actions]


def replan(spec: ReplicatedStoreSpec, world: World, status: dict[str, Any]) -> Plan:
    """What the handlers' next pass decides: observe the world, plan at its present."""
    return plan(spec, observed(world, status), world.now, has_ports=True)


@dataclass
class Run:
    """A store driven until a plan had nothing to do: each plan with the world it produced, and the end."""

    world: World
    status: dict[str, Any]
    steps: list[tuple[Plan, World]]

    @property
    def created(self) -> list[str]:
        return [a.member for p, _ in self.steps for a in p.actions if isinstance(a, CreateMember)]


def converge(spec: ReplicatedStoreSpec, world: World, status: dict[str, Any], rounds: int = 40) -> Run:
    """Plan, apply, let the kubelet make everything ready; until a plan does nothing. Checks I5 on the way."""
    run = Run(world, status, [])
    for _ in range(rounds):
        decided = replan(spec, run.world, run.status)
        run.status = decided.status.to_wire()
        if not decided.actions:
            return run
        produced = apply(run.world, decided)
        assert produced.rejected == (), f"actions the cluster would refuse: {produced.rejected}"
        assert max(produced.pods_per_member().values(), default=0) <= 1, "two pods for one member (I5)"
        run.steps.append((decided, produced))
        run.world = make_ready(produced)
    raise AssertionError(f"no convergence in {rounds} rounds")


def purpose(action: Any) -> tuple[str, str]:
    """What an action is for, so that a repeat shows even under a new name: a member is created to
    scale, to rebalance or to replace a given member; a snapshot extends the lineage (one at a time)."""
    if isinstance(action, CreateMember):
        return "CreateMember", f"replacing {action.replaces}" if action.replaces else action.reason
    if isinstance(action, Snapshot):
        return "Snapshot", "lineage"
    return identity(action)


def duplicates(first: Plan, world: World, again: Plan) -> list[str]:
    """Actions of ``again`` that repeat ``first`` or that ``world`` (what ``first`` produced) made moot."""
    done = {purpose(a) for a in first.actions}
    found = [f"{kind} ({why}) again" for kind, why in map(purpose, again.actions) if (kind, why) in done]
    found += [
        f"{type(a).__name__} {a.member}: it has a pod"
        for a in again.actions
        if isinstance(a, (CreateMember, CreatePod)) and world.pod(a.member) is not None
    ]
    return found + list(apply(replace(world, rejected=()), again).rejected)


def steady(world: World, spec: ReplicatedStoreSpec) -> tuple[World, dict[str, Any]]:
    """The world and status once the store has converged (every member ready, children present)."""
    run = converge(spec, world, {})
    return run.world, run.status


def by_type(conditions: Sequence[Any]) -> dict[str, Any]:
    return {c.type: c for c in conditions}


# ================================================================================================
# Placement: pure arithmetic over zone counts


@pytest.mark.parametrize(
    ("zones", "counts", "how_many", "expected"),
    [
        pytest.param(ZONES, {}, 3, ["zone-a", "zone-b", "zone-c"], id="empty-store-gets-one-per-zone"),
        pytest.param(ZONES, {}, 5, ["zone-a", "zone-b", "zone-c", "zone-a", "zone-b"], id="round-robin-over-zones"),
        pytest.param(ZONES, dict.fromkeys(ZONES, 1), 2, ["zone-a", "zone-b"], id="ties-broken-by-zone-name"),
        pytest.param(
            ("zone-c", "zone-b", "zone-a"), {}, 2, ["zone-a", "zone-b"], id="ties-by-name-not-by-listed-order"
        ),
        pytest.param(
            ZONES,
            {"zone-a": 2, "zone-b": 0, "zone-c": 1},
            3,
            ["zone-b", "zone-b", "zone-c"],
            id="fewest-first-recounted-after-each-placement",
        ),
        pytest.param(
            ZONES, {"zone-a": 1}, 4, ["zone-b", "zone-c", "zone-a", "zone-b"], id="zone-absent-from-counts-is-empty"
        ),
        pytest.param(
            ("zone-a", "zone-b"),
            {"zone-x": 0, "zone-a": 3},
            2,
            ["zone-b", "zone-b"],
            id="zones-not-listed-never-chosen",
        ),
        pytest.param(ZONES, {"zone-a": 4}, 0, [], id="nothing-wanted-nothing-placed"),
    ],
)
def test_place_puts_each_new_member_in_a_zone_with_the_fewest(
    zones: tuple[str, ...], counts: dict[str, int], how_many: int, expected: list[str]
) -> None:
    assert place(zones, counts, how_many) == expected


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        pytest.param([], {"zone-a": 0, "zone-b": 0, "zone-c": 0}, id="every-zone-present-at-zero"),
        pytest.param(
            [(1, "zone-a"), (2, "zone-a"), (3, "zone-b")], {"zone-a": 2, "zone-b": 1, "zone-c": 0}, id="counted"
        ),
        pytest.param(
            [(1, "zone-x")], {"zone-a": 0, "zone-b": 0, "zone-c": 0, "zone-x": 1}, id="unlisted-zone-still-counted"
        ),
    ],
)
def test_zone_counts_has_every_zone_and_every_member(members: list[tuple[int, str]], expected: dict[str, int]) -> None:
    assert dict(zone_counts(ZONES, [member(s, z) for s, z in members])) == expected


@pytest.mark.parametrize(
    ("zones", "members", "expected"),
    [
        pytest.param((), [(1, "zone-a")], 0, id="no-zones-no-skew"),
        pytest.param(ZONES, [], 0, id="empty-store"),
        pytest.param(ZONES, [(1, "zone-a"), (2, "zone-b"), (3, "zone-c")], 0, id="even"),
        pytest.param(ZONES, [(1, "zone-a"), (2, "zone-b")], 1, id="one-zone-short"),
        pytest.param(ZONES, [(1, "zone-a"), (2, "zone-a"), (3, "zone-a"), (4, "zone-b")], 3, id="empty-zone-counts"),
        pytest.param(("zone-a", "zone-b"), [(1, "zone-a"), (2, "zone-b"), (3, "zone-x")], 0, id="unlisted-ignored"),
    ],
)
def test_skew_is_fullest_minus_emptiest_of_the_stores_zones(
    zones: tuple[str, ...], members: list[tuple[int, str]], expected: int
) -> None:
    assert skew(zones, [member(s, z) for s, z in members]) == expected


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-b", "ready"), (3, "zone-c", "ready"), (4, "zone-a", "ready")],
            ["orders-4", "orders-1", "orders-3", "orders-2"],
            id="fullest-zone-first-then-newest",
        ),
        pytest.param(
            [(1, "zone-a", "ready"), (5, "zone-a", "ready"), (3, "zone-a", "ready"), (2, "zone-b", "ready")],
            ["orders-5", "orders-3", "orders-1", "orders-2"],
            id="newest-first-within-a-zone",
        ),
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-a", "ready"), (3, "zone-b", "terminating")],
            ["orders-3", "orders-2", "orders-1"],
            id="broken-first-even-from-the-emptiest-zone",
        ),
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-a", "lost"), (3, "zone-b", "ready")],
            ["orders-2", "orders-1", "orders-3"],
            id="lost-volume-first",
        ),
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-a", "ready"), (3, "zone-b", "starting")],
            ["orders-2", "orders-1", "orders-3"],
            id="a-newcomer-is-never-retired-for-being-new",
        ),
        pytest.param(
            [
                (1, "zone-a", "lost"),
                (2, "zone-a", "terminating"),
                (4, "zone-a", "ready"),
                (3, "zone-b", "lost"),
                (9, "zone-b", "ready"),
            ],
            ["orders-2", "orders-1", "orders-3", "orders-4", "orders-9"],
            id="among-broken-fullest-zone-then-newest",
        ),
    ],
)
def test_retirement_order_is_broken_then_ready_by_fullest_zone_and_newest_then_starting(
    members: list[tuple[int, str, str]], expected: list[str]
) -> None:
    order = retirement_order([member(serial, zone, state) for serial, zone, state in members])
    assert [m.name for m in order] == expected


# ================================================================================================
# Which zones


@pytest.mark.parametrize(
    ("spec_zones", "nodes", "expected"),
    [
        pytest.param(["zone-b", "zone-a"], [], ("zone-b", "zone-a"), id="spec-zones-as-given-even-without-nodes"),
        pytest.param(
            None,
            [node("n1", "zone-b"), node("n2", "zone-a"), node("n3", "zone-a")],
            ("zone-a", "zone-b"),
            id="default-zones-of-nodes-sorted-once-each",
        ),
        pytest.param(
            None,
            [node("n1", "zone-a"), node("n2", "zone-b", taints=[{"key": "k", "effect": "NoSchedule"}])],
            ("zone-a",),
            id="noschedule-tainted-node-excluded",
        ),
        pytest.param(
            None,
            [node("n1", "zone-a"), node("n2", "zone-b", taints=[{"key": "k", "effect": "NoExecute"}])],
            ("zone-a",),
            id="noexecute-tainted-node-excluded",
        ),
        pytest.param(
            None,
            [node("n1", "zone-a"), node("n2", "zone-b", taints=[{"key": "k", "effect": "PreferNoSchedule"}])],
            ("zone-a", "zone-b"),
            id="prefer-noschedule-taint-still-schedulable",
        ),
        pytest.param(
            None, [node("n1", "zone-a"), node("n2", "zone-b", ready=False)], ("zone-a",), id="notready-node-excluded"
        ),
        pytest.param(
            None,
            [node("n1", "zone-a"), node("n2", "zone-b", unschedulable=True)],
            ("zone-a",),
            id="cordoned-node-excluded",
        ),
        pytest.param(
            None,
            [node("n1", "zone-a", unschedulable=True), node("n2", "zone-a")],
            ("zone-a",),
            id="one-good-node-keeps-its-zone",
        ),
        pytest.param(None, [node("n1", None), node("n2", "zone-a")], ("zone-a",), id="node-without-zone-ignored"),
        pytest.param(None, [node("n1", "zone-a", ready=False)], (), id="no-schedulable-node-no-zone"),
    ],
)
def test_new_members_go_to_the_specs_zones_or_to_zones_with_schedulable_nodes(
    spec_zones: list[str] | None, nodes: list[dict[str, Any]], expected: tuple[str, ...]
) -> None:
    seen = observed(World(nodes=tuple(nodes)))
    zones = desired_zones(store_spec(zones=spec_zones), seen)
    if spec_zones is not None:
        assert zones == expected
    else:
        assert tuple(placeable(zones, seen, {})) == expected


def test_a_zone_whose_nodes_are_cordoned_or_down_stays_home_to_its_members() -> None:
    nodes = (node("n1", "zone-a"), node("n2", "zone-b", unschedulable=True), node("n3", "zone-c", ready=False))
    empty = observed(World(nodes=nodes))
    assert desired_zones(store_spec(), empty) == ("zone-a",)  # a new store ignores them
    world = with_members(World(nodes=nodes), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    seen = observed(world)
    assert desired_zones(store_spec(), seen) == ("zone-a", "zone-b", "zone-c")  # its members keep them
    assert placeable(desired_zones(store_spec(), seen), seen, {}) == ["zone-a"]


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


# ================================================================================================
# Member states


STATE_NODES = (node("node-a", "zone-a"), node("node-b", "zone-b", ready=False, since=START - 5))


@pytest.mark.parametrize(
    ("pods", "claims", "state"),
    [
        pytest.param([pod("orders-1", "zone-a", ready=True)], [], MemberState.LOST, id="no-claim-is-lost"),
        pytest.param(
            [pod("orders-1", "zone-a", ready=True)],
            [claim("orders-1", "zone-a", phase="Lost")],
            MemberState.LOST,
            id="lost-claim-is-lost",
        ),
        pytest.param(
            [pod("orders-1", "zone-a", ready=True, terminating=True)],
            [claim("orders-1", "zone-a")],
            MemberState.UNAVAILABLE,
            id="terminating-pod-is-unavailable",
        ),
        pytest.param(
            [pod("orders-1", "zone-b", ready=True, node_name="node-b")],
            [claim("orders-1", "zone-b")],
            MemberState.UNAVAILABLE,
            id="pod-on-a-notready-node-is-unavailable",
        ),
        pytest.param(
            [pod("orders-1", "zone-a", ready=True, node_name="node-gone")],
            [claim("orders-1", "zone-a")],
            MemberState.UNAVAILABLE,
            id="pod-on-a-vanished-node-is-unavailable",
        ),
        pytest.param(
            [],
            [claim("orders-1", "zone-a", phase="Pending", seeded_from="orders-snap-1")],
            MemberState.RESTORING,
            id="no-pod-claim-being-restored",
        ),
        pytest.param(
            [],
            [claim("orders-1", "zone-a", seeded_from="orders-snap-1")],
            MemberState.PENDING,
            id="no-pod-claim-restored",
        ),
        pytest.param([], [claim("orders-1", "zone-a", phase="Pending")], MemberState.PENDING, id="no-pod-empty-claim"),
        pytest.param(
            [pod("orders-1", "zone-a", ready=True, node_name="node-a")],
            [claim("orders-1", "zone-a")],
            MemberState.READY,
            id="ready-pod-on-a-ready-node",
        ),
        pytest.param(
            [pod("orders-1", "zone-a", phase="Pending")],
            [claim("orders-1", "zone-a")],
            MemberState.STARTING,
            id="pending-pod-is-starting",
        ),
        pytest.param(
            [pod("orders-1", "zone-a", node_name="node-a")],
            [claim("orders-1", "zone-a")],
            MemberState.STARTING,
            id="never-ready-pod-is-starting",
        ),
    ],
)
def test_member_state_from_its_pod_claim_and_node(
    pods: list[dict[str, Any]], claims: list[dict[str, Any]], state: MemberState
) -> None:
    seen = observed(World(nodes=STATE_NODES, pods=tuple(pods), claims=tuple(claims)))
    [view] = seen.members
    assert member_state(view, seen) is state


def test_a_pod_that_was_ready_and_is_no_longer_makes_its_member_unavailable() -> None:
    seen = observed(World(pods=(pod("orders-1", "zone-a", ready=True),), claims=(claim("orders-1", "zone-a"),)))
    [view] = seen.members
    assert view.pod is not None
    was_ready = replace(view, pod=replace(view.pod, ready=False))  # ready_since kept from the Ready pod
    assert member_state(was_ready) is MemberState.UNAVAILABLE


def test_a_member_whose_ready_pod_fails_its_probe_is_unavailable_not_starting() -> None:
    # An unready pod carries no ready_since, so the member's own previous state is what tells a
    # member that stopped serving from a newcomer (regression: it used to be reported Starting).
    spec = store_spec(1, zones=["zone-a"])
    world, status = steady(with_members(empty_world(["zone-a"]), (1, "zone-a")), spec)
    assert [m["state"] for m in status["members"]] == ["Ready"]
    unready = make_unready(world, ["orders-1"])
    [state] = plan(spec, observed(unready, status), NOW).status.members
    assert state.state is MemberState.UNAVAILABLE


# ================================================================================================
# Status: conditions and the store's summary


def was_ready(value: bool, at: int) -> Condition:
    return Condition.model_validate(
        {"type": "Ready", "status": str(value), "reason": "Was", "message": "", "lastTransitionTime": stamp(at)}
    )


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    previous = {"Ready": was_ready(False, 60)}
    kept = condition(previous, ConditionType.READY, False, "MembersNotReady", "1/3 members ready", 4, NOW)
    assert kept.last_transition_time == EPOCH + timedelta(seconds=60)
    assert (kept.reason, kept.message, kept.observed_generation) == ("MembersNotReady", "1/3 members ready", 4)


@pytest.mark.parametrize(
    "previous",
    [
        pytest.param({"Ready": was_ready(False, 60)}, id="flipped"),
        pytest.param({}, id="new"),
    ],
)
def test_a_condition_that_changes_or_appears_transitions_now(previous: dict[str, Condition]) -> None:
    changed = condition(previous, ConditionType.READY, True, "AllMembersReady", "3/3 members ready", 1, NOW)
    assert (changed.status, changed.last_transition_time) == (ConditionStatus.TRUE, NOW)


SIX_READY = tuple((serial, ZONES[(serial - 1) % 3]) for serial in range(1, 7))


def conditions(ready: bool, reconciling: bool, degraded: bool, balanced: bool) -> dict[str, str]:
    """The kstatus and domain conditions of a valid store (Stalled is False whenever the spec is valid)."""
    values = {"Ready": ready, "Reconciling": reconciling, "Stalled": False, "Degraded": degraded}
    domain = {"ZonesBalanced": balanced, "ForeignObjects": False}
    return {kind: str(value) for kind, value in {**values, **domain}.items()}


@pytest.mark.parametrize(
    ("ready", "unready", "replicas", "busy", "summary", "expected"),
    [
        pytest.param(
            SIX_READY, (), 6, False, ("6/6", "3/3", StorePhase.READY), conditions(True, False, False, True),
            id="converged",
        ),
        pytest.param(
            SIX_READY[:5], SIX_READY[5:], 6, False, ("5/6", "2/3", StorePhase.PENDING),
            conditions(False, True, False, True), id="one-member-still-starting",
        ),
        pytest.param(
            SIX_READY, (), 6, True, ("6/6", "3/3", StorePhase.PENDING), conditions(False, True, False, True),
            id="all-ready-but-acting",
        ),
        pytest.param(
            (), (), 3, True, ("0/3", "0/3", StorePhase.PENDING), conditions(False, True, False, True),
            id="new-store",
        ),
        pytest.param(
            ((1, "zone-a"), (2, "zone-a"), (3, "zone-a")), (), 3, False, ("3/3", "1/3", StorePhase.READY),
            conditions(True, False, False, False), id="ready-but-unbalanced",
        ),
    ],
)  # fmt: skip
def test_build_status_summarises_the_store(
    ready: tuple[tuple[int, str], ...],
    unready: tuple[tuple[int, str], ...],
    replicas: int,
    busy: bool,
    summary: tuple[str, str, StorePhase],
    expected: dict[str, str],
) -> None:
    world = with_members(with_members(empty_world(ZONES), *ready), *unready, ready=False)
    status = build_status(store_spec(replicas), observed(world), NOW, zones=ZONES, busy=busy)
    assert (status.ready_display, status.zones_display, status.phase) == summary
    assert {c.type: c.status.value for c in status.conditions} == expected
    assert (status.replicas, status.ready_replicas) == (len(ready) + len(unready), len(ready))


def test_a_member_that_stopped_serving_makes_the_store_degraded() -> None:
    spec = store_spec(3)
    world, status = steady(with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c")), spec)
    decided = plan(spec, observed(make_unready(world, ["orders-2"]), status), NOW)
    conditions = by_type(decided.status.conditions)
    assert decided.status.phase is StorePhase.DEGRADED
    assert (conditions["Degraded"].status, conditions["Degraded"].message) == (
        ConditionStatus.TRUE,
        "unavailable: orders-2",
    )


def test_a_store_smaller_than_its_zones_counts_only_the_zones_it_fills() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"))
    status = build_status(store_spec(2), observed(world), NOW, zones=ZONES, busy=False)
    assert (status.ready_display, status.zones_display, status.phase) == ("2/2", "2/2", StorePhase.READY)


def test_a_recovery_in_flight_is_the_phase_and_degrades_the_store() -> None:
    spec = store_spec(3)
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"))
    world = with_members(world, (4, "zone-c"), ready=False)  # the replacement, still starting
    record = {
        "member": "orders-3",
        "reason": "VolumeLost",
        "source": "Empty",
        "startedAt": stamp(0),
        "replacement": "orders-4",
    }
    status = build_status(spec, observed(world, {"lastRecovery": record}), NOW, zones=ZONES, busy=False)
    assert status.phase is StorePhase.RECOVERING
    assert by_type(status.conditions)["Degraded"].reason == "Recovering"


def test_status_names_the_unready_members_and_the_zone_counts() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-a"), (3, "zone-b"))
    world = with_members(world, (4, "zone-a"), ready=False)
    status = build_status(store_spec(4), observed(world), NOW, zones=ZONES, busy=False)
    conditions = by_type(status.conditions)
    assert conditions["Degraded"].status is ConditionStatus.FALSE  # orders-4 is new, not lost
    assert conditions["Degraded"].message == "no member is lost or unavailable"
    assert conditions["Reconciling"].message == "waiting for: orders-4"
    assert conditions["ZonesBalanced"].message == "zone-a=3, zone-b=1, zone-c=0"
    assert [(z.name, z.members, z.ready) for z in status.zones] == [
        ("zone-a", 3, 2),
        ("zone-b", 1, 1),
        ("zone-c", 0, 0),
    ]


def test_a_member_outside_the_stores_zones_unbalances_it() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-x"))
    status = build_status(store_spec(3), observed(world), NOW, zones=("zone-a", "zone-b"), busy=False)
    assert by_type(status.conditions)["ZonesBalanced"].status is ConditionStatus.FALSE


def test_status_carries_notes_last_serial_and_revision() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"))
    previous = {"lastSerial": 4}
    status = build_status(
        store_spec(2),
        observed(world, previous),
        NOW,
        zones=ZONES,
        busy=False,
        revision="rev1",
        last_serial=3,
        notes=["no zone has a schedulable node: cannot place new members"],
    )
    assert by_type(status.conditions)["Reconciling"].message.startswith("no zone has a schedulable node")
    assert status.last_serial == 4
    assert (status.current_revision, status.update_revision, status.updated_replicas) == ("rev1", "rev1", 0)


def test_members_on_the_current_revision_count_as_updated() -> None:
    world = World(
        pods=(pod("orders-1", "zone-a", ready=True, revision="rev1"), pod("orders-2", "zone-b", ready=True)),
        claims=(claim("orders-1", "zone-a"), claim("orders-2", "zone-b")),
    )
    status = build_status(store_spec(2), observed(world), NOW, zones=ZONES, busy=False, revision="rev1")
    assert status.updated_replicas == 1
    assert [m.revision for m in status.members] == ["rev1", None]


def test_a_member_keeps_its_since_while_its_state_holds() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"))
    previous = {
        "members": [
            {"name": "orders-1", "zone": "zone-a", "state": "Ready", "since": stamp(30)},
            {"name": "orders-2", "zone": "zone-b", "state": "Starting", "since": stamp(30)},
        ]
    }
    status = build_status(store_spec(2), observed(world, previous), NOW, zones=ZONES, busy=False)
    assert [m.since for m in status.members] == [EPOCH + timedelta(seconds=30), NOW]


# ================================================================================================
# plan(): the decisions in order


def test_a_new_store_gets_its_children_and_every_member_at_once() -> None:
    decided = plan(store_spec(4), observed(empty_world(ZONES)), NOW, has_ports=True)
    assert described(decided.actions) == [
        ("EnsureChild", "orders-peers"),
        ("EnsureChild", "orders"),
        ("EnsureChild", "orders"),
        ("CreateMember", "orders-1"),
        ("CreateMember", "orders-2"),
        ("CreateMember", "orders-3"),
        ("CreateMember", "orders-4"),
    ]
    assert [a.child for a in decided.actions if isinstance(a, EnsureChild)] == [
        "peers-service",
        "client-service",
        "disruption-budget",
    ]
    assert decided.peers == ("orders-1", "orders-2", "orders-3", "orders-4")
    assert decided.requeue_after == REQUEUE_BUSY
    assert decided.status.last_serial == 4, "the serials about to be used are in the status written before act"


def test_a_store_without_client_ports_gets_no_client_service() -> None:
    decided = plan(store_spec(1), observed(empty_world(ZONES)), NOW, has_ports=False)
    assert [a.child for a in decided.actions if isinstance(a, EnsureChild)] == ["peers-service", "disruption-budget"]


def test_existing_children_are_not_created_again() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"))
    decided = plan(store_spec(1), observed(replace(world, children=ALL_CHILDREN)), NOW, has_ports=True)
    assert decided.actions == ()


def test_a_converged_store_does_nothing_and_looks_again_late() -> None:
    spec = store_spec(3)
    world, status = steady(empty_world(ZONES), spec)
    decided = plan(spec, observed(world, status), NOW + timedelta(minutes=5))
    assert decided.actions == ()
    assert decided.requeue_after == REQUEUE_STEADY
    assert decided.status.phase is StorePhase.READY


def test_a_steady_state_reconcile_writes_no_status() -> None:
    spec = store_spec(5)
    world, status = steady(empty_world(ZONES), spec)
    later = plan(spec, observed(world, status), NOW + timedelta(hours=3)).status.to_wire()
    assert status_patch(status, later) is None


def test_an_interrupted_retirement_is_finished() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"))
    world = replace(
        world,
        children=ALL_CHILDREN,
        pods=(*world.pods, pod("orders-3", "zone-c", uid="u-3", ready=True)),
        claims=(*world.claims, claim("orders-3", "zone-c", retired=True)),
    )
    decided = plan(store_spec(2), observed(world), NOW, has_ports=True)
    assert decided.actions == (DeletePod("orders-3", "u-3", decided.actions[0].why),)


def test_a_terminating_left_over_pod_is_not_deleted_again() -> None:
    world = World(
        children=ALL_CHILDREN,
        pods=(pod("orders-3", "zone-c", terminating=True),),
        claims=(claim("orders-3", "zone-c", retired=True),),
        nodes=empty_world(ZONES).nodes,
    )
    assert described(plan(store_spec(1), observed(world), NOW, has_ports=True).actions) == [
        ("CreateMember", "orders-4")
    ]


def _three_serving() -> tuple[World, dict[str, Any]]:
    return steady(empty_world(ZONES), store_spec(3))


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(lambda w: zones_down(w, ["zone-a"]), id="its-node-notready"),
        pytest.param(
            lambda w: replace(w, nodes=tuple(n for n in w.nodes if n["metadata"]["name"] != "node-zone-a-0")),
            id="its-node-deleted",
        ),
    ],
)
def test_scale_down_takes_no_serving_member_while_another_is_down(outage: Callable[[World], World]) -> None:
    # Regression (found in review, fixed): retirement_order and retire_one judge readiness by the pod alone
    # (MemberView.ready), while member_state also looks at the node. A member whose node is NotReady
    # or gone still has a pod that reports Ready until the node controller or pod GC catches up, so
    # the quorum guard sees everyone ready and retires a member that serves, next to one that does not.
    world, status = _three_serving()
    world = outage(world)
    decided = replan(store_spec(2), world, status)
    assert decided.status.members[0].state is MemberState.UNAVAILABLE
    assert [a.member for a in decided.actions if isinstance(a, RetireMember)] in ([], ["orders-1"])


def test_a_member_that_stopped_serving_leaves_first_on_scale_down() -> None:
    # Regression (found in review, fixed): status calls a member whose pod stopped being ready Unavailable,
    # but retirement_order ranks it with the newcomers (member_state without the previous status), so
    # it is kept and, being unready, blocks every other retirement: a scale down waits for as long as
    # that member fails (a crash-looping member: for ever), instead of letting the broken one go.
    world, status = _three_serving()
    decided = replan(store_spec(2), make_unready(world, ["orders-1"]), status)
    assert described(a for a in decided.actions if isinstance(a, RetireMember)) == [("RetireMember", "orders-1")]


def test_a_retiring_member_is_not_among_the_peers() -> None:
    spec = store_spec(2)
    world, status = steady(empty_world(ZONES), store_spec(3))
    decided = plan(spec, observed(world, status), NOW)
    assert described(decided.actions) == [("RetireMember", "orders-3")]
    assert decided.peers == ("orders-1", "orders-2")


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        pytest.param([], [("CreatePod", "orders-3")], id="pod-missing"),
        pytest.param(  # a replaced pod (created well after its claim): the member may have served
            [pod("orders-3", "zone-c", phase="Failed", created=120)], [("DeletePod", "orders-3")], id="pod-finished"
        ),
    ],
)
def test_a_surplus_member_being_healed_is_healed_not_also_retired(
    pods: list[dict[str, Any]], expected: list[tuple[str, str]]
) -> None:
    # Healing and scaling decide separately; a member must never get both (a pod started for a member
    # that leaves in the same breath, or one pod deleted twice). Nor may a ready member leave meanwhile.
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"))
    world = replace(
        world, children=ALL_CHILDREN, claims=(*world.claims, claim("orders-3", "zone-c")), pods=(*world.pods, *pods)
    )
    assert described(plan(store_spec(2), observed(world), NOW, has_ports=True).actions) == expected


def test_a_member_that_healing_makes_vanish_is_not_counted_by_scaling() -> None:
    # Regression (found in review, fixed): a member with no claim is lost, but while its zone is down under
    # zoneFailure Wait it is not recovered; heal_pods still deletes its finished pod, its last trace,
    # while scale counts it as a member. The next plan no longer sees it and scales up again (I7).
    world = World(
        nodes=(node("node-zone-a-0", "zone-a", ready=False), node("node-zone-b-0", "zone-b")),
        pods=(pod("orders-1", "zone-a", phase="Failed", node_name="node-zone-a-0"),),
        children=ALL_CHILDREN,
    )
    spec = store_spec(2, ["zone-a", "zone-b"])
    first = replan(spec, world, {})
    produced = apply(world, first)
    again = replan(spec, produced, first.status.to_wire())
    assert duplicates(first, produced, again) == [], (described(first.actions), described(again.actions))


# ================================================================================================
# Stop signs: an invalid or paused store gets status only (I6)

BUSY_WORLDS = [
    pytest.param(empty_world(ZONES), 3, id="new-store"),
    pytest.param(
        World(nodes=empty_world(ZONES).nodes, claims=(claim("orders-1", "zone-a"),)), 3, id="pod-missing-and-short"
    ),
    pytest.param(with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c")), 1, id="surplus"),
    pytest.param(
        World(pods=(pod("orders-1", "zone-a", phase="Failed"),), claims=(claim("orders-1", "zone-a"),)),
        1,
        id="finished-pod",
    ),
]


@pytest.mark.parametrize(("world", "replicas"), BUSY_WORLDS)
def test_an_invalid_spec_stalls_the_store_with_its_message_and_no_action(world: World, replicas: int) -> None:
    message = "spec.updates.canary: 5 exceeds replicas (3): lower canary or raise replicas"
    for spec in (None, store_spec(replicas)):
        decided = plan(spec, observed(world), NOW, invalid=message)
        assert decided.actions == ()
        assert decided.status.phase is StorePhase.INVALID
        conditions = by_type(decided.status.conditions)
        assert (conditions["Stalled"].status, conditions["Stalled"].reason) == (ConditionStatus.TRUE, "InvalidSpec")
        assert conditions["Stalled"].message == message
        assert conditions["Ready"].status is ConditionStatus.FALSE
        assert conditions["Reconciling"].status is ConditionStatus.FALSE
        assert decided.notes == (message,)


@pytest.mark.parametrize(("world", "replicas"), BUSY_WORLDS)
def test_a_paused_store_gets_status_only(world: World, replicas: int) -> None:
    decided = plan(store_spec(replicas, paused=True), observed(world), NOW, has_ports=True)
    assert decided.actions == ()
    assert decided.status.phase is StorePhase.PAUSED
    reconciling = by_type(decided.status.conditions)["Reconciling"]
    assert (reconciling.status, reconciling.reason) == (ConditionStatus.FALSE, "Paused")
    assert decided.status.replicas == len(observed(world).members)


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
            [*PINNED, ("TakeSnapshot", "orders-1"), ("TakeSnapshot", "orders-2")],
            False,
            id="snapshot-pins-every-volume-then-takes-final-snapshots-of-live-members",
        ),
        pytest.param(
            DeletionPolicy.SNAPSHOT,
            {final("orders-1"): True},
            [*PINNED, ("TakeSnapshot", "orders-2")],
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
    [snapshot] = [a for a in actions if isinstance(a, TakeSnapshot)]
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
    assert not any(isinstance(a, TakeSnapshot) for a in actions)
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


# ================================================================================================
# The status patch act writes


@pytest.mark.parametrize(
    ("current", "new", "patch"),
    [
        pytest.param({"phase": "Ready", "replicas": 3}, {"phase": "Ready", "replicas": 3}, None, id="equal-no-write"),
        pytest.param({}, {}, None, id="both-empty-no-write"),
        pytest.param(
            {"phase": "Pending", "replicas": 3},
            {"phase": "Ready", "replicas": 3},
            {"phase": "Ready"},
            id="changed-only",
        ),
        pytest.param({"phase": "Ready", "rollout": {"zone": "a"}}, {"phase": "Ready"}, {"rollout": None}, id="nulls"),
        pytest.param(
            {"phase": "Ready", "kopf": {"progress": {}}}, {"phase": "Ready"}, None, id="kopf-left-alone-when-absent"
        ),
        pytest.param(
            {"kopf": {"progress": {}}, "zones": [{"name": "a"}]},
            {"zones": [{"name": "b"}]},
            {"zones": [{"name": "b"}]},
            id="lists-replaced-whole-kopf-untouched",
        ),
        pytest.param(  # a merge patch keeps what it does not name: the old record's fields must be nulled
            {"lastRecovery": {"member": "o-1", "readyAt": "t1", "seconds": 2.0, "snapshot": "s1"}},
            {"lastRecovery": {"member": "o-2", "source": "Empty"}},
            {"lastRecovery": {"member": "o-2", "source": "Empty", "readyAt": None, "seconds": None, "snapshot": None}},
            id="nested-fields-of-a-new-record-nulled",
        ),
    ],
)
def test_status_patch_is_the_difference_or_nothing(
    current: dict[str, Any], new: dict[str, Any], patch: dict[str, Any] | None
) -> None:
    assert status_patch(current, new) == patch


def test_a_planned_status_never_carries_kopfs_bookkeeping() -> None:
    status = {"kopf": {"progress": {"run_store": {"started": stamp()}}}}
    wire = plan(store_spec(3), observed(empty_world(ZONES), status), NOW).status.to_wire()
    assert "kopf" not in wire
    patch = status_patch(status, wire)
    assert patch is not None and "kopf" not in patch


# ================================================================================================
# Invariants, as properties over any valid spec

ZONE_SETS = st.lists(st.sampled_from(ZONE_POOL), min_size=1, max_size=5, unique=True)
REPLICAS = st.integers(1, 30)
CORDONED = node("node-cordoned", "zone-cordoned", unschedulable=True)
PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEMBER_ACTIONS = (CreateMember, CreatePod, DeletePod, RetireMember)
BASE = store_spec(1)


@st.composite
def planner_specs(
    draw: st.DrawFn, replicas: st.SearchStrategy[int], zones: st.SearchStrategy[list[str] | None]
) -> ReplicatedStoreSpec:
    """Valid specs varying all that the planner reads (replicas, zones, snapshots, recovery, deletion
    policy; built from the shared strategies' parts) around a fixed template, which the planner never
    reads. Cheap to draw, so that a failure shrinks in seconds; ``specs()`` varies every field."""
    zone_list = draw(zones)
    snapshots = draw(st.none() | snapshot_specs())
    policies = list(DeletionPolicy) if snapshots is not None else [DeletionPolicy.RETAIN, DeletionPolicy.DELETE]
    return ReplicatedStoreSpec(
        replicas=draw(replicas),
        zones=zone_list,
        template=BASE.template,
        storage=BASE.storage,
        snapshots=snapshots,
        recovery=draw(recovery_specs(zone_list)),
        deletion_policy=draw(st.sampled_from(policies)),
    )


@st.composite
def stores(
    draw: st.DrawFn, replicas: st.SearchStrategy[int] = REPLICAS, *, every_field: bool = False
) -> tuple[ReplicatedStoreSpec, World]:
    """A valid, unpaused spec over 1..5 zones (listed, or those of the nodes), and its empty world."""
    zones = draw(ZONE_SETS)
    listed = st.just(zones) if draw(st.booleans()) else st.none()
    spec = draw(specs(replicas, listed) if every_field else planner_specs(replicas, listed))
    return spec.model_copy(update={"paused": False}), empty_world(zones, extra_nodes=[CORDONED])


def resized(spec: ReplicatedStoreSpec, replicas: int) -> ReplicatedStoreSpec:
    return spec.model_copy(update={"replicas": replicas})


def serial(name: str) -> int:
    value = names.serial_of("orders", name)
    assert value is not None, name
    return value


def assert_converged(run: Run, spec: ReplicatedStoreSpec, zones: Sequence[str]) -> None:
    members = observed(run.world, run.status).members
    assert len(members) == spec.replicas
    assert all(m.pod_ready for m in members)
    assert len({m.name for m in members}) == len(members)
    assert {m.zone for m in members} <= set(zones)
    assert skew(zones, members) <= 1


@PROPERTY
@given(stores(every_field=True))
def test_any_store_converges_from_nothing_balanced_with_fresh_names(store: tuple[ReplicatedStoreSpec, World]) -> None:
    spec, world = store
    zones = desired_zones(spec, observed(world))
    assert "zone-cordoned" not in zones
    run = converge(spec, world, {})
    assert_converged(run, spec, zones)
    serials = [serial(name) for name in run.created]
    assert serials == sorted(set(serials)), "serials strictly increase"
    assert run.status["lastSerial"] == max(serials)


@PROPERTY
@given(stores(), st.lists(REPLICAS, min_size=2, max_size=3))
def test_scaling_up_and_down_stays_balanced_and_never_reuses_a_name(
    store: tuple[ReplicatedStoreSpec, World], sizes: list[int]
) -> None:
    spec, world = store
    zones = desired_zones(spec, observed(world))
    status: dict[str, Any] = {}
    created: list[str] = []
    for size in [spec.replicas, *sizes]:
        run = converge(resized(spec, size), world, status)
        assert_converged(run, resized(spec, size), zones)
        skews = [skew(zones, observed(produced).members) for _, produced in run.steps]
        assert max(skews, default=0) <= 1, f"every step keeps the zones balanced, not only the end: {skews}"
        world, status = run.world, run.status
        created += run.created
    serials = [serial(name) for name in created]
    assert serials == sorted(set(serials)), f"a serial came back (I5): {created}"


@PROPERTY
@given(stores(replicas=st.integers(2, 30)), st.data())
def test_scale_down_retires_one_at_a_time_the_newest_of_a_fullest_zone(
    store: tuple[ReplicatedStoreSpec, World], data: st.DataObject
) -> None:
    spec, world = store
    zones = desired_zones(spec, observed(world))
    # A balanced store with any history: the newest member need not sit in a fullest zone.
    serials = data.draw(st.lists(st.integers(1, 500), min_size=spec.replicas, max_size=spec.replicas, unique=True))
    world = with_members(world, *zip(serials, place(zones, {}, spec.replicas), strict=True))
    smaller = resized(spec, data.draw(st.integers(1, spec.replicas - 1), label="smaller"))
    status: dict[str, Any] = {}
    for _ in range(spec.replicas + 2):
        members = observed(world, status).members
        decided = replan(smaller, world, status)
        status = decided.status.to_wire()
        work = [a for a in decided.actions if isinstance(a, MEMBER_ACTIONS)]
        if not work:
            break
        [retire] = work
        assert isinstance(retire, RetireMember)
        counts = zone_counts(zones, members)
        fullest = [m for m in members if counts[m.zone] == max(counts.values())]
        assert retire.member == max(fullest, key=lambda m: m.serial).name
        world = make_ready(apply(world, decided))
        assert skew(zones, observed(world).members) <= 1
    assert len(observed(world, status).members) == smaller.replicas


def serving(seen: Observed) -> int:
    """Members that serve: ready pods on Ready nodes (what the status reports as Ready)."""
    return sum(member_state(m, seen) is MemberState.READY for m in seen.members)


@PROPERTY
@given(stores(replicas=st.integers(2, 12)), st.data())
def test_scale_down_never_breaks_quorum_whichever_members_or_zones_fail(
    store: tuple[ReplicatedStoreSpec, World], data: st.DataObject
) -> None:
    spec, world = store
    zones = sorted(observed(world).zones_with_nodes())
    run = converge(spec, world, {})
    smaller = resized(spec, data.draw(st.integers(1, spec.replicas - 1), label="smaller"))
    world, status = run.world, run.status
    faults = data.draw(st.integers(1, 3), label="turns with failures")
    for turn in range(faults + spec.replicas + 2):
        if turn < faults:  # members and zones fail for a while, then the store is left to finish
            live = sorted(m.name for m in observed(world).members)
            world = make_unready(world, data.draw(st.sets(st.sampled_from(live), max_size=2), label="probes failing"))
            world = zones_down(world, data.draw(st.sets(st.sampled_from(zones), max_size=2), label="zones down"))
        else:
            world = zones_down(world, ())
        before = observed(world, status)
        decided = replan(smaller, world, status)
        status = decided.status.to_wire()
        after = observed(apply(world, decided), status)
        members_before, members_after = len(before.members), len(after.members)
        ready_before, ready_after = serving(before), serving(after)
        if ready_after < ready_before:  # only a store whose members all serve may give up a serving one
            assert (ready_before, ready_after) == (members_before, members_after), described(decided.actions)
        if 2 * ready_before > members_before:
            assert 2 * ready_after > members_after, f"a voluntary retirement broke quorum (I2): {decided.actions}"
        world = make_ready(apply(world, decided))
    assert len(observed(world, status).members) == smaller.replicas


@PROPERTY
@given(stores(), st.lists(REPLICAS, min_size=1, max_size=2))
def test_planning_again_on_the_world_a_plan_produced_repeats_nothing(
    store: tuple[ReplicatedStoreSpec, World], sizes: list[int]
) -> None:
    spec, world = store
    status: dict[str, Any] = {}
    for size in [spec.replicas, *sizes]:
        run = converge(resized(spec, size), world, status)
        for decided, produced in run.steps:
            again = replan(resized(spec, size), produced, decided.status.to_wire())
            assert duplicates(decided, produced, again) == [], (described(decided.actions), described(again.actions))
        world, status = run.world, run.status


# Any world a store can be found in: nodes up or down, members whose pod and claim are in any state.
POD_STATES: dict[str, dict[str, Any] | None] = {
    "none": None,
    "pending": {"phase": "Pending"},
    "running": {"phase": "Running"},
    "ready": {"phase": "Running", "ready": True},
    "terminating": {"phase": "Running", "ready": True, "terminating": True},
    "succeeded": {"phase": "Succeeded"},
    "failed": {"phase": "Failed"},
}
CLAIM_STATES: dict[str, dict[str, Any] | None] = {
    "none": None,
    "pending": {"phase": "Pending"},
    "bound": {"phase": "Bound"},
    "restoring": {"phase": "Pending", "seeded_from": "orders-snap-1", "created": START - 1},
    "lost": {"phase": "Lost"},
    "terminating": {"phase": "Bound", "terminating": True},
    "retired": {"phase": "Bound", "retired": True},
}
NODE_STATES: dict[str, dict[str, Any]] = {
    "ready": {},
    "down-just-now": {"ready": False, "since": START - 1},
    "down-an-hour": {"ready": False},
}


@st.composite
def worlds(draw: st.DrawFn) -> World:
    zones = draw(ZONE_SETS)
    nodes = [node(f"node-{z}-0", z, **NODE_STATES[draw(st.sampled_from(sorted(NODE_STATES)))]) for z in zones]
    pods, claims = [], []
    for number in draw(st.lists(st.integers(1, 40), max_size=8, unique=True)):
        name, zone = f"orders-{number}", draw(st.sampled_from(zones))
        pod_state = POD_STATES[draw(st.sampled_from(sorted(POD_STATES)))]
        claim_state = CLAIM_STATES[draw(st.sampled_from(sorted(CLAIM_STATES)))]
        on = draw(st.sampled_from([None, f"node-{zone}-0", "node-gone"]))
        if pod_state is not None:
            pods.append(pod(name, zone, node_name=on, **pod_state))
        if claim_state is not None:
            claims.append(claim(name, zone, **claim_state))
    children = draw(st.frozensets(st.sampled_from(sorted(ALL_CHILDREN))))
    return World(nodes=tuple(nodes), pods=tuple(pods), claims=tuple(claims), children=children)


ANY_SPEC = planner_specs(st.integers(1, 12), st.none() | ZONE_SETS)


@PROPERTY
@given(worlds(), specs(replicas=st.integers(1, 12)), st.booleans())
def test_an_invalid_or_paused_store_gets_no_action_whatever_its_world(
    world: World, spec: ReplicatedStoreSpec, invalid: bool
) -> None:
    if invalid:
        decided = plan(None, observed(world), world.now, invalid="spec.replicas: must be at least 1")
    else:
        decided = replan(spec.model_copy(update={"paused": True}), world, {})
    assert decided.actions == ()


@PROPERTY
@given(worlds(), ANY_SPEC)
def test_from_any_world_planning_again_repeats_nothing(world: World, spec: ReplicatedStoreSpec) -> None:
    first = replan(spec, world, {})
    produced = replace(apply(world, first), rejected=())
    again = replan(spec, produced, first.status.to_wire())
    assert duplicates(first, produced, again) == [], (described(first.actions), described(again.actions))
    assert max(produced.pods_per_member().values(), default=0) <= 1


@PROPERTY
@given(worlds(), ANY_SPEC)
def test_from_any_world_a_plan_acts_once_on_each_member_and_wastes_no_write(
    world: World, spec: ReplicatedStoreSpec
) -> None:
    decided = replan(spec, world, {})
    per_member = Counter(a.member for a in decided.actions if isinstance(a, MEMBER_ACTIONS))
    assert [m for m, n in per_member.items() if n > 1] == [], described(decided.actions)
    assert apply(world, decided).rejected == ()
