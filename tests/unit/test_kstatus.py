"""kstatus, exactly: the status a pass writes in every phase, read as kstatus readers read it.

Flux's health checks, kpt, `kubectl wait` users and Argo CD's generic checks read a custom resource
with sigs.k8s.io/cli-utils' ``status.Compute`` (pkg/kstatus/status/generic.go): a deletion is
Terminating; ``status.observedGeneration`` other than ``metadata.generation`` is InProgress; then the
*first* condition of the list that is ``Reconciling=True`` (InProgress) or ``Stalled=True`` (Failed)
decides; with neither, the resource is Current. So a store must never be Reconciling and Stalled at
once (Reconciling comes first in its list: a stall would be waited on to the end of the reader's
timeout), must be Ready only when nothing stalls it, and must stop Reconciling once the work is done.

Planner-level: each phase is made by ``phalanx.plan.plan`` on a world of ``tests/unit/world.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given

from phalanx.models import ReplicatedStoreSpec, ReplicatedStoreStatus, StorePhase
from phalanx.plan import Plan, plan
from tests.unit.test_plan import ANY_SPEC, NOW, PROPERTY, ZONES, by_type, converge, replan, steady, worlds
from tests.unit.test_plan_rollout import Drive, never_ready, rollout_spec, store_at
from tests.unit.world import World, claim, empty_world, make_unready, observed, store_spec, with_members

GENERATION = 7
"""The store's metadata.generation in the worlds below (Drive's rollouts observe generation 1)."""


def kstatus(generation: int, status: ReplicatedStoreStatus | Mapping[str, Any]) -> str:
    """cli-utils' ``status.Compute`` for a resource that carries the standard conditions (``status``:
    the model, or the wire form as the API server serves it; deletion left out)."""
    wire = status.to_wire() if isinstance(status, ReplicatedStoreStatus) else status
    observed_generation = wire.get("observedGeneration")
    if observed_generation is not None and observed_generation != generation:
        return "InProgress"
    for condition in wire.get("conditions") or []:
        if condition["type"] == "Reconciling" and condition["status"] == "True":
            return "InProgress"
        if condition["type"] == "Stalled" and condition["status"] == "True":
            return "Failed"
    return "Current"


def three_ready() -> tuple[World, dict[str, object]]:
    spec = store_spec(3)
    return steady(with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c")), spec)


def pending() -> tuple[Plan, int]:
    return plan(store_spec(3), observed(empty_world(ZONES), generation=GENERATION), NOW, has_ports=True), GENERATION


def ready() -> tuple[Plan, int]:
    world, status = three_ready()
    return plan(store_spec(3), observed(world, status, GENERATION), NOW, has_ports=True), GENERATION


def degraded() -> tuple[Plan, int]:
    world, status = three_ready()
    seen = observed(make_unready(world, ["orders-2"]), status, GENERATION)
    return plan(store_spec(3), seen, NOW, has_ports=True), GENERATION


def recovering() -> tuple[Plan, int]:
    world, status = three_ready()
    lost = tuple(
        claim("orders-3", "zone-c", phase="Lost") if c["metadata"]["name"] == "orders-3" else c for c in world.claims
    )
    seen = observed(replace(world, claims=lost), status, GENERATION)
    return plan(store_spec(3), seen, NOW, has_ports=True), GENERATION


def updating() -> tuple[Plan, int]:
    spec = rollout_spec(6)
    return Drive(spec, *store_at(spec)).step(), 1


def rollout_paused() -> tuple[Plan, int]:
    spec = rollout_spec(6, paused=True)
    return Drive(spec, *store_at(spec)).step(), 1


def rollout_halted() -> tuple[Plan, int]:
    spec = rollout_spec(6)
    drive = Drive(spec, *store_at(spec), kubelet=never_ready("orders-1"))
    return drive.until(lambda p: by_type(p.status.conditions)["Stalled"].status.value == "True", rounds=120), 1


def paused() -> tuple[Plan, int]:
    world, status = three_ready()
    return plan(store_spec(3, paused=True), observed(world, status, GENERATION), NOW, has_ports=True), GENERATION


def invalid() -> tuple[Plan, int]:
    world, status = three_ready()
    message = "spec.updates.canary: 5 exceeds replicas (3): lower canary or raise replicas"
    return plan(None, observed(world, status, GENERATION), NOW, invalid=message), GENERATION


def no_such_zone() -> tuple[Plan, int]:
    world, status = three_ready()
    seen = observed(world, status, GENERATION)
    return plan(store_spec(3, zones=["zone-x"]), seen, NOW, has_ports=True), GENERATION


@dataclass(frozen=True)
class Row:
    make: Callable[[], tuple[Plan, int]]
    phase: StorePhase
    ready: bool
    reconciling: bool
    stalled: bool
    kstatus: str
    reason: str
    """The reason of the condition that decides: Stalled's when it is True, else Reconciling's, else Ready's."""


# fmt: off
TABLE = {
    "Pending": Row(pending, StorePhase.PENDING, False, True, False, "InProgress", "Converging"),
    "Ready": Row(ready, StorePhase.READY, True, False, False, "Current", "AllMembersReady"),
    "Degraded": Row(degraded, StorePhase.DEGRADED, False, True, False, "InProgress", "Converging"),
    "Recovering": Row(recovering, StorePhase.RECOVERING, False, True, False, "InProgress", "Converging"),
    # Ready stays True while a rollout takes out only its own members, within the budget (README:
    # rolling replacement); Reconciling=True keeps kstatus at InProgress until the rollout is done.
    "Updating": Row(updating, StorePhase.UPDATING, True, True, False, "InProgress", "RollingOut"),
    "Updating, rollout paused": Row(rollout_paused, StorePhase.UPDATING, True, True, False, "InProgress",
                                    "RolloutPaused"),
    "Updating, rollout halted": Row(rollout_halted, StorePhase.UPDATING, False, False, True, "Failed",
                                    "RolloutHalted"),
    "Paused": Row(paused, StorePhase.PAUSED, True, False, False, "Current", "AllMembersReady"),
    "Invalid": Row(invalid, StorePhase.INVALID, False, False, True, "Failed", "InvalidSpec"),
    "Stalled with every member ready": Row(no_such_zone, StorePhase.READY, False, False, True, "Failed",
                                           "NoSuchZone"),
}
# fmt: on


@pytest.mark.parametrize("row", TABLE.values(), ids=TABLE.keys())
def test_every_phase_reads_as_kstatus_expects(row: Row) -> None:
    decided, generation = row.make()
    status = decided.status
    conditions = by_type(status.conditions)
    assert status.phase is row.phase
    assert status.observed_generation == generation
    assert all(c.observed_generation == generation for c in status.conditions)
    values = {kind: conditions[kind].status.value for kind in ("Ready", "Reconciling", "Stalled")}
    assert values == {"Ready": str(row.ready), "Reconciling": str(row.reconciling), "Stalled": str(row.stalled)}
    assert kstatus(generation, status) == row.kstatus
    deciding = "Stalled" if row.stalled else "Reconciling" if row.reconciling else "Ready"
    assert conditions[deciding].reason == row.reason
    if row.stalled:  # what the reader shows is the message for a person, not a placeholder
        assert conditions["Stalled"].message and conditions["Stalled"].message != "no blocking problem"


@pytest.mark.parametrize("row", TABLE.values(), ids=TABLE.keys())
def test_a_generation_not_yet_observed_is_in_progress_whatever_the_conditions(row: Row) -> None:
    decided, generation = row.make()
    assert kstatus(generation + 1, decided.status) == "InProgress"


def test_reconciling_ends_when_the_work_is_done() -> None:
    spec = store_spec(3)
    run = converge(spec, empty_world(ZONES), {})
    assert run.steps, "the store had work to do"
    for decided, _ in run.steps:
        assert by_type(decided.status.conditions)["Reconciling"].status.value == "True"
    again = replan(spec, run.world, run.status)
    assert again.actions == ()
    assert kstatus(1, again.status) == "Current"


def test_a_halted_rollout_stays_failed_not_reconciling_pass_after_pass() -> None:
    spec = rollout_spec(6)
    drive = Drive(spec, *store_at(spec), kubelet=never_ready("orders-1"))
    drive.until(lambda p: by_type(p.status.conditions)["Stalled"].status.value == "True", rounds=120)
    for _ in range(5):
        assert kstatus(1, drive.step().status) == "Failed"


@PROPERTY
@given(worlds(), ANY_SPEC)
def test_whatever_the_world_ready_and_reconciling_never_stand_beside_stalled(
    world: World, spec: ReplicatedStoreSpec
) -> None:
    decided = replan(spec, world, {})
    values = {c.type: c.status.value for c in decided.status.conditions}
    if values["Stalled"] == "True":
        assert values["Reconciling"] == "False" and values["Ready"] == "False", values
