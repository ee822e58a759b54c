"""Restore drills: due every interval from the last one's end, one at a time, rotating over the
zones, only on a healthy, calm, unpaused store, from the newest usable snapshot; judged by the claim
binding (and the verification pod's exit) within the timeout; recorded, then cleaned up, leftovers
included; never an action on a member."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phalanx import names
from phalanx.models import ConditionType, DrillResult, ReplicatedStoreSpec
from phalanx.plan import DeleteDrill, DeleteSnapshot, Plan, StartDrill, plan, plan_drills, seed_for
from tests.strategies import VERIFY
from tests.unit.test_plan import ALL_CHILDREN, NOW, PROPERTY, ZONES, worlds
from tests.unit.world import (
    START,
    STORE,
    World,
    apply,
    drill_claim,
    drill_pod,
    empty_world,
    make_ready,
    make_unready,
    observed,
    stamp,
    store_spec,
    volume_snapshot,
    with_members,
)

DAY = 24 * 3600


def drill_store(verify: bool = False, timeout: str = "15m", **spec: Any) -> ReplicatedStoreSpec:
    drill: dict[str, Any] = {"interval": "24h", "timeout": timeout}
    if verify:
        drill["verify"] = VERIFY.to_wire()
    return store_spec(3, snapshots={"interval": "1h", "keep": 3, "maxAge": "6h", "drill": drill}, **spec)


SPEC = drill_store()
VERIFIED = drill_store(verify=True)


def ready_snapshot(name: str, age: int) -> dict[str, Any]:
    made = volume_snapshot(name, "orders-1", "zone-a", created=START - age)
    made["status"] = {"readyToUse": True, "creationTime": stamp(START - age)}
    return made


def healthy_world(*snapshots: dict[str, Any]) -> World:
    """Three ready members, one per zone, every child there, and ``snapshots`` (default: s-old, s-new)."""
    world = make_ready(with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c")))
    lineage = snapshots or (ready_snapshot("orders-s-old", 1800), ready_snapshot("orders-s-new", 600))
    return replace(world, children=ALL_CHILDREN, snapshots=tuple(lineage))


def last_drill(
    finished_ago: int, zone: str = "zone-a", result: str = "Succeeded", reason: str = "Restored", **more: Any
) -> dict[str, Any]:
    """``status.lastDrill`` of a drill that ended ``finished_ago`` seconds before the world's present."""
    return {
        "lastDrill": {
            "name": more.pop("name", "orders-drill-20250101-000000"),
            "snapshot": more.pop("snapshot", "orders-s-old"),
            "zone": zone,
            "startedAt": stamp(START - finished_ago - 30),
            "finishedAt": stamp(START - finished_ago),
            "seconds": 30.0,
            "result": result,
            "reason": reason,
            "message": "as it was",
            **more,
        }
    }


def decide(spec: ReplicatedStoreSpec, world: World, status: dict[str, Any] | None = None) -> Plan:
    return plan(spec, observed(world, status), world.now, has_ports=True)


def drill_actions(decided: Plan) -> list[StartDrill | DeleteDrill]:
    return [a for a in decided.actions if isinstance(a, (StartDrill, DeleteDrill))]


def in_flight(
    world: World,
    age: int,
    *,
    phase: str = "Pending",
    pod: str | None = None,
    code: int | None = None,
    name: str = "orders-drill-20250101-005000",
    zone: str = "zone-b",
) -> World:
    """A drill started ``age`` seconds ago: its claim (``phase``) and, with ``pod`` (a phase), its pod."""
    claims = (*world.claims, drill_claim(name, zone, "orders-s-new", phase=phase, created=START - age))
    pods = world.drill_pods
    if pod is not None:
        pods = (*pods, drill_pod(name, zone, phase=pod, exit_code=code, created=START - age))
    return replace(world, claims=claims, drill_pods=pods)


# ------------------------------------------------------------------------------------- when due


@pytest.mark.parametrize(
    ("status", "started_in", "again_in"),
    [
        pytest.param({}, "zone-a", 15 * 60 + 0.1, id="first-one-at-once-in-the-first-zone"),
        pytest.param(last_drill(3600), None, DAY - 3600, id="not-due-until-an-interval-after-the-last-end"),
        pytest.param(last_drill(DAY + 1), "zone-b", 15 * 60 + 0.1, id="due-in-the-next-zone"),
        pytest.param(last_drill(DAY + 1, zone="zone-c"), "zone-a", 15 * 60 + 0.1, id="the-rotation-wraps"),
        pytest.param(
            last_drill(DAY + 1, result="Failed", reason="VerifyFailed"), "zone-b", 15 * 60 + 0.1, id="after-a-failure"
        ),
    ],
)
def test_a_drill_is_due_an_interval_after_the_last_one_ended_in_the_next_zone(
    status: dict[str, Any], started_in: str | None, again_in: float
) -> None:
    seen = observed(healthy_world(), status)
    actions, due = plan_drills(SPEC, seen, NOW, ZONES, calm=True)
    started = [a for a in actions if isinstance(a, StartDrill)]
    assert [a.zone for a in started] == ([started_in] if started_in else [])
    assert due == pytest.approx(again_in)
    for action in started:  # the newest usable snapshot, the one a lost member would be seeded from
        assert action.snapshot == "orders-s-new" == seed_for(SPEC, seen, NOW)[0]
        assert action.name == names.drill_name("orders", NOW) and names.is_drill_name("orders", action.name)
        assert action.node == f"node-{started_in}-0" and not action.verify  # asked of the provisioner


def test_with_a_verification_pod_no_node_is_named_the_pod_places_the_claim() -> None:
    (action,), _ = plan_drills(VERIFIED, observed(healthy_world()), NOW, ZONES, calm=True)
    assert isinstance(action, StartDrill) and action.verify and action.node is None


@pytest.mark.parametrize(
    "snapshots",
    [
        pytest.param((), id="no-snapshot"),
        pytest.param((volume_snapshot("orders-s-taking", "orders-1", "zone-a", created=START - 5),), id="none-ready"),
        pytest.param((ready_snapshot("orders-s-ancient", 7 * 3600),), id="older-than-maxAge"),
    ],
)
def test_no_drill_without_a_usable_snapshot(snapshots: tuple[dict[str, Any], ...]) -> None:
    world = replace(healthy_world(), snapshots=snapshots)
    assert plan_drills(SPEC, observed(world), NOW, ZONES, calm=True) == ([], None)


def test_a_snapshot_a_drill_could_not_restore_seeds_no_member_and_the_next_drill_takes_another() -> None:
    seen = observed(
        healthy_world(), last_drill(DAY + 1, result="Failed", reason="RestoreFailed", snapshot="orders-s-new")
    )
    assert seed_for(SPEC, seen, NOW)[0] == "orders-s-old"
    (action,), _ = plan_drills(SPEC, seen, NOW, ZONES, calm=True)
    assert isinstance(action, StartDrill) and action.snapshot == "orders-s-old"


# -------------------------------------------------------------------- one at a time, and when not


def test_one_drill_at_a_time_even_when_the_next_is_due() -> None:
    world = in_flight(healthy_world(), 60)
    actions, due = plan_drills(SPEC, observed(world, last_drill(2 * DAY)), NOW, ZONES, calm=True)
    assert actions == []
    assert due == pytest.approx(15 * 60 - 60 + 0.1)  # the verdict at the timeout, at the latest


def test_a_drill_whose_claim_is_going_still_holds_the_next_one_back() -> None:
    world = replace(
        healthy_world(),
        claims=(
            *healthy_world().claims,
            drill_claim(
                "orders-drill-20250101-005000",
                "zone-b",
                "orders-s-new",
                phase="Bound",
                created=START - 60,
                terminating=True,
            ),
        ),
    )
    assert plan_drills(SPEC, observed(world), NOW, ZONES, calm=True) == ([], None)


def unready(world: World) -> World:
    return make_unready(world, ["orders-2"])


def missing(world: World) -> World:
    return replace(world, pods=tuple(p for p in world.pods if p["metadata"]["name"] != "orders-2"))


def short(world: World) -> World:
    return replace(world, pods=world.pods[:2], claims=world.claims[:2])


@pytest.mark.parametrize("breaks", [unready, missing, short], ids=["member-unready", "pod-missing", "member-short"])
def test_no_drill_starts_while_the_store_is_not_healthy(breaks: Any) -> None:
    decided = decide(SPEC, breaks(healthy_world()))
    assert drill_actions(decided) == []


def test_no_drill_starts_while_members_change_or_a_rollout_is_in_flight() -> None:
    seen = observed(healthy_world())
    assert plan_drills(SPEC, seen, NOW, ZONES, calm=False) == ([], None)
    # A template change starts a rollout: its step comes first, and the drill waits for its end.
    decided = plan(SPEC, seen, NOW, has_ports=True, revision="rev-next")
    assert decided.status.rollout is not None and drill_actions(decided) == []


def test_a_paused_store_drills_nothing_and_cleans_up_nothing_but_keeps_its_record() -> None:
    world = in_flight(healthy_world(), 60, phase="Bound")
    status = last_drill(2 * DAY, name="orders-drill-20241229-000000")
    decided = decide(SPEC.model_copy(update={"paused": True}), world, status)
    assert decided.actions == ()
    assert decided.status.last_drill is not None  # status only: the verdict may be recorded, nothing done


def test_an_invalid_store_keeps_its_last_drill_and_acts_on_none() -> None:
    world = in_flight(healthy_world(), 60, phase="Bound")
    status = last_drill(2 * DAY)
    decided = plan(None, observed(world, status), world.now, invalid="spec.replicas: bad")
    assert decided.actions == ()
    assert decided.status.last_drill is not None and decided.status.last_drill.name == status["lastDrill"]["name"]


# ---------------------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    ("spec", "age", "phase", "pod", "code", "verdict"),
    [
        pytest.param(SPEC, 20, "Bound", None, None, ("Succeeded", "Restored"), id="restored"),
        pytest.param(VERIFIED, 20, "Bound", "Succeeded", 0, ("Succeeded", "Verified"), id="verified"),
        pytest.param(VERIFIED, 20, "Bound", "Failed", 3, ("Failed", "VerifyFailed"), id="verify-exits-non-zero"),
        pytest.param(SPEC, 901, "Pending", None, None, ("Failed", "RestoreFailed"), id="not-bound-in-time"),
        pytest.param(VERIFIED, 901, "Pending", "Pending", None, ("Failed", "RestoreFailed"), id="pod-waits-in-vain"),
        pytest.param(SPEC, 20, "Lost", None, None, ("Failed", "RestoreFailed"), id="volume-lost"),
        pytest.param(VERIFIED, 901, "Bound", "Running", None, ("Failed", "VerifyTimedOut"), id="verify-never-ends"),
        pytest.param(VERIFIED, 901, "Pending", None, None, ("Failed", "VerifyNotStarted"), id="pod-never-made"),
        pytest.param(SPEC, 899, "Pending", None, None, None, id="still-restoring"),
        pytest.param(VERIFIED, 60, "Bound", "Running", None, None, id="still-verifying"),
    ],
)
def test_the_verdict_is_recorded_announced_in_a_condition_and_the_drill_deleted(
    spec: ReplicatedStoreSpec, age: int, phase: str, pod: str | None, code: int | None, verdict: tuple[str, str] | None
) -> None:
    world = in_flight(healthy_world(), age, phase=phase, pod=pod, code=code)
    decided = decide(spec, world, last_drill(2 * DAY, name="orders-drill-20241229-000000"))
    record = decided.status.last_drill
    condition = next((c for c in decided.status.conditions if c.type == ConditionType.RESTORE_VERIFIED), None)
    if verdict is None:
        assert record is not None and record.name == "orders-drill-20241229-000000"  # the old one stands
        assert not any(isinstance(a, DeleteDrill) for a in decided.actions)
        return
    assert record is not None and record.name == "orders-drill-20250101-005000"
    assert (record.result.value, record.reason) == verdict
    assert (record.snapshot, record.zone, record.seconds) == ("orders-s-new", "zone-b", float(age))
    assert record.finished_at == NOW and record.started_at == NOW - timedelta(seconds=age)
    succeeded = record.result is DrillResult.SUCCEEDED
    assert record.last_succeeded_at == (NOW if succeeded else None)
    assert condition is not None and condition.status.value == str(succeeded)
    assert condition.reason == ("DrillSucceeded" if succeeded else "DrillFailed") and record.name in condition.message
    if code:
        assert f"exited {code}" in record.message
    cleanup = [a for a in decided.actions if isinstance(a, DeleteDrill)]
    assert [(a.name, a.claim_uid, a.pod_uid) for a in cleanup] == [
        (record.name, f"pvc-{record.name}", f"pod-{record.name}" if pod else None)
    ]
    assert not any(isinstance(a, StartDrill) for a in decided.actions)  # the next only once it is gone


def test_a_drill_whose_pod_went_missing_gets_it_back_within_its_timeout() -> None:
    world = in_flight(healthy_world(), 30)
    decided = decide(VERIFIED, world)
    assert [(type(a).__name__, a.name) for a in drill_actions(decided)] == [
        ("StartDrill", "orders-drill-20250101-005000")
    ]
    again = apply(world, decided)
    assert again.rejected == () and len(again.drill_pods) == 1  # the pod only: its claim stays


# ---------------------------------------------------------------------------- crash safety, leftovers


def test_a_recorded_verdict_is_kept_and_its_drill_deleted_again_after_a_crash() -> None:
    world = in_flight(healthy_world(), 20, phase="Bound")
    recorded = last_drill(5, name="orders-drill-20250101-005000", zone="zone-b", message="kept")
    decided = decide(SPEC, world, recorded)
    assert decided.status.last_drill is not None and decided.status.last_drill.message == "kept"  # not judged again
    assert [(type(a).__name__, a.name) for a in drill_actions(decided)] == [
        ("DeleteDrill", "orders-drill-20250101-005000")
    ]


def test_leftovers_are_deleted_the_drill_in_flight_goes_on() -> None:
    world = in_flight(healthy_world(), 4000, name="orders-drill-20241231-230000", zone="zone-a")  # abandoned
    world = in_flight(world, 10, pod="Running", name="orders-drill-20250101-005000")  # the current one
    world = replace(world, drill_pods=(*world.drill_pods, drill_pod("orders-drill-20241231-120000", "zone-c")))
    decided = decide(VERIFIED, world)
    deleted = {(a.name, a.claim_uid, a.pod_uid) for a in decided.actions if isinstance(a, DeleteDrill)}
    assert deleted == {
        ("orders-drill-20241231-230000", "pvc-orders-drill-20241231-230000", None),  # a newer one exists
        ("orders-drill-20241231-120000", None, "pod-orders-drill-20241231-120000"),  # its claim is gone
    }
    assert decided.status.last_drill is None  # abandoned drills leave no verdict


def test_drills_removed_from_the_spec_leave_nothing_behind() -> None:
    world = in_flight(healthy_world(), 10, pod="Running")
    decided = decide(store_spec(3, snapshots={"interval": "1h"}), world)
    assert [(type(a).__name__, a.name) for a in drill_actions(decided)] == [
        ("DeleteDrill", "orders-drill-20250101-005000")
    ]


def test_objects_that_only_look_like_drills_are_foreign_and_never_deleted() -> None:
    world = in_flight(healthy_world(), 10, pod="Running")
    stranger = "orders-drill-20250101-001000"
    world = replace(
        world,
        claims=(*world.claims, drill_claim(stranger, "zone-a", "orders-s-new", created=START - 10)),
        drill_pods=(*world.drill_pods, drill_pod(stranger, "zone-a", owner=None)),
        foreign=frozenset({f"pvc-{stranger}"}),
    )
    decided = decide(VERIFIED, world)
    assert all(a.name != stranger for a in drill_actions(decided))
    seen = observed(world)
    assert {f"PersistentVolumeClaim {stranger}", f"Pod {stranger}"} <= set(seen.foreign)


def test_drills_are_never_members_nor_retired_volumes_and_stay_on_record() -> None:
    world = in_flight(healthy_world(), 10, phase="Bound", pod="Running")
    seen = observed(world)
    assert [m.name for m in seen.members] == ["orders-1", "orders-2", "orders-3"]
    assert seen.retired_claims == () and seen.retired_pods == ()
    assert [d.name for d in seen.drills] == ["orders-drill-20250101-005000"]
    assert "orders-drill-20250101-005000" in {o.name for o in seen.owned.claims}  # the record keeps it
    assert seen.foreign == ()


def test_retention_keeps_the_snapshot_a_drill_restores_from() -> None:
    keep_one = store_spec(3, snapshots={"interval": "1h", "keep": 1, "drill": {"interval": "24h"}})
    lineage = healthy_world(ready_snapshot("orders-s-new", 600), ready_snapshot("orders-s-newer", 60))

    def pruned(world: World) -> set[str]:
        return {a.name for a in decide(keep_one, world).actions if isinstance(a, DeleteSnapshot)}

    assert pruned(in_flight(lineage, 10)) == set()  # restoring from orders-s-new, now beyond keep
    assert pruned(in_flight(lineage, 10, phase="Bound")) == {"orders-s-new"}  # restored: it may go


# ------------------------------------------------------------------------------- a cycle, and a property


def test_drills_cycle_without_waste_zone_after_zone() -> None:
    """Start, verdict, cleanup, then the next an interval later in the next zone: planning again on
    what each plan made never repeats a write (I7) and never leaves a drill behind."""
    world: World = healthy_world()
    status: dict[str, Any] = {}
    zones = []
    for _ in range(3):
        for _ in range(4):  # start; bind; judge and delete; nothing
            decided = decide(SPEC, world, status)
            status = decided.status.to_wire()
            zones += [a.zone for a in decided.actions if isinstance(a, StartDrill)]
            world = make_ready(apply(world, decided))
            assert world.rejected == ()
            world = replace(world, clock=world.clock + 5)
        assert observed(world).drills == ()
        assert decided.status.last_drill is not None and decided.status.last_drill.result is DrillResult.SUCCEEDED
        world = replace(world, clock=world.clock + DAY)
    assert zones == ["zone-a", "zone-b", "zone-c"]


DRILL_OBJECTS = st.lists(
    st.tuples(
        st.integers(0, 59),
        st.sampled_from(["Pending", "Bound", "Lost", None]),
        st.sampled_from(["Pending", "Running", "Succeeded", "Failed", None]),
        st.booleans(),
    ),
    max_size=3,
    unique_by=lambda t: t[0],
)


@PROPERTY
@given(worlds(), DRILL_OBJECTS, st.booleans(), st.sampled_from([{}, last_drill(DAY + 1), last_drill(60)]))
def test_drills_never_touch_a_member(
    world: World, drills: list[tuple[int, str | None, str | None, bool]], verify: bool, status: dict[str, Any]
) -> None:
    """Whatever the world (members in any state, drills in any state, on record or not), the drill
    module only ever names a drill: never a member's claim or pod, by name or by uid."""
    spec = VERIFIED if verify else SPEC
    world = replace(world, snapshots=(ready_snapshot("orders-s-new", 600),), clock=START)
    for minute, claim_phase, pod_phase, ours in drills:
        name = f"orders-drill-20250101-00{minute:02d}00"
        if claim_phase is not None:
            world = replace(
                world,
                claims=(
                    *world.claims,
                    drill_claim(name, "zone-a", "orders-s-new", phase=claim_phase, created=START - 60 * minute),
                ),
            )
            if not ours:
                world = replace(world, foreign=world.foreign | {f"pvc-{name}"})
        if pod_phase is not None:
            made = drill_pod(name, "zone-a", phase=pod_phase, owner=STORE.uid if ours else None)
            world = replace(world, drill_pods=(*world.drill_pods, copy.deepcopy(made)))
    seen = observed(world, status)
    members = {m.name for m in seen.members} | {c.name for c in seen.retired_claims}
    member_uids = {v.uid for m in seen.members for v in (m.pod, m.claim) if v is not None}
    member_uids |= {c.uid for c in seen.retired_claims}
    for calm in (True, False):
        actions, _ = plan_drills(spec, seen, NOW, ZONES, calm)
        for action in actions:
            assert isinstance(action, (StartDrill, DeleteDrill))
            assert names.is_drill_name("orders", action.name) and action.name not in members
            if isinstance(action, DeleteDrill):
                assert {action.pod_uid, action.claim_uid}.isdisjoint(member_uids)
    everything = decide(spec, world, status)
    for action in drill_actions(everything):
        assert action.name not in members
