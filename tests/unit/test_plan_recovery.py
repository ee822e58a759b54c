"""Loss detection, as a table: when a member's data counts as gone, and when the store looks again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from phalanx.plan import loss_of, next_deadline
from tests.unit.test_plan import NOW, ZONES
from tests.unit.world import START, World, claim, empty_world, make_ready, node, observed, store_spec, with_members

SPEC = store_spec(3, recovery={"memberFailureGrace": "30s", "zoneFailureGrace": "5m"})


def one(world: World, status: dict[str, Any] | None = None) -> str | None:
    seen = observed(world, status)
    member = seen.member("orders-1")
    assert member is not None
    return loss_of(SPEC, seen, member, NOW)


def base() -> World:
    return make_ready(with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c")))


def node_down(since: int) -> Callable[[World], World]:
    def change(world: World) -> World:
        nodes = tuple(
            node("node-zone-a-0", "zone-a", ready=False, since=START - since)
            if n["metadata"]["name"] == "node-zone-a-0"
            else n
            for n in world.nodes
        )
        extra = node("node-zone-a-1", "zone-a")  # the zone itself is up
        return replace(world, nodes=(*nodes, extra))

    return change


def swap_claim(**fields: Any) -> Callable[[World], World]:
    def change(world: World) -> World:
        claims = tuple(c for c in world.claims if c["metadata"]["name"] != "orders-1")
        return replace(world, claims=(*claims, claim("orders-1", "zone-a", **fields)))

    return change


@pytest.mark.parametrize(
    ("change", "verdict"),
    [
        pytest.param(lambda w: w, None, id="healthy"),
        pytest.param(node_down(10), None, id="node-down-within-grace"),
        pytest.param(node_down(31), "NodeLost", id="node-down-beyond-grace"),
        pytest.param(swap_claim(phase="Lost"), "VolumeLost", id="volume-lost-at-once"),
        pytest.param(
            swap_claim(phase="Pending", seeded_from="s1", created=START - 151), "RestoreFailed", id="restore-stuck"
        ),
        pytest.param(swap_claim(phase="Pending", seeded_from="s1", created=START - 100), None, id="restore-in-time"),
    ],
)
def test_when_a_members_data_counts_as_gone(change: Callable[[World], World], verdict: str | None) -> None:
    found = one(change(base()))
    assert (found.split(":")[0] if found else None) == verdict


def test_a_deleted_claim_and_a_deleted_node_count_only_after_the_grace() -> None:
    world = base()
    gone_claim = replace(world, claims=tuple(c for c in world.claims if c["metadata"]["name"] != "orders-1"))
    lost_since = {"members": [{"name": "orders-1", "zone": "zone-a", "state": "Lost", "since": "2025-01-01T00:59:00Z"}]}
    assert one(gone_claim, lost_since) is not None  # 60 s beyond the 30 s grace (status says since when)
    assert one(gone_claim) is None  # never seen missing before: not yet
    no_node = replace(world, nodes=tuple(n for n in world.nodes if n["metadata"]["name"] != "node-zone-a-0"))
    assert one(no_node) is None
    unavailable = {
        "members": [{"name": "orders-1", "zone": "zone-a", "state": "Unavailable", "since": "2025-01-01T00:59:00Z"}]
    }
    assert (one(no_node, unavailable) or "").startswith("NodeDeleted")


def test_the_store_looks_again_when_a_grace_ends() -> None:
    world = node_down(10)(base())
    assert next_deadline(SPEC, observed(world), NOW) == pytest.approx(20.1)
    pending = swap_claim(phase="Pending", seeded_from="s1", created=START - 100)(base())
    assert next_deadline(SPEC, observed(pending), NOW) == pytest.approx(50.1)
    assert next_deadline(SPEC, observed(base()), NOW) == 60.0
