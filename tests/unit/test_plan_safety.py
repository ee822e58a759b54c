"""Data safety in the planner: what Phalanx trusts, and what it reports instead of doing.

Provenance (the uid of every claim and snapshot Phalanx made, kept in ``status.owned``) decides what
the planner may delete, adopt or restore from; labels only say what an object claims to be. A
property over generated worlds holds it for every action; tables show each rule. Then the rest of
what a careless user can cause: volumes pinned from the start, names another owner holds, requests
the API server refuses, zones that do not exist, members that never start, storage edits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from phalanx import names
from phalanx.models import DeletionPolicy, ReplicatedStoreSpec
from phalanx.observe import observe
from phalanx.plan import (
    CreateMember,
    DeletePod,
    DeleteSnapshot,
    EnsureChild,
    ExpandVolume,
    PinVolume,
    RetireMember,
    plan,
)
from tests.unit.test_plan import ALL_CHILDREN, ANY_SPEC, NOW, PROPERTY, ZONES, described, worlds
from tests.unit.world import (
    STORE,
    World,
    claim,
    empty_world,
    make_ready,
    observed,
    pod,
    stamp,
    store_spec,
    volume_snapshot,
    with_members,
)

SNAPPING: dict[str, Any] = {"snapshots": {"interval": "1h", "keep": 3}}


def ready_store(*extra: Any, spec_zones: tuple[str, ...] = ZONES) -> World:
    """Three ready members, one per zone, with every child."""
    world = make_ready(with_members(empty_world(spec_zones), (1, "zone-a"), (2, "zone-b"), (3, "zone-c")))
    return replace(world, children=ALL_CHILDREN)


def conditions(decided: Any) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status.value, c.reason, c.message) for c in decided.status.conditions}


# ------------------------------------------------------------------------------------------------
# Provenance, as a property: whatever the world, nothing unrecorded is deleted or restored from


def forged(world: World, data: st.DataObject) -> World:
    """The world with some of its claims and snapshots made foreign, and a forged lineage snapshot."""
    foreign = {c["metadata"]["uid"] for c in world.claims if data.draw(st.booleans())}
    fake = volume_snapshot("orders-99999999-999999", "orders-1", "zone-a", uid="forged", created=START_LATE)
    fake["status"] = {"readyToUse": True, "creationTime": stamp(START_LATE)}
    trap = claim("my-precious", "zone-a", uid="precious", retired=True)
    trap["metadata"]["labels"][names.MEMBER_LABEL] = "orders-97"
    return replace(
        world,
        snapshots=(*world.snapshots, fake),
        claims=(*world.claims, trap),
        foreign=frozenset(foreign | {"forged", "precious"}),
    )


START_LATE = 3590


@PROPERTY
@given(worlds(), ANY_SPEC, st.data())
def test_no_action_deletes_adopts_or_restores_from_what_phalanx_did_not_record(
    world: World, spec: ReplicatedStoreSpec, data: st.DataObject
) -> None:
    spec = spec.model_copy(update={"deletion_policy": DeletionPolicy.DELETE})
    world = forged(world, data)
    decided = plan(spec, observed(world), NOW, has_ports=True)
    foreign_claims = {
        c["metadata"]["name"]: c["metadata"]["uid"] for c in world.claims if c["metadata"]["uid"] in world.foreign
    }
    for action in decided.actions:
        if isinstance(action, RetireMember):
            assert action.claim_uid not in world.foreign, action
        if isinstance(action, DeleteSnapshot):
            assert action.uid not in world.foreign, action
        if isinstance(action, CreateMember):
            assert action.snapshot != "orders-99999999-999999", action
            assert foreign_claims.get(action.member) is None, action  # never built on a stranger's claim
    assert "PersistentVolumeClaim my-precious" in observed(world).foreign


# ------------------------------------------------------------------------------------------------
# Provenance, rule by rule


def test_a_claim_that_only_says_it_is_a_retired_member_is_never_deleted_nor_bumps_serials() -> None:
    trap = claim("my-precious", "zone-a", uid="precious", retired=True)
    trap["metadata"]["labels"][names.MEMBER_LABEL] = "orders-97"
    world = replace(ready_store(), claims=(*ready_store().claims, trap), foreign=frozenset({"precious"}))
    decided = plan(store_spec(3, deletionPolicy="Delete"), observed(world), NOW, has_ports=True)
    assert decided.actions == ()
    assert decided.status.last_serial == 3
    status, reason, message = conditions(decided)["ForeignObjects"]
    assert (status, reason) == ("True", "Ignored") and "PersistentVolumeClaim my-precious" in message


def test_a_forged_snapshot_never_seeds_a_member() -> None:
    real = volume_snapshot("orders-20250101-000000", "orders-1", "zone-a", created=3000)
    fake = volume_snapshot("orders-29991231-235959", "orders-1", "zone-a", uid="forged", created=3500)
    world = make_ready(replace(ready_store(), snapshots=(real, fake), foreign=frozenset({"forged"})))
    decided = plan(store_spec(4, **SNAPPING), observed(world), NOW, has_ports=True)
    [create] = [a for a in decided.actions if isinstance(a, CreateMember)]
    assert create.snapshot == "orders-20250101-000000"
    assert "VolumeSnapshot orders-29991231-235959" in observed(world).foreign


def test_a_pod_the_store_does_not_control_is_neither_a_member_nor_deleted() -> None:
    innocent = pod("orders-99", "zone-a", owner=None, node_name="node-zone-a-0", phase="Failed")
    world = replace(ready_store(), pods=(*ready_store().pods, innocent))
    decided = plan(store_spec(3), observed(world), NOW, has_ports=True)
    assert decided.actions == ()
    assert [m.name for m in decided.status.members] == ["orders-1", "orders-2", "orders-3"]
    assert "Pod orders-99" in conditions(decided)["ForeignObjects"][2]


def test_a_claim_named_as_the_next_member_is_skipped_not_adopted() -> None:
    squatter = claim("orders-4", "zone-a", uid="squatter")
    world = replace(ready_store(), claims=(*ready_store().claims, squatter), foreign=frozenset({"squatter"}))
    decided = plan(store_spec(4), observed(world), NOW, has_ports=True)
    assert [a.member for a in decided.actions if isinstance(a, CreateMember)] == ["orders-5"]
    assert decided.status.last_serial == 5


def test_a_stranger_far_ahead_in_the_names_does_not_push_the_serials_past_a_labels_length() -> None:
    far = claim("orders-99999999999", "zone-a", uid="far")
    world = replace(ready_store(), claims=(*ready_store().claims, far), foreign=frozenset({"far"}))
    decided = plan(store_spec(4), observed(world), NOW, has_ports=True)
    assert [a.member for a in decided.actions if isinstance(a, CreateMember)] == ["orders-4"]


def test_a_store_from_before_the_record_adopts_what_it_sees_once_and_records_it() -> None:
    world = ready_store()
    status = {"lastSerial": 3}  # written by a Phalanx that kept no status.owned
    seen = observe(STORE, 1, status, world.pods, world.claims, world.nodes)
    assert [m.name for m in seen.members] == ["orders-1", "orders-2", "orders-3"]
    assert sorted(o.name for o in seen.owned.claims) == ["orders-1", "orders-2", "orders-3"]
    fresh = observe(STORE, 1, {}, world.pods, world.claims, world.nodes)  # a new store trusts nothing
    assert fresh.members[0].claim is None and "PersistentVolumeClaim orders-1" in fresh.foreign


def test_a_retained_claim_is_adopted_on_its_volumes_word_only() -> None:
    kept = claim("orders-1", "zone-a", uid="kept")
    volume = {"metadata": {"name": "pv-orders-1", "annotations": {names.RETAINED_CLAIM_ANNOTATION: "kept"}}}
    status: dict[str, Any] = {"owned": {"claims": [], "snapshots": []}}
    adopted = observe(STORE, 1, status, (), [kept], (), volumes={"pv-orders-1": volume})
    assert adopted.members[0].claim is not None
    forged_word = {"metadata": {"name": "pv-orders-1", "annotations": {names.RETAINED_CLAIM_ANNOTATION: "other"}}}
    refused = observe(STORE, 1, status, (), [kept], (), volumes={"pv-orders-1": forged_word})
    assert refused.members == () and refused.foreign == ("PersistentVolumeClaim orders-1",)


# ------------------------------------------------------------------------------------------------
# Volumes pinned from the start


def pinned_world(policy: str, reclaim: str) -> tuple[ReplicatedStoreSpec, Any]:
    world = ready_store()
    volumes = {
        f"pv-orders-{n}": {"metadata": {"name": f"pv-orders-{n}"}, "spec": {"persistentVolumeReclaimPolicy": reclaim}}
        for n in (1, 2, 3)
    }
    status = {"owned": {"claims": [{"name": c["metadata"]["name"], "uid": c["metadata"]["uid"]} for c in world.claims]}}
    seen = observe(STORE, 1, status, world.pods, world.claims, world.nodes, world.children, volumes=volumes)
    return store_spec(3, deletionPolicy=policy), seen


def test_a_retain_or_snapshot_stores_volumes_are_pinned_as_soon_as_bound() -> None:
    for policy in ("Retain", "Snapshot"):
        spec, seen = pinned_world(policy, "Delete")
        pins = [a for a in plan(spec, seen, NOW, has_ports=True).actions if isinstance(a, PinVolume)]
        assert [(a.volume, a.was) for a in pins] == [(f"pv-orders-{n}", "Delete") for n in (1, 2, 3)]
    spec, seen = pinned_world("Retain", "Retain")
    assert plan(spec, seen, NOW, has_ports=True).actions == ()
    spec, seen = pinned_world("Delete", "Delete")
    assert plan(spec, seen, NOW, has_ports=True).actions == ()


# ------------------------------------------------------------------------------------------------
# What a person must fix: Stalled, with the reason


def test_a_child_name_another_store_holds_is_reported_and_never_touched() -> None:
    world = replace(ready_store(), children=ALL_CHILDREN - {"client-service/orders"})
    taken = {"client-service/orders": "Service orders (controlled by ReplicatedStore other)"}
    decided = plan(store_spec(3), observed(world), NOW, has_ports=True, collisions=taken)
    assert not any(isinstance(a, EnsureChild) for a in decided.actions)
    status, reason, message = conditions(decided)["Stalled"]
    assert (status, reason) == ("True", "NameCollision") and "ReplicatedStore other" in message


def test_writes_refused_pass_after_pass_stall_the_store_with_the_servers_words() -> None:
    decided = plan(store_spec(3), observed(ready_store()), NOW, has_ports=True, refused="PodCreated: 422 quantities")
    assert conditions(decided)["Stalled"][:2] == ("True", "Refused")
    assert "422 quantities" in conditions(decided)["Stalled"][2]


def test_zones_that_name_no_zone_with_a_node_stall_and_move_nothing() -> None:
    spec = store_spec(3, zones=["zone-x"])
    decided = plan(spec, observed(ready_store()), NOW, has_ports=True)
    assert decided.actions == ()
    assert conditions(decided)["Stalled"][:2] == ("True", "NoSuchZone")
    assert "zone-x" in conditions(decided)["Stalled"][2]


def late_members(world: World, *serials: int) -> World:
    """Members that never started: claims Pending (no class can provision them), created at 0."""
    extra = tuple(claim(f"orders-{n}", "zone-a", phase="Pending", created=0) for n in serials)
    return replace(world, claims=(*world.claims, *extra))


def test_members_that_never_start_stall_the_store_after_the_progress_deadline() -> None:
    world = late_members(ready_store(), 4)
    spec = store_spec(4, updates={"progressDeadline": "10s"})
    status, reason, message = conditions(plan(spec, observed(world), NOW, has_ports=True))["Stalled"]
    assert (status, reason) == ("True", "ProgressDeadlineExceeded") and "orders-4" in message
    young = replace(world, clock=4)  # within the deadline: still on its way, and looked at again when it ends
    decided = plan(spec, observed(young), young.now, has_ports=True)
    assert conditions(decided)["Stalled"][0] == "False"
    assert decided.requeue_after <= 6.2


def test_members_that_never_started_go_first_and_never_block_shrinking() -> None:
    world = late_members(ready_store(), 4, 5)
    spec = store_spec(3, updates={"progressDeadline": "10s"})
    decided = plan(spec, observed(world), NOW, has_ports=True)
    assert described(a for a in decided.actions if isinstance(a, RetireMember)) == [("RetireMember", "orders-5")]
    assert not any(isinstance(a, (DeletePod, CreateMember)) for a in decided.actions)


def test_a_member_whose_pod_was_replaced_is_never_taken_for_one_that_never_started() -> None:
    world = ready_store()
    claims = tuple(c for c in world.claims if c["metadata"]["name"] != "orders-3")
    replaced = (
        *(p for p in world.pods if p["metadata"]["name"] != "orders-3"),
        pod("orders-3", "zone-c", created=600, node_name="node-zone-c-0"),  # not ready yet, made long after
    )
    world = replace(world, claims=(*claims, claim("orders-3", "zone-c", created=0)), pods=replaced)
    spec = store_spec(3, updates={"progressDeadline": "10s"})
    assert conditions(plan(spec, observed(world), NOW, has_ports=True))["Stalled"][0] == "False"


# ------------------------------------------------------------------------------------------------
# Storage edits


def sized(world: World, size: str, storage_class: str | None = None) -> World:
    claims = []
    for raw in world.claims:
        grown = {**raw, "spec": {**raw["spec"], "resources": {"requests": {"storage": size}}}}
        if storage_class:
            grown["spec"]["storageClassName"] = storage_class
        claims.append(grown)
    return replace(world, claims=tuple(claims))


def test_a_raised_size_is_asked_of_every_claim_and_reported_until_it_is() -> None:
    world = sized(ready_store(), "1Gi")
    decided = plan(store_spec(3, storage={"size": "2Gi"}), observed(world), NOW, has_ports=True)
    assert [(a.member, a.size) for a in decided.actions if isinstance(a, ExpandVolume)] == [
        (f"orders-{n}", "2Gi") for n in (1, 2, 3)
    ]
    assert conditions(decided)["VolumesMatchSpec"][:2] == ("False", "Expanding")
    grown = sized(ready_store(), "2048Mi")
    assert conditions(plan(store_spec(3, storage={"size": "2Gi"}), observed(grown), NOW))["VolumesMatchSpec"][0] == (
        "True"
    )


def test_what_cannot_change_is_reported_naming_the_field() -> None:
    world = sized(ready_store(), "2Gi", "fast")
    shrink = plan(store_spec(3, storage={"size": "1Gi"}), observed(world), NOW, has_ports=True)
    assert not any(isinstance(a, ExpandVolume) for a in shrink.actions)
    assert conditions(shrink)["VolumesMatchSpec"][:2] == ("False", "CannotShrink")
    assert "spec.storage.size" in conditions(shrink)["VolumesMatchSpec"][2]
    moved = plan(store_spec(3, storage={"size": "2Gi", "storageClassName": "slow"}), observed(world), NOW)
    assert conditions(moved)["VolumesMatchSpec"][:2] == ("False", "ClassDiffers")
    assert "spec.storage.storageClassName" in conditions(moved)["VolumesMatchSpec"][2]
    refused = plan(
        store_spec(3, storage={"size": "4Gi"}), observed(world), NOW, expansion_refused="403: class cannot resize"
    )
    assert not any(isinstance(a, ExpandVolume) for a in refused.actions)
    assert conditions(refused)["VolumesMatchSpec"][:2] == ("False", "ExpansionRefused")
