"""Regressions of the defects a review of the core found, each reproduced on the pure planner first."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from phalanx.plan import CreateMember, Snapshot, failure_backoff, plan
from tests.unit.test_plan import ALL_CHILDREN, NOW, ZONES
from tests.unit.world import (
    START,
    World,
    claim,
    empty_world,
    make_ready,
    node,
    observed,
    stamp,
    store_spec,
    volume_snapshot,
    with_members,
    zones_down,
)

SNAPPING: dict[str, Any] = {"snapshots": {"interval": "1h", "keep": 3}}


def status_of(decided: Any, kind: str) -> str:
    return str(next(c.status.value for c in decided.status.conditions if c.type == kind))


def ready_store(*members: tuple[int, str]) -> World:
    world = make_ready(with_members(empty_world(ZONES), *(members or ((1, "zone-a"), (2, "zone-b"), (3, "zone-c")))))
    return replace(world, children=ALL_CHILDREN)


def failed_snapshot(name: str, created: int) -> dict[str, Any]:
    snap = volume_snapshot(name, "orders-1", "zone-a", created=created)
    snap["status"] = {"readyToUse": False, "error": {"message": "class is broken"}}
    return snap


def test_the_snapshot_backoff_keeps_doubling_though_superseded_failures_are_pruned() -> None:
    # Only the newest failure is ever kept; the count of those before it lives in status.
    world = replace(ready_store(), snapshots=(failed_snapshot("orders-b", START - 5),))
    spec = store_spec(3, **SNAPPING)
    status = {"snapshots": {"failures": 3, "lastFailure": "orders-a"}}
    assert failure_backoff(spec, observed(world, status)) == 80.0
    decided = plan(spec, observed(world, status), NOW)
    assert decided.status.snapshots is not None
    assert (decided.status.snapshots.failures, decided.status.snapshots.last_failure) == (4, "orders-b")
    again = observed(world, decided.status.to_wire())  # the same failure is counted once
    assert failure_backoff(spec, again) == 80.0
    capped = {"snapshots": {"failures": 40, "lastFailure": "orders-b"}}
    assert failure_backoff(spec, observed(world, capped)) == 3600.0


def test_an_interrupted_recovery_of_a_deleted_volume_completes_under_its_recorded_name() -> None:
    world = ready_store((1, "zone-a"), (3, "zone-c"))  # orders-2 lost its claim; its pod is gone too
    status = {
        "lastSerial": 4,
        "members": [{"name": "orders-2", "zone": "zone-b", "state": "Lost"}],
        "lastRecovery": {
            "member": "orders-2",
            "reason": "VolumeDeleted: its PersistentVolumeClaim is gone",
            "source": "Empty",
            "startedAt": stamp(START - 10),
            "replacement": "orders-4",
        },
    }
    decided = plan(store_spec(3), observed(world, status), NOW, has_ports=True)
    [create] = [a for a in decided.actions if isinstance(a, CreateMember)]
    assert (create.member, create.zone, create.replaces) == ("orders-4", "zone-b", "orders-2")


def test_a_zone_whose_nodes_vanish_gets_its_grace_from_when_it_was_last_seen() -> None:
    world = ready_store()
    gone = replace(world, nodes=tuple(n for n in world.nodes if "zone-c" not in n["metadata"]["name"]))
    spec = store_spec(3, recovery={"zoneFailure": "Redistribute", "zoneFailureGrace": "5m"})
    first = plan(spec, observed(gone, {}), NOW, has_ports=True)
    assert not any(isinstance(a, CreateMember) for a in first.actions), "rebuilt a second after the nodes went"
    zone_c = next(z for z in first.status.zones if z.name == "zone-c")
    assert zone_c.down_since == NOW
    later = replace(gone, clock=gone.clock + 301)
    decided = plan(spec, observed(later, first.status.to_wire()), later.now, has_ports=True)
    assert [a.zone for a in decided.actions if isinstance(a, CreateMember)] in (["zone-a"], ["zone-b"])


def test_an_outage_in_a_zone_that_is_not_the_stores_does_not_hold_up_rebalancing() -> None:
    world = ready_store((1, "zone-a"), (2, "zone-a"), (3, "zone-b"))
    world = replace(world, nodes=(*world.nodes, node("node-zone-x-0", "zone-x", ready=False, since=START - 10)))
    decided = plan(store_spec(3, zones=list(ZONES)), observed(world), NOW, has_ports=True)
    assert [(a.zone, a.reason) for a in decided.actions if isinstance(a, CreateMember)] == [("zone-c", "Rebalancing")]


def test_an_invalid_spec_keeps_reporting_the_zones_as_observed() -> None:
    world = ready_store()
    valid = plan(store_spec(3), observed(world), NOW, has_ports=True)
    invalid = plan(None, observed(world, valid.status.to_wire()), NOW, invalid="spec.replicas: must be at least 1")
    assert status_of(valid, "ZonesBalanced") == status_of(invalid, "ZonesBalanced") == "True"
    assert [z.name for z in invalid.status.zones] == list(ZONES)


def test_a_member_on_a_node_that_stopped_reporting_is_never_snapshotted() -> None:
    world = zones_down(ready_store(), ["zone-a"])  # orders-1's pod still says Ready; its node does not
    decided = plan(store_spec(3, **SNAPPING), observed(world), NOW, has_ports=True)
    [snapshot] = [a for a in decided.actions if isinstance(a, Snapshot)]
    assert snapshot.member != "orders-1"


def test_a_snapshot_whose_restore_failed_does_not_seed_the_next_replacement() -> None:
    good = volume_snapshot("orders-snap-1", "orders-1", "zone-a", created=3000)
    bad = volume_snapshot("orders-snap-2", "orders-1", "zone-a", created=3300)
    failed = claim("orders-4", "zone-b", retired=True, seeded_from="orders-snap-2", phase="Pending")
    world = make_ready(replace(ready_store(), snapshots=(good, bad)))
    world = replace(world, claims=(*world.claims, failed))
    decided = plan(store_spec(4, **SNAPPING), observed(world, {"lastSerial": 4}), NOW, has_ports=True)
    [create] = [a for a in decided.actions if isinstance(a, CreateMember)]
    assert create.snapshot == "orders-snap-1"
