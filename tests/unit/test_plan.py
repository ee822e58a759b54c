"""The planner, as a specification: what Phalanx decides to do about a store, and what it reports.

This module holds the orchestrator's view: the decisions of ``plan`` in order, the two stop signs (an
invalid or paused store gets status only, I6) and the invariants of the design as properties over any
valid spec: converging from nothing, scaling up and down, quorum kept (I2), one pod per member and no
name reused (I5), no duplicate action when planning again on the world a plan produced (I7). It also
holds the helpers the other planner tests share. Each concern has its own module beside it:
``test_plan_placement``, ``test_plan_membership``, ``test_plan_status``, ``test_plan_deletion``,
``test_plan_safety``, ``test_plan_edges``, ``test_plan_defects``, ``test_plan_invariants`` (I1, I4).

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
    ConditionStatus,
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
    DeleteDrill,
    DeletePod,
    DeleteSnapshot,
    EnsureChild,
    Plan,
    RetireMember,
    Snapshot,
    StartDrill,
    desired_zones,
    member_state,
    place,
    plan,
    skew,
    zone_counts,
)
from tests.strategies import ZONE_POOL, recovery_specs, retired_volume_specs, snapshot_specs, specs
from tests.unit.world import (
    EPOCH,
    START,
    World,
    apply,
    claim,
    empty_world,
    make_ready,
    make_unready,
    node,
    observed,
    pod,
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
    named = (EnsureChild, Snapshot, DeleteSnapshot, StartDrill, DeleteDrill)
    about = action.name if isinstance(action, named) else action.member
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
        retired_volumes=draw(retired_volume_specs()),
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
    "retired-just-now": {"phase": "Bound", "retired": True, "retired_at": START - 1},
    "retired-undated": {"phase": "Bound", "retired": True, "retired_at": -1},
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
