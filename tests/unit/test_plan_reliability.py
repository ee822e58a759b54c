"""status.reliability: the window's losses and recovery times, the blast radius arithmetic, the
prediction and its objective; and that a steady store's reliability does not change (no write)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from phalanx.models import MemberState, MemberStatus, RecoveryRecord, RecoverySource
from phalanx.plan import Rates, blast_radius, plan
from tests.unit.test_plan import ZONES, by_type
from tests.unit.world import claim, empty_world, observed, store_spec, with_members, zones_down


def status_member(name: str, zone: str, state: MemberState) -> MemberStatus:
    return MemberStatus(name=name, zone=zone, state=state)


@pytest.mark.parametrize(
    ("states", "desired", "members", "zones"),
    [
        ({"a": "R", "b": "R", "c": "R"}, 3, 0, 0),
        ({"a": "R", "b": "U", "c": "R"}, 3, 33, 33),
        ({"a": "R", "b": "U", "c": "L"}, 3, 67, 67),
        ({"a": "RR", "b": "UR", "c": "UU"}, 6, 50, 33),  # zone-c dark, zone-b half
        ({"a": "R", "b": "R"}, 3, 0, 0),  # a member not made yet is not a failure
        ({"a": "R", "b": "P", "c": "S"}, 3, 0, 0),  # nor one on its way
    ],
)
def test_blast_radius_is_the_share_of_members_and_of_zones_out(
    states: dict[str, str], desired: int, members: int, zones: int
) -> None:
    code = {
        "R": MemberState.READY,
        "U": MemberState.UNAVAILABLE,
        "L": MemberState.LOST,
        "P": MemberState.PENDING,
        "S": MemberState.STARTING,
    }
    listed = [
        status_member(f"m-{zone}-{i}", f"zone-{zone}", code[s])
        for zone, seq in states.items()
        for i, s in enumerate(seq)
    ]
    radius = blast_radius(listed, desired, ["zone-a", "zone-b", "zone-c"])
    assert (radius.members, radius.zones) == (members, zones)


def six() -> Any:
    return with_members(empty_world(ZONES), *[(n, ZONES[(n - 1) % 3]) for n in range(1, 7)])


def test_a_zone_down_is_the_worst_and_stays_the_worst_for_the_window() -> None:
    spec = store_spec(6)
    world = six()
    steady = plan(spec, observed(world), world.now)
    assert steady.status.reliability is not None and steady.status.reliability.worst is None
    down = zones_down(world, ["zone-b"])
    during = plan(spec, observed(down, steady.status.to_wire()), down.now)
    held = during.status.reliability
    assert held is not None and (held.now.members, held.now.zones) == (33, 33)
    assert held.worst is not None and (held.worst.members, held.worst.zones, held.worst.at) == (33, 33, down.now)
    back = replace(world, clock=world.clock + 3600)
    after = plan(spec, observed(back, during.status.to_wire()), back.now).status.reliability
    assert after is not None and (after.now.members, after.worst.members if after.worst else None) == (0, 33)
    gone = replace(world, clock=world.clock + 25 * 3600)
    later = plan(spec, observed(gone, during.status.to_wire()), gone.now).status.reliability
    assert later is not None and later.worst is None, "left the 24 h window"


def test_a_loss_and_its_recovery_are_counted_once_and_summarised_by_source() -> None:
    spec = store_spec(3, recovery={"memberFailureGrace": "1s"})
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    lost = replace(world, claims=(*world.claims[:1], claim("orders-2", "zone-b", phase="Lost"), *world.claims[2:]))
    first = plan(spec, observed(lost), lost.now)
    held = first.status.reliability
    assert held is not None and [(e.member, e.reason) for e in held.losses] == [("orders-2", "VolumeLost")]
    again = plan(spec, observed(lost, first.status.to_wire()), lost.now).status.reliability
    assert again is not None and again.losses_in_window == 1, "counted once"
    record = RecoveryRecord(
        member="orders-2",
        reason="VolumeLost: gone",
        source=RecoverySource.EMPTY,
        started_at=world.now,
        replacement="orders-4",
        ready_at=world.now + timedelta(seconds=42),
        seconds=42.0,
    )
    wire = {**first.status.to_wire(), "lastRecovery": record.to_wire()}
    done = plan(spec, observed(world, wire), world.now + timedelta(seconds=43)).status.reliability
    assert done is not None and [(r.member, r.seconds) for r in done.recoveries] == [("orders-4", 42.0)]
    assert [(s.source, s.count, s.median_seconds, s.max_seconds) for s in done.summary] == [
        (RecoverySource.EMPTY, 1, 42.0, 42.0)
    ]


def test_a_steady_store_writes_the_same_reliability_pass_after_pass() -> None:
    spec = store_spec(3, snapshots={"interval": "1h"})
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    first = plan(spec, observed(world), world.now).status
    later = replace(world, clock=world.clock + 600)
    second = plan(spec, observed(later, first.to_wire()), later.now).status
    assert first.reliability == second.reliability


@pytest.mark.parametrize(("size", "objective", "within"), [("10Gi", "10m", True), ("500Gi", "10m", False)])
def test_the_objective_condition_compares_the_predicted_rebuild_from_empty(
    size: str, objective: str, within: bool
) -> None:
    spec = store_spec(3, storage={"size": size}, recovery={"objective": objective})
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    rates = Rates(restore=200 * 2**20, catch_up=50 * 2**20)
    decided = plan(spec, observed(world), world.now, rates=rates)
    held = decided.status.reliability
    assert held is not None and held.predicted is not None
    assert held.predicted.from_empty_seconds == round(float(int(size[:-2]) * 2**30) / rates.catch_up, 1)
    condition = by_type(decided.status.conditions)["RecoveryWithinObjective"]
    assert condition.status.value == ("True" if within else "False")
    if not within:
        assert "beyond recovery.objective (10m)" in condition.message
    unset = plan(store_spec(3), observed(world), world.now)
    assert "RecoveryWithinObjective" not in by_type(unset.status.conditions)
