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

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phalanx import names
from phalanx.models import ReplicatedStoreSpec, RetiredVolumePolicy
from phalanx.plan import CreateMember, RetireMember, plan, serving, stuck
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
