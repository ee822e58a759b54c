"""Zone outages as they really end: a zone comes back node by node, and a member on a node still
coming back is part of the outage, not a loss of its own (``placement.grace_start``).

The store: six members over three zones, two nodes a zone, a member on each node. Zone-b's two
nodes stop together; they come back together or one at a time, with gaps longer than
memberFailureGrace (3 s) and shorter than zoneFailureGrace (60 s). Each step plans on the world and
the status the previous step wrote, as the operator does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest

from phalanx import names
from phalanx.models import ReplicatedStoreSpec
from phalanx.plan import CreateMember, Plan, RetireMember, next_deadline, plan
from tests.unit.test_plan import ZONES, steady
from tests.unit.world import World, empty_world, make_ready, node, observed, stamp, store_spec
from tests.unit.world import apply as carry_out

MEMBER_GRACE = 3
ZONE_GRACE = 60
ZONE_B = ("node-zone-b-0", "node-zone-b-1")


def zone_spec(policy: str = "Wait") -> ReplicatedStoreSpec:
    return store_spec(
        6,
        recovery={
            "zoneFailure": policy,
            "memberFailureGrace": f"{MEMBER_GRACE}s",
            "zoneFailureGrace": f"{ZONE_GRACE}s",
        },
    )


def six_members(spec: ReplicatedStoreSpec) -> tuple[World, dict[str, Any]]:
    """Converged, then each zone's second member moved to the zone's second node."""
    world, status = steady(World(nodes=tuple(node(f"node-{z}-{i}", z) for z in ZONES for i in range(2))), spec)
    pods = []
    for raw in world.pods:
        moved = copy.deepcopy(raw)
        zone = moved["metadata"]["labels"][names.ZONE_LABEL]
        serial = int(moved["metadata"]["name"].rsplit("-", 1)[1])
        moved["spec"]["nodeName"] = f"node-{zone}-{0 if serial <= 3 else 1}"
        pods.append(moved)
    return replace(world, pods=tuple(pods)), status


def nodes_state(world: World, down: Iterable[str], since: int) -> World:
    """The nodes named in ``down`` NotReady since ``since`` (kept if already down), every other Ready."""
    down = set(down)
    nodes = []
    for raw in world.nodes:
        name = raw["metadata"]["name"]
        was = raw["status"]["conditions"][0]
        if name in down:
            kept = was["status"] == "False"
            condition = {
                "type": "Ready",
                "status": "False",
                "lastTransitionTime": was["lastTransitionTime"] if kept else stamp(since),
            }
        else:
            condition = {"type": "Ready", "status": "True", "lastTransitionTime": stamp(0)}
        changed = copy.deepcopy(raw)
        changed["status"] = {"conditions": [condition]}
        nodes.append(changed)
    return replace(world, nodes=tuple(nodes))


class Timeline:
    """A store driven through node events at given seconds, planning every second in between and
    carrying the status from pass to pass. Plans are applied (with the kubelet making new members
    ready) only once ``apply`` is set; the default watches what would be decided."""

    def __init__(self, spec: ReplicatedStoreSpec) -> None:
        self.spec = spec
        self.world, self.status = six_members(spec)
        self.t0 = self.world.clock
        self.plans: list[tuple[int, Plan]] = []

    def run(self, until: int, down: dict[int, Iterable[str]], apply: bool = False) -> None:
        """Seconds from t0 to ``until``; ``down[s]`` is the set of nodes down from second s on."""
        current: set[str] = set()
        for second in range(until + 1):
            if second in down:
                current = set(down[second])
            self.world = nodes_state(replace(self.world, clock=self.t0 + second), current, self.t0 + second)
            decided = plan(self.spec, observed(self.world, self.status), self.world.now, has_ports=True)
            self.status = decided.status.to_wire()
            self.plans.append((second, decided))
            if apply and decided.actions:
                self.world = make_ready(replace(carry_out(self.world, decided), rejected=()))

    def retired(self) -> list[tuple[int, str, str]]:
        return [(s, a.member, a.why) for s, p in self.plans for a in p.actions if isinstance(a, RetireMember)]

    def created(self) -> list[tuple[int, str, str]]:
        return [(s, a.zone, a.reason) for s, p in self.plans for a in p.actions if isinstance(a, CreateMember)]


@pytest.mark.parametrize("policy", ["Wait", "Redistribute"])
@pytest.mark.parametrize(
    "returns",
    [
        pytest.param({0: ZONE_B, 20: ()}, id="together"),
        pytest.param({0: ZONE_B, 20: ZONE_B[1:], 30: ()}, id="one-then-the-other-10s-later"),
        pytest.param({0: ZONE_B, 20: ZONE_B[:1], 45: ()}, id="the-other-first-25s-later"),
        pytest.param({0: ZONE_B, 20: ZONE_B[1:], 20 + ZONE_GRACE - 1: ()}, id="last-one-just-inside-zone-grace"),
    ],
)
def test_a_zone_returning_node_by_node_replaces_nobody(policy: str, returns: dict[int, Iterable[str]]) -> None:
    line = Timeline(zone_spec(policy))
    line.run(max(returns) + 2 * ZONE_GRACE, returns)
    assert line.retired() == []
    assert line.created() == []
    assert line.plans[-1][1].status.ready_replicas == 6


def test_the_waiting_is_said_and_the_return_is_recorded() -> None:
    line = Timeline(zone_spec())
    line.run(30, {0: ZONE_B, 20: ZONE_B[1:]})
    _, last = line.plans[-1]
    zone_b = next(z for z in last.status.zones if z.name == "zone-b")
    assert zone_b.down_since is None
    assert zone_b.returned_at is not None and (zone_b.returned_at - line.world.now).total_seconds() == -10
    assert any("zone zone-b is back but for node-zone-b-1" in note for note in last.notes)
    # It looks again when the wait is over, not only at the steady interval.
    seen = observed(line.world, line.status)
    assert next_deadline(line.spec, seen, line.world.now) <= ZONE_GRACE - 10 + MEMBER_GRACE + 1


@pytest.mark.parametrize("policy", ["Wait", "Redistribute"])
def test_a_node_that_never_comes_back_is_replaced_after_both_graces(policy: str) -> None:
    line = Timeline(zone_spec(policy))
    line.run(20 + ZONE_GRACE + MEMBER_GRACE + 5, {0: ZONE_B, 20: ZONE_B[1:]}, apply=True)
    [(second, member, why)] = line.retired()
    assert member == "orders-5"  # the member on node-zone-b-1
    assert second == 20 + ZONE_GRACE + MEMBER_GRACE, "its own grace starts when its zone's return is over"
    assert "NodeLost" in why
    assert [(z, r) for _, z, r in line.created()] == [("zone-b", "MemberReplaced")]


def test_a_node_failing_after_its_zone_returned_has_its_own_grace() -> None:
    line = Timeline(zone_spec())
    line.run(30 + MEMBER_GRACE, {0: ZONE_B, 20: (), 30: ZONE_B[:1]}, apply=True)
    assert [(second, member) for second, member, _ in line.retired()] == [(30 + MEMBER_GRACE, "orders-2")]


def test_without_the_zone_clock_the_straggler_would_have_been_replaced() -> None:
    """The defect this guards against: the zone's first node back ended the outage, and the member
    on the node still coming back was judged on its node's clock (down 20 s, grace 3 s) at once."""
    line = Timeline(zone_spec())
    line.run(21, {0: ZONE_B, 20: ZONE_B[1:]})
    status = copy.deepcopy(line.status)
    for zone in status["zones"]:
        zone.pop("returnedAt", None)  # a status that never recorded the return
    decided = plan(line.spec, observed(line.world, status), line.world.now, has_ports=True)
    assert [a.member for a in decided.actions if isinstance(a, RetireMember)] == ["orders-5"]


def test_redistributed_members_move_back_only_once_the_zone_is_wholly_back_and_settled() -> None:
    line = Timeline(zone_spec("Redistribute"))
    back_first, back_last = ZONE_GRACE + 10, ZONE_GRACE + 30
    line.run(back_last + 20, {0: ZONE_B, back_first: ZONE_B[1:], back_last: ()}, apply=True)
    lost = [(s, m) for s, m, why in line.retired() if "ZoneLost" in why]
    assert sorted(m for _, m in lost) == ["orders-2", "orders-5"], "the zone was lost beyond its grace"
    moved_back = [s for s, zone, reason in line.created() if zone == "zone-b" and reason == "Rebalancing"]
    assert moved_back, "members move back once the zone has returned"
    assert min(moved_back) >= back_last, "not while a node of the zone is still coming back"
    assert min(moved_back) >= back_first + MEMBER_GRACE


def test_a_zone_back_only_briefly_gets_nothing_moved_into_it() -> None:
    line = Timeline(zone_spec("Redistribute"))
    back = ZONE_GRACE + 10
    line.run(back + MEMBER_GRACE - 1, {0: ZONE_B, back: ()}, apply=True)
    assert [s for s, zone, reason in line.created() if zone == "zone-b"] == []


def test_an_empty_world_has_no_return_to_speak_of() -> None:
    world = empty_world(ZONES)
    decided = plan(zone_spec(), observed(world), world.now, has_ports=True)
    assert all(z.returned_at is None for z in decided.status.zones)
