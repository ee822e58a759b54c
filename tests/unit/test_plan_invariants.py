"""The design's invariants I1, I3 and I4 as properties, over generated worlds that include snapshots of
every kind (ready or not, fresh or old, this store's, a predecessor's), retired volumes dated or not,
and a recorded recovery.

- I1: a voluntary disruption (scale down, rebalancing) takes at most one member, and only while every
  other member serves (a member stuck past its progress deadline neither counts nor blocks).
- I3: a volume goes only when spec.retiredVolumes (or deletionPolicy) deletes retired volumes: a
  retired one once every member is there and Ready and its replacement has been Ready for
  deleteAfter; a member's own, on scale down, only with no delay to wait out and the others serving.
- I4: a member is seeded only from a ready snapshot of the same store, younger than ``maxAge``.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phalanx import names
from phalanx.models import ReplicatedStoreSpec, RetiredVolumePolicy
from phalanx.plan import CreateMember, DeletePod, RetireMember, plan, serving, stuck
from tests.unit.test_plan import ANY_SPEC, PROPERTY, ZONES, worlds
from tests.unit.world import (
    START,
    World,
    empty_world,
    make_ready,
    make_unready,
    node,
    observed,
    pod,
    stamp,
    store_spec,
    volume_snapshot,
    with_members,
)

SNAPSHOT_KINDS = st.fixed_dictionaries(
    {
        "ready": st.booleans(),
        "age": st.sampled_from([10, 1800, 4 * 3600, 40 * 3600]),
        "predecessor": st.booleans(),
    }
)


def with_snapshots(world: World, kinds: list[dict[str, Any]]) -> World:
    snapshots = []
    for index, kind in enumerate(kinds):
        snap = volume_snapshot(
            f"orders-snap-{index}",
            "orders-1",
            "zone-a",
            created=START - kind["age"],
            store_uid="someone-before" if kind["predecessor"] else world.store.uid,
        )
        if kind["ready"]:
            snap["status"] = {"readyToUse": True, "creationTime": stamp(START - kind["age"])}
        snapshots.append(snap)
    return replace(world, snapshots=tuple(snapshots))


RECOVERY = st.sampled_from(
    [
        {},
        {
            "lastSerial": 41,
            "lastRecovery": {
                "member": "orders-2",
                "reason": "NodeLost: node gone",
                "source": "Snapshot",
                "startedAt": stamp(START - 30),
                "replacement": "orders-41",
                "snapshot": "orders-snap-0",
            },
        },
    ]
)


@PROPERTY
@given(worlds(), ANY_SPEC, st.lists(SNAPSHOT_KINDS, max_size=4), RECOVERY)
def test_i4_a_member_is_seeded_only_from_a_ready_fresh_snapshot_of_this_store(
    world: World, spec: ReplicatedStoreSpec, kinds: list[dict[str, Any]], status: dict[str, Any]
) -> None:
    world = with_snapshots(world, kinds)
    decided = plan(spec, observed(world, status), world.now, has_ports=True)
    by_name = {s["metadata"]["name"]: (s, k) for s, k in zip(world.snapshots, kinds, strict=True)}
    for action in decided.actions:
        if isinstance(action, CreateMember) and action.snapshot is not None:
            assert spec.snapshots is not None, action
            _, kind = by_name[action.snapshot]
            assert kind["ready"] and not kind["predecessor"], (action, kind)
            assert kind["age"] < spec.snapshots.effective_max_age().total_seconds(), (action, kind)


MEMBER_STATES = st.sampled_from(["ready", "ready", "starting", "node-down", "unready"])


@st.composite
def shrinking(draw: st.DrawFn) -> tuple[World, ReplicatedStoreSpec]:
    """A store with more members than replicas, each member ready, starting, unready or on a node that
    just went down: where scale down must ask the budget."""
    count = draw(st.integers(2, 7))
    states = [draw(MEMBER_STATES) for _ in range(count)]
    world = make_ready(with_members(empty_world(ZONES), *[(n, ZONES[n % 3]) for n in range(1, count + 1)]))
    pods = []
    for raw, state in zip(world.pods, states, strict=True):
        if state == "starting":
            raw = pod(
                raw["metadata"]["name"],
                raw["metadata"]["labels"][names.ZONE_LABEL],
                phase="Pending",
                created=START - 5,
                node_name=raw["spec"]["nodeName"],
            )
        elif state == "unready":
            raw = make_unready(replace(world, pods=(raw,)), [raw["metadata"]["name"]]).pods[0]
        pods.append(raw)
    world = replace(world, pods=tuple(pods))
    down = [f"node-{ZONES[n % 3]}-0" for n, state in enumerate(states, start=1) if state == "node-down"]
    nodes = tuple(
        node(
            n["metadata"]["name"],
            n["metadata"]["labels"][names.NODE_ZONE_LABEL],
            ready=n["metadata"]["name"] not in down,
            since=START - 1,
        )
        for n in world.nodes
    )
    return replace(world, nodes=nodes), store_spec(draw(st.integers(1, count - 1)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.tuples(worlds(), ANY_SPEC), shrinking()), RECOVERY)
def test_i1_a_voluntary_disruption_takes_one_member_and_only_while_the_others_serve(
    case: tuple[World, ReplicatedStoreSpec], status: dict[str, Any]
) -> None:
    world, spec = case
    seen = observed(world, status)
    decided = plan(spec, seen, world.now, has_ports=True)
    voluntary = [a for a in decided.actions if isinstance(a, RetireMember) and a.reason == "MemberRetired"]
    assert len(voluntary) <= 1, voluntary
    deadline = spec.updates.progress_deadline.total_seconds()
    for action in voluntary:
        taken = seen.member(action.member)
        if taken is None or not serving(taken, seen):
            continue  # a member that does not serve disrupts nothing by leaving
        others = [m for m in seen.members if m is not taken]
        assert all(serving(m, seen) or stuck(m, seen, deadline, world.now) for m in others), action


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.tuples(worlds(), ANY_SPEC), shrinking()), RECOVERY)
def test_i3_a_volume_goes_only_when_the_policy_says_and_the_store_is_whole(
    case: tuple[World, ReplicatedStoreSpec], status: dict[str, Any]
) -> None:
    world, spec = case
    seen = observed(world, status)
    decided = plan(spec, seen, world.now, has_ports=True)
    deleting = spec.retired_volumes.effective_policy(spec.deletion_policy) is RetiredVolumePolicy.DELETE
    after = spec.retired_volumes.delete_after
    deadline = spec.updates.progress_deadline.total_seconds()
    retired = {c.name: c for c in seen.retired_claims}
    for action in decided.actions:
        if not (isinstance(action, RetireMember) and action.delete_volume):
            continue
        assert deleting, (action, spec.retired_volumes, spec.deletion_policy)
        if action.member in retired:
            assert len(seen.members) >= spec.replicas and all(serving(m, seen) for m in seen.members), action
            claim = retired[action.member]
            assert claim.retired_at is not None and world.now - claim.retired_at >= after, action
            successor = [m for m in seen.members if m.claim is not None and m.claim.replaces == action.member]
            for member in successor:
                assert member.pod is not None and member.pod.ready_since is not None
                assert world.now - member.pod.ready_since >= after, action
        else:
            assert after.total_seconds() == 0, action
            taken = seen.member(action.member)
            others = [m for m in seen.members if m is not taken]
            assert all(serving(m, seen) or stuck(m, seen, deadline, world.now) for m in others), action


@st.composite
def rolling(draw: st.DrawFn) -> tuple[World, ReplicatedStoreSpec, dict[str, str]]:
    """A store of 3 to 9 members over three zones whose pods run the old or the new revision, a few
    of them out (unready, or their pod gone: involuntary losses), under any update settings, paused
    or not, asked for an on-demand replacement or not, with replicas drawn apart from the member
    count (scaling): a rollout in flight."""
    count = draw(st.integers(3, 9))
    world = make_ready(with_members(empty_world(ZONES), *[(n, ZONES[n % 3]) for n in range(1, count + 1)]))
    out = draw(st.sets(st.sampled_from([f"orders-{n}" for n in range(1, count + 1)]), max_size=2))
    world = make_unready(world, [m for m in out if draw(st.booleans())])
    pods = []
    for raw in world.pods:
        if raw["metadata"]["name"] in out and draw(st.booleans()):
            continue  # its pod is gone
        labelled = copy.deepcopy(raw)
        labelled["metadata"]["labels"][names.REVISION_LABEL] = draw(st.sampled_from(["old", "new"]))
        pods.append(labelled)
    replicas = draw(st.sampled_from([count, count, count - 1, count + 1]))
    spec = store_spec(
        replicas,
        updates={
            "strategy": draw(st.sampled_from(["InPlace", "Replace"])),
            "maxUnavailablePerZone": draw(st.integers(1, 3)),
            "canary": draw(st.integers(0, replicas)),
            "paused": draw(st.booleans()),
        },
    )
    annotations = draw(
        st.sampled_from([{}, {}, {names.REPLACE_ANNOTATION: "all"}, {names.ROLLOUT_PAUSED_ANNOTATION: "true"}])
    )
    return replace(world, pods=tuple(pods)), spec, annotations


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rolling())
def test_i1_i2_a_rollout_step_stays_in_one_zone_within_the_budget(
    case: tuple[World, ReplicatedStoreSpec, dict[str, str]],
) -> None:
    world, spec, annotations = case
    seen = observed(world, {}, annotations=annotations)
    decided = plan(spec, seen, world.now, revision="new", has_ports=True)
    step = [
        a
        for a in decided.actions
        if isinstance(a, DeletePod | CreateMember) and a.reason in ("MemberUpdating", "MemberReplacing")
    ]
    if not step:
        return
    assert not (spec.updates.paused or seen.rollout_paused), "a paused rollout takes no step"
    assert not [
        a
        for a in decided.actions
        if isinstance(a, CreateMember | RetireMember) and a.reason not in ("MemberReplacing",)
    ], "a step starts only when nothing else changes the members"
    members = {(a.replaces or a.member) if isinstance(a, CreateMember) else a.member for a in step}
    taken = [seen.member(m) for m in members]
    assert all(t is not None for t in taken)
    zones = {t.zone for t in taken if t is not None}
    assert len(zones) == 1, zones
    assert len(members) <= spec.updates.max_unavailable_per_zone
    (zone,) = zones
    others_out = [m for m in seen.members if m.zone != zone and not serving(m, seen)]
    assert others_out == [], "no step while another zone has a member out (I1)"
    out_after = {m.name for m in seen.members if not serving(m, seen)} | {
        a.member for a in step if isinstance(a, DeletePod)
    }
    assert (len(seen.members) - len(out_after)) * 2 > len(seen.members), "a majority keeps serving (I2)"
