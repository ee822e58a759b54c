"""Rolling replacement, as a specification: zone by zone, canary first, gated batches, within the one
disruption budget; paused, halted and reverted; on-demand replacement; crash-safe by construction.

A rollout is driven pass by pass: plan at the world's time with the status the last pass wrote, apply
what it decided, let the kubelet make new pods Ready, move the clock one second. Every world a plan
produced is checked against the budget (I1, I2) before the kubelet runs, so a dip is seen.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phalanx import names
from phalanx.models import ReplicatedStoreSpec, StorePhase
from phalanx.observe import Observed
from phalanx.plan import CreateMember, DeletePod, Plan, RetireMember, plan, serving
from tests.unit.test_plan import PROPERTY, ZONES, by_type, described, steady
from tests.unit.world import World, apply, make_ready, make_unready, node, observed, store_spec

OLD, NEW = "rev-old", "rev-new"


def rollout_spec(replicas: int = 6, **updates: Any) -> ReplicatedStoreSpec:
    gate = {"minReadySeconds": 1, "consecutiveChecks": 2}
    return store_spec(replicas, updates={"healthGate": gate, "progressDeadline": "60s", **updates})


def store_at(spec: ReplicatedStoreSpec, revision: str = OLD, per_zone_nodes: int = 1) -> tuple[World, dict[str, Any]]:
    """A converged store whose pods all run ``revision``."""
    nodes = tuple(node(f"node-{z}-{i}", z) for z in ZONES for i in range(per_zone_nodes))
    world, status = steady(World(nodes=nodes), spec)
    pods = []
    for raw in world.pods:
        labelled = copy.deepcopy(raw)
        labelled["metadata"]["labels"][names.REVISION_LABEL] = revision
        pods.append(labelled)
    return replace(world, pods=tuple(pods)), status


@dataclass
class Drive:
    """A store driven through a rollout, pass by pass."""

    spec: ReplicatedStoreSpec
    world: World
    status: dict[str, Any]
    revision: str = NEW
    annotations: dict[str, str] = field(default_factory=dict)
    plans: list[tuple[int, Plan, World]] = field(default_factory=list)
    kubelet: Callable[[World], World] = make_ready
    serving_before: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        seen = observed(self.world)
        self.serving_before = {m.name for m in seen.members if serving(m, seen)}

    def seen(self) -> Observed:
        return observed(self.world, self.status, annotations=self.annotations)

    def step(self) -> Plan:
        decided = plan(self.spec, self.seen(), self.world.now, revision=self.revision, has_ports=True)
        self.status = decided.status.to_wire()
        produced = replace(apply(self.world, decided), rejected=())
        self.plans.append((self.world.clock, decided, produced))
        self.world = replace(self.kubelet(produced), clock=produced.clock + 1)
        return decided

    def until(self, done: Callable[[Plan], bool], rounds: int = 400) -> Plan:
        for _ in range(rounds):
            decided = self.step()
            if done(decided):
                return decided
        raise AssertionError(f"not done in {rounds} passes; last status.rollout: {self.status.get('rollout')}")

    def finished(self) -> Plan:
        return self.until(
            lambda p: (
                p.status.rollout is None
                and all(m.revision == self.revision for m in p.status.members)
                and not p.actions
            )
        )

    def steps(self) -> list[tuple[str, list[str]]]:
        """Each step: its kind (InPlace, Replace) and members, in order."""
        found = []
        for _, decided, _ in self.plans:
            taken = [a.member for a in decided.actions if isinstance(a, DeletePod) and a.reason == "MemberUpdating"]
            made = [
                a.replaces or ""
                for a in decided.actions
                if isinstance(a, CreateMember) and a.reason == "MemberReplacing"
            ]
            if taken:
                found.append(("InPlace", taken))
            if made:
                found.append(("Replace", made))
        return found


def zone_of(world: World, member: str) -> str:
    return str(next(c["metadata"]["labels"][names.ZONE_LABEL] for c in world.claims if c["metadata"]["name"] == member))


def budget_violations(spec: ReplicatedStoreSpec, drive: Drive) -> list[str]:
    """Every world a plan produced, checked: a majority of members serving, unavailable members in
    one zone at most, and no more of them there than maxUnavailablePerZone."""
    found = []
    before = drive.serving_before
    for clock, _, produced in drive.plans:
        seen = observed(produced)
        # Members that served before: a new one (scaling, a Replace step) on its way takes nothing out.
        out = [m for m in seen.members if m.name in before and not serving(m, seen)]
        if sum(1 for m in seen.members if serving(m, seen)) * 2 <= len(seen.members):
            found.append(f"t={clock}: no majority serving ({[m.name for m in out]} out)")
        zones = Counter(m.zone for m in out)
        if len(zones) > 1:
            found.append(f"t={clock}: members out in two zones: {dict(zones)}")
        if zones and max(zones.values()) > spec.updates.max_unavailable_per_zone:
            found.append(f"t={clock}: {dict(zones)} out, beyond maxUnavailablePerZone")
    return found


def never_ready(member: str) -> Callable[[World], World]:
    """A kubelet under which ``member``'s pod runs but never passes its readiness probe."""

    def kubelet(world: World) -> World:
        return make_unready(make_ready(world), [member])

    return kubelet


# ================================================================================================
# The whole rollout


@pytest.mark.parametrize("strategy", ["InPlace", "Replace"])
@pytest.mark.parametrize(("replicas", "per_zone"), [(6, 1), (9, 1), (9, 2)])
def test_a_rollout_goes_zone_by_zone_canary_first_within_the_budget(
    strategy: str, replicas: int, per_zone: int
) -> None:
    spec = rollout_spec(replicas, strategy=strategy, maxUnavailablePerZone=per_zone, canary=1)
    world, status = store_at(spec)
    drive = Drive(spec, world, status)
    last = drive.finished()
    assert budget_violations(spec, drive) == []
    steps = drive.steps()
    assert len(steps[0][1]) == 1, "the canary goes alone"
    zones = [zone_of(world, members[0]) for _, members in steps]
    assert zones == sorted(zones), f"one zone at a time, by name: {zones}"
    assert all(len(members) <= per_zone for _, members in steps)
    assert all(kind == strategy for kind, _ in steps)
    updated = sorted(m for _, members in steps for m in members)
    assert updated == sorted(c["metadata"]["name"] for c in world.claims), "every member updated exactly once"
    assert last.status.phase is StorePhase.READY and last.status.updated_replicas == replicas
    if strategy == "InPlace":  # same volumes: no data moved
        assert {c["metadata"]["uid"] for c in drive.world.claims} >= {c["metadata"]["uid"] for c in world.claims}
    else:
        retired = [a.member for _, p, _ in drive.plans for a in p.actions if isinstance(a, RetireMember)]
        assert sorted(retired) == updated, "each replaced member retired once its replacement passed the gate"


def test_the_next_step_waits_for_the_health_gate() -> None:
    spec = rollout_spec(6, healthGate={"minReadySeconds": 5, "consecutiveChecks": 3})
    world, status = store_at(spec)
    drive = Drive(spec, world, status)
    drive.finished()
    starts = [clock for clock, p, _ in drive.plans if any(a.reason == "MemberUpdating" for a in p.actions)]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Ready one pass after the deletion, then 5 s, then 3 readings 2 s apart.
    assert min(gaps) >= 5 + 2 * 2, gaps


def test_ready_stays_true_and_nothing_is_degraded_while_a_step_is_in_flight() -> None:
    spec = rollout_spec(6)
    world, status = store_at(spec)
    drive = Drive(spec, world, status)
    drive.finished()
    for _, decided, _ in drive.plans:
        conditions = by_type(decided.status.conditions)
        assert conditions["Ready"].status.value == "True", conditions["Ready"].message
        assert conditions["Degraded"].status.value == "False", conditions["Degraded"].message
    mid = drive.plans[3][1].status
    assert mid.phase is StorePhase.UPDATING
    assert mid.rollout is not None and mid.rollout.steps, "the remaining steps are listed"
    assert by_type(mid.conditions)["Reconciling"].reason == "RollingOut"


def test_status_shows_the_plan_before_the_first_step_is_taken() -> None:
    spec = rollout_spec(6, paused=True)
    world, status = store_at(spec)
    drive = Drive(spec, world, status)
    decided = drive.step()
    rollout = decided.status.rollout
    assert rollout is not None and rollout.paused and decided.actions == ()
    assert rollout.steps == [
        "zone-a (canary): orders-1",
        "zone-a: orders-4",
        "zone-b: orders-2",
        "zone-b: orders-5",
        "zone-c: orders-3",
        "zone-c: orders-6",
    ]
    assert rollout.pending == ["orders-1", "orders-4", "orders-2", "orders-5", "orders-3", "orders-6"]
    assert rollout.total == 6 and rollout.replaced == 0


def test_zone_order_is_followed_then_the_rest_by_name() -> None:
    spec = rollout_spec(6, zoneOrder=["zone-c"], paused=True)
    world, status = store_at(spec)
    rollout = Drive(spec, world, status).step().status.rollout
    assert rollout is not None
    assert [s.split(":")[0].split(" ")[0] for s in rollout.steps] == ["zone-c"] * 2 + ["zone-a"] * 2 + ["zone-b"] * 2


# ================================================================================================
# Budget


def test_an_outdated_member_already_unavailable_goes_first_and_costs_nothing() -> None:
    spec = rollout_spec(6)
    world, status = store_at(spec)
    world = make_unready(world, ["orders-5"])  # zone-b
    drive = Drive(spec, world, status)
    first = drive.step()
    assert described(first.actions) == [("DeletePod", "orders-5")]


def test_no_step_while_a_member_of_another_zone_is_unavailable() -> None:
    spec = rollout_spec(6)
    world, status = store_at(spec)
    out = never_ready("orders-2")  # zone-b: outdated, and out before the rollout begins
    drive = Drive(spec, out(world), status, kubelet=out)
    for _ in range(8):
        drive.step()
    # orders-2 goes first (costs nothing); its new pod never serves: nothing else moves meanwhile.
    assert drive.steps() == [("InPlace", ["orders-2"])]
    assert drive.status["rollout"]["inFlight"] == ["orders-2"]


# ================================================================================================
# Halt, revert, pause


def test_a_canary_that_never_serves_halts_the_rollout_and_a_revert_recovers() -> None:
    spec = rollout_spec(6)
    world, status = store_at(spec)
    drive = Drive(spec, world, status, kubelet=never_ready("orders-1"))
    halted = drive.until(lambda p: by_type(p.status.conditions)["Stalled"].status.value == "True", rounds=120)
    stalled = by_type(halted.status.conditions)["Stalled"]
    assert stalled.reason == "RolloutHalted" and "orders-1" in stalled.message and "progressDeadline" in stalled.message
    touched = {
        a.member for _, p, _ in drive.plans for a in p.actions if isinstance(a, DeletePod | CreateMember | RetireMember)
    }
    assert touched == {"orders-1"}, "every other member untouched"
    for _ in range(5):
        assert all(member == "orders-1" for _, member in described(drive.step().actions))
    # The template goes back: the failed canary, now outdated and out, is replaced first.
    drive.revision, drive.kubelet = OLD, make_ready
    back = drive.step()
    assert described(back.actions) == [("DeletePod", "orders-1")]
    done = drive.finished()
    assert by_type(done.status.conditions)["Stalled"].status.value == "False"
    assert all(m.revision == OLD for m in done.status.members)


@pytest.mark.parametrize("how", ["spec", "annotation"])
def test_a_pause_holds_the_next_step_the_one_in_flight_completes_and_resume_goes_on(how: str) -> None:
    spec = rollout_spec(6)
    world, status = store_at(spec)
    drive = Drive(spec, world, status)
    first = drive.step()
    assert [a.member for a in first.actions if isinstance(a, DeletePod)] == ["orders-1"]
    if how == "spec":
        drive.spec = rollout_spec(6, paused=True)
    else:
        drive.annotations = {names.ROLLOUT_PAUSED_ANNOTATION: "true"}
    for _ in range(30):
        drive.step()
    rollout = drive.status["rollout"]
    assert rollout["paused"] and rollout["updated"] == ["orders-1"] and rollout["inFlight"] == []
    assert [a.member for _, p, _ in drive.plans[1:] for a in p.actions if isinstance(a, DeletePod)] == []
    drive.spec, drive.annotations = rollout_spec(6), {}
    drive.finished()
    assert budget_violations(drive.spec, drive) == []


# ================================================================================================
# Interplay: losses, scaling, on-demand replacement, crashes


def test_a_member_lost_mid_rollout_is_rebuilt_at_the_update_revision_and_the_rollout_goes_on() -> None:
    spec = rollout_spec(6, strategy="Replace")
    world, status = store_at(spec)
    drive = Drive(spec, world, status)
    drive.step()  # the canary's replacement is on its way
    lost = [copy.deepcopy(c) for c in drive.world.claims]
    for raw in lost:
        if raw["metadata"]["name"] == "orders-3":
            raw["status"]["phase"] = "Lost"
    drive.world = replace(drive.world, claims=tuple(lost))
    rebuilt = drive.step()
    [create] = [a for a in rebuilt.actions if isinstance(a, CreateMember) and a.replaces == "orders-3"]
    assert create.reason == "MemberReplaced"
    last = drive.finished()
    assert all(m.revision == NEW for m in last.status.members) and len(last.status.members) == 6


def test_a_member_being_replaced_that_is_lost_gets_no_second_replacement() -> None:
    spec = rollout_spec(6, strategy="Replace")
    world, status = store_at(spec)
    drive = Drive(spec, world, status, kubelet=lambda w: w)  # the replacement stays on its way
    first = drive.step()
    [create] = [a for a in first.actions if isinstance(a, CreateMember)]
    lost = [copy.deepcopy(c) for c in drive.world.claims]
    for raw in lost:
        if raw["metadata"]["name"] == create.replaces:
            raw["status"]["phase"] = "Lost"
    drive.world = replace(drive.world, claims=tuple(lost))
    again = drive.step()
    assert [a for a in again.actions if isinstance(a, CreateMember)] == []
    assert [(a.member, a.reason) for a in again.actions if isinstance(a, RetireMember)] == [
        (create.replaces, "MemberLost")
    ]


def test_scaling_during_a_rollout_makes_new_members_at_the_update_revision() -> None:
    spec = rollout_spec(6)
    world, status = store_at(spec)
    drive = Drive(spec, world, status)
    drive.step()
    drive.spec = rollout_spec(9)
    last = drive.finished()
    assert len(last.status.members) == 9 and all(m.revision == NEW for m in last.status.members)
    assert budget_violations(drive.spec, drive) == []


def test_an_on_demand_replacement_of_a_zone_takes_the_replace_path_once() -> None:
    spec = rollout_spec(6)
    world, status = store_at(spec, revision=NEW)
    drive = Drive(spec, world, status, annotations={names.REPLACE_ANNOTATION: "zone/zone-b"})
    drive.until(
        lambda p: (
            p.status.rollout is None
            and not p.actions
            and len(p.status.members) == 6
            and p.status.replace_request is not None
            and not p.status.replace_request.members
        )
    )
    steps = drive.steps()
    assert steps == [("Replace", ["orders-2"]), ("Replace", ["orders-5"])]
    assert sorted(m.name for m in drive.plans[-1][1].status.members if m.zone == "zone-b") == ["orders-7", "orders-8"]
    for _ in range(5):  # the same value is answered once
        assert drive.step().actions == ()
    drive.annotations = {names.REPLACE_ANNOTATION: "zone/zone-b#again"}
    assert [a.replaces for a in drive.step().actions if isinstance(a, CreateMember)] == ["orders-7"]


def test_a_request_that_names_nothing_is_reported() -> None:
    spec = rollout_spec(3)
    world, status = store_at(spec, revision=NEW)
    decided = Drive(spec, world, status, annotations={names.REPLACE_ANNOTATION: "node/x"}).step()
    assert decided.actions == ()
    assert decided.status.replace_request is not None and decided.status.replace_request.members == []


@PROPERTY
@given(st.integers(0, 60), st.sampled_from(["InPlace", "Replace"]), st.booleans())
def test_killed_at_any_pass_a_restarted_operator_updates_no_member_twice(
    crash_at: int, strategy: str, lose_status: bool
) -> None:
    """The operator stops after any pass; the next one starts from the world (and the status that
    was written, or none at all): every member is updated exactly once, and none is replaced twice."""
    spec = rollout_spec(6, strategy=strategy)
    world, status = store_at(spec)
    drive = Drive(spec, world, status)
    for _ in range(crash_at):
        drive.step()
    if lose_status:  # the gate's readings were never written: the gate starts over, nothing else
        drive.status = {k: v for k, v in drive.status.items() if k != "rollout"}
    drive.finished()
    updated = Counter(m for _, members in drive.steps() for m in members)
    assert all(n == 1 for n in updated.values()), updated
    assert sorted(updated) == sorted(c["metadata"]["name"] for c in world.claims)
    assert budget_violations(spec, drive) == []


def test_a_pass_that_reads_nothing_writes_nothing_and_the_next_reading_is_timed() -> None:
    """While a step's new pod starts, passes must not rewrite status (each write wakes the store
    again); and the store looks again exactly when the gate can next read, not at a fixed spacing."""
    spec = rollout_spec(6, healthGate={"minReadySeconds": 5, "consecutiveChecks": 2})
    world, status = store_at(spec)
    drive = Drive(spec, world, status, kubelet=lambda w: w)  # the new pod does not start yet
    drive.step()  # the canary's pod deleted
    drive.step()  # its pod made again, not Ready
    quiet = [drive.step().status.to_wire() for _ in range(3)]
    assert quiet[0]["rollout"] == quiet[1]["rollout"] == quiet[2]["rollout"], "nothing read, nothing written"
    drive.kubelet = make_ready
    drive.step()  # Ready now
    decided = drive.step()
    assert 3.5 < decided.requeue_after <= 4.1, "the first reading is due minReadySeconds after Ready"
