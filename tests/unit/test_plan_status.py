"""Status: member states, kstatus conditions and the store's summary.

The pure world of ``tests/unit/world.py``, observed exactly as the handlers observe it; shared
helpers live in ``tests/unit/test_plan.py``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from phalanx.models import (
    Condition,
    ConditionStatus,
    ConditionType,
    MemberState,
    StorePhase,
)
from phalanx.plan import (
    Progress,
    build_status,
    condition,
    member_state,
    plan,
)
from tests.unit.test_plan import (
    NOW,
    ZONES,
    by_type,
    steady,
)
from tests.unit.world import (
    EPOCH,
    START,
    World,
    claim,
    empty_world,
    make_unready,
    node,
    observed,
    pod,
    stamp,
    store_spec,
    with_members,
)

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
    status = build_status(store_spec(replicas), observed(world), NOW, ZONES, Progress(busy=busy))
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
    status = build_status(store_spec(2), observed(world), NOW, ZONES)
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
    status = build_status(spec, observed(world, {"lastRecovery": record}), NOW, ZONES)
    assert status.phase is StorePhase.RECOVERING
    assert by_type(status.conditions)["Degraded"].reason == "Recovering"


def test_status_names_the_unready_members_and_the_zone_counts() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-a"), (3, "zone-b"))
    world = with_members(world, (4, "zone-a"), ready=False)
    status = build_status(store_spec(4), observed(world), NOW, ZONES)
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
    status = build_status(store_spec(3), observed(world), NOW, ("zone-a", "zone-b"))
    assert by_type(status.conditions)["ZonesBalanced"].status is ConditionStatus.FALSE


def test_status_carries_notes_last_serial_and_revision() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"))
    previous = {"lastSerial": 4}
    status = build_status(
        store_spec(2),
        observed(world, previous),
        NOW,
        ZONES,
        Progress(revision="rev1", last_serial=3, notes=["no zone has a schedulable node: cannot place new members"]),
    )
    assert by_type(status.conditions)["Reconciling"].message.startswith("no zone has a schedulable node")
    assert status.last_serial == 4
    assert (status.current_revision, status.update_revision, status.updated_replicas) == ("rev1", "rev1", 0)


def test_members_on_the_current_revision_count_as_updated() -> None:
    world = World(
        pods=(pod("orders-1", "zone-a", ready=True, revision="rev1"), pod("orders-2", "zone-b", ready=True)),
        claims=(claim("orders-1", "zone-a"), claim("orders-2", "zone-b")),
    )
    status = build_status(store_spec(2), observed(world), NOW, ZONES, Progress(revision="rev1"))
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
    status = build_status(store_spec(2), observed(world, previous), NOW, ZONES)
    assert [m.since for m in status.members] == [EPOCH + timedelta(seconds=30), NOW]


@pytest.mark.parametrize("spec", [store_spec(3), None], ids=["valid", "invalid"])
def test_status_names_the_members_pods_by_a_selector_for_the_scale_subresource(spec: Any) -> None:
    """The scale subresource's labelSelectorPath: HPA and VPA select the member pods with it, whatever
    the spec's state (an invalid store still scales once it is fixed)."""
    world = with_members(empty_world(ZONES), (1, "zone-a"))
    decided = plan(spec, observed(world), NOW, invalid=None if spec else "spec.replicas: missing")
    assert decided.status.selector == "phalanx.dev/store=orders"
    [pod_] = world.pods
    key, _, value = decided.status.selector.partition("=")
    assert pod_["metadata"]["labels"][key] == value
