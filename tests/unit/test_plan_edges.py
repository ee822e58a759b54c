"""The planner's edge cases of loss, outage, recovery and reporting: a retired pod whose claim is gone,
a claim missing within its grace, a member outside the store's zones, a restore waiting for a node, a
zone without nodes, a resumed recovery, drifted children. Each was a defect found in review; each
test names the failure it prevents. The same pure world as tests/unit/test_plan.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from phalanx import names
from phalanx.models import StorePhase
from phalanx.plan import CreateMember, DeleteSnapshot, EnsureChild, RetireMember, plan, snapshots_fresh
from tests.unit.world import (
    EPOCH,
    World,
    claim,
    empty_world,
    observed,
    pod,
    stamp,
    store_spec,
    volume_snapshot,
    with_members,
    zones_down,
)

ZONES = ["zone-a", "zone-b", "zone-c"]
NOW = EPOCH + timedelta(hours=1)


def kinds(actions: object) -> list[tuple[str, str]]:
    return [(type(a).__name__, getattr(a, "member", getattr(a, "name", ""))) for a in actions]  # type: ignore[attr-defined]


def test_a_retired_pod_whose_claim_is_already_gone_is_a_leftover_not_a_lost_member() -> None:
    """The claim's DELETED event can arrive before the pod's: no false 'VolumeDeleted' recovery."""
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    leftover = pod("orders-4", "zone-a", ready=True, node_name="node-zone-a-0", terminating=True)
    leftover["metadata"]["labels"][names.RETIRED_LABEL] = "true"
    world = replace(world, pods=(*world.pods, leftover))
    decided = plan(store_spec(3), observed(world), NOW)
    assert [m.name for m in observed(world).members] == ["orders-1", "orders-2", "orders-3"]
    assert not [a for a in decided.actions if isinstance(a, CreateMember | RetireMember)]


def test_a_missing_claim_is_a_loss_only_after_the_grace_period() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"))
    world = replace(world, pods=(*world.pods, pod("orders-3", "zone-c", ready=True, node_name="node-zone-c-0")))
    spec = store_spec(3, recovery={"memberFailureGrace": "30s"})
    first = plan(spec, observed(world), NOW)
    assert not [a for a in first.actions if isinstance(a, RetireMember)]
    status = first.status.to_wire()
    later = plan(spec, observed(world, status), NOW + timedelta(seconds=31))
    assert ("RetireMember", "orders-3") in kinds(later.actions)


def test_a_member_outside_the_stores_zones_leaves_first_and_nothing_churns() -> None:
    """spec.zones dropped zone-c: one member moves into the store's zones, then nothing more."""
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    spec = store_spec(3, zones=["zone-a", "zone-b"])
    grown = plan(spec, observed(world), NOW)
    [create] = [a for a in grown.actions if isinstance(a, CreateMember)]
    assert create.zone in ("zone-a", "zone-b")
    world = with_members(world, (4, create.zone))
    shrunk = plan(spec, observed(world, grown.status.to_wire()), NOW)
    assert [(type(a).__name__, a.member) for a in shrunk.actions if isinstance(a, RetireMember)] == [
        ("RetireMember", "orders-3")
    ]


def test_a_restore_waiting_for_a_node_is_not_a_failed_restore() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"))
    waiting = pod("orders-3", "zone-c", phase="Pending")
    waiting["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    world = replace(
        world,
        pods=(*world.pods, waiting),
        claims=(*world.claims, claim("orders-3", "zone-c", phase="Pending", seeded_from="snap-1")),
    )
    decided = plan(store_spec(3), observed(world), NOW)
    assert not [a for a in decided.actions if isinstance(a, RetireMember)]


def test_redistribute_needs_the_surviving_zones_to_hold_a_majority() -> None:
    world = with_members(empty_world(ZONES), *[(n, ZONES[(n - 1) % 3]) for n in range(1, 7)])
    world = zones_down(world, ["zone-b", "zone-c"])
    spec = store_spec(6, recovery={"zoneFailure": "Redistribute", "zoneFailureGrace": "1s"})
    decided = plan(spec, observed(world), world.now + timedelta(minutes=5))
    assert not [a for a in decided.actions if isinstance(a, CreateMember | RetireMember)]
    assert any("no majority" in note for note in decided.notes)


def test_a_zone_without_any_node_is_an_outage_not_a_string_of_member_losses() -> None:
    world = with_members(World(nodes=empty_world(["zone-a", "zone-b"]).nodes), (1, "zone-a"), (2, "zone-b"))
    world = replace(world, pods=(*world.pods, pod("orders-3", "zone-c", ready=True, node_name="node-zone-c-0")))
    world = replace(world, claims=(*world.claims, claim("orders-3", "zone-c")))
    decided = plan(store_spec(3, recovery={"memberFailureGrace": "1s"}), observed(world), NOW)
    assert not [a for a in decided.actions if isinstance(a, CreateMember | RetireMember)]  # Wait: report only
    assert any("zone zone-c is down" in note for note in decided.notes)


def test_the_snapshot_freshness_message_does_not_change_with_time() -> None:
    """An age in the message would rewrite status on every pass of a steady store."""
    spec = store_spec(3, snapshots={"interval": "1h"})
    snap = volume_snapshot("orders-s", "orders-1", "zone-a", created=3500)
    snap["status"] = {"readyToUse": True, "creationTime": stamp(3500)}
    seen = observed(replace(empty_world(ZONES), snapshots=(snap,)))
    assert snapshots_fresh(spec, seen, NOW) == snapshots_fresh(spec, seen, NOW + timedelta(seconds=30))


def test_a_resumed_recovery_goes_to_a_surviving_zone_and_keeps_its_snapshot() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"))
    world = replace(world, claims=(*world.claims, claim("orders-3", "zone-c", retired=True)))
    world = replace(zones_down(world, ["zone-c"]), clock=0)
    old = volume_snapshot("orders-old", "orders-1", "zone-a", created=3000)
    old["status"] = {"readyToUse": True, "creationTime": stamp(3000)}
    new = volume_snapshot("orders-new", "orders-2", "zone-b", created=3590)
    new["status"] = {"readyToUse": True, "creationTime": stamp(3590)}
    world = replace(world, snapshots=(old, new))
    record = {"member": "orders-3", "reason": "ZoneLost", "source": "Snapshot", "startedAt": stamp(3500),
              "replacement": "orders-4", "snapshot": "orders-old"}  # fmt: skip
    spec = store_spec(3, snapshots={"interval": "1h", "keep": 1, "maxAge": "2h"})
    decided = plan(spec, observed(world, {"lastRecovery": record, "lastSerial": 4}), NOW)
    [create] = [a for a in decided.actions if isinstance(a, CreateMember)]
    assert (create.member, create.snapshot) == ("orders-4", "orders-old")
    assert create.zone in ("zone-a", "zone-b")
    assert "orders-old" not in [a.name for a in decided.actions if isinstance(a, DeleteSnapshot)]


def test_members_on_an_older_template_are_reported_and_rolled_out() -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    for raw in world.pods:
        raw["metadata"]["labels"][names.REVISION_LABEL] = "old"
    children = {"peers-service/orders-peers", "client-service/orders", "disruption-budget/orders"}
    world = replace(world, children=frozenset(children))
    decided = plan(store_spec(3), observed(world), NOW, revision="new", has_ports=True)
    status = decided.status
    assert (status.current_revision, status.update_revision, status.updated_replicas) == ("old", "new", 0)
    reconciling = next(c for c in status.conditions if c.type == "Reconciling")
    assert reconciling.status.value == "True" and reconciling.reason == "RollingOut"
    assert "0/3 members updated; canary in zone-a: orders-1" in reconciling.message
    assert status.phase is StorePhase.UPDATING


def test_a_child_whose_ports_or_budget_drifted_from_the_spec_is_updated() -> None:
    """Services and the PodDisruptionBudget follow later edits of the spec, not only creation."""
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    seen = {"peers-service/orders-peers#aaa", "client-service/orders#bbb", "disruption-budget/orders#old"}
    world = replace(world, children=frozenset(seen))
    wanted = {"peers-service/orders-peers": "aaa", "client-service/orders": "bbb", "disruption-budget/orders": "new"}
    decided = plan(store_spec(3), observed(world), NOW, has_ports=True, child_digests=wanted)
    updates = [a for a in decided.actions if isinstance(a, EnsureChild)]
    assert [(a.child, a.reason) for a in updates] == [("disruption-budget", "ChildUpdated")]
