"""Placement and zones: where new members go, who leaves first, which zones are the store's.

The pure world of ``tests/unit/world.py``, observed exactly as the handlers observe it; shared
helpers live in ``tests/unit/test_plan.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from phalanx.plan import (
    desired_zones,
    place,
    placeable,
    retirement_order,
    skew,
    zone_counts,
)
from tests.unit.test_plan import (
    ZONES,
    member,
)
from tests.unit.world import (
    World,
    node,
    observed,
    store_spec,
    with_members,
)

# ================================================================================================
# Placement: pure arithmetic over zone counts


@pytest.mark.parametrize(
    ("zones", "counts", "how_many", "expected"),
    [
        pytest.param(ZONES, {}, 3, ["zone-a", "zone-b", "zone-c"], id="empty-store-gets-one-per-zone"),
        pytest.param(ZONES, {}, 5, ["zone-a", "zone-b", "zone-c", "zone-a", "zone-b"], id="round-robin-over-zones"),
        pytest.param(ZONES, dict.fromkeys(ZONES, 1), 2, ["zone-a", "zone-b"], id="ties-broken-by-zone-name"),
        pytest.param(
            ("zone-c", "zone-b", "zone-a"), {}, 2, ["zone-a", "zone-b"], id="ties-by-name-not-by-listed-order"
        ),
        pytest.param(
            ZONES,
            {"zone-a": 2, "zone-b": 0, "zone-c": 1},
            3,
            ["zone-b", "zone-b", "zone-c"],
            id="fewest-first-recounted-after-each-placement",
        ),
        pytest.param(
            ZONES, {"zone-a": 1}, 4, ["zone-b", "zone-c", "zone-a", "zone-b"], id="zone-absent-from-counts-is-empty"
        ),
        pytest.param(
            ("zone-a", "zone-b"),
            {"zone-x": 0, "zone-a": 3},
            2,
            ["zone-b", "zone-b"],
            id="zones-not-listed-never-chosen",
        ),
        pytest.param(ZONES, {"zone-a": 4}, 0, [], id="nothing-wanted-nothing-placed"),
    ],
)
def test_place_puts_each_new_member_in_a_zone_with_the_fewest(
    zones: tuple[str, ...], counts: dict[str, int], how_many: int, expected: list[str]
) -> None:
    assert place(zones, counts, how_many) == expected


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        pytest.param([], {"zone-a": 0, "zone-b": 0, "zone-c": 0}, id="every-zone-present-at-zero"),
        pytest.param(
            [(1, "zone-a"), (2, "zone-a"), (3, "zone-b")], {"zone-a": 2, "zone-b": 1, "zone-c": 0}, id="counted"
        ),
        pytest.param(
            [(1, "zone-x")], {"zone-a": 0, "zone-b": 0, "zone-c": 0, "zone-x": 1}, id="unlisted-zone-still-counted"
        ),
    ],
)
def test_zone_counts_has_every_zone_and_every_member(members: list[tuple[int, str]], expected: dict[str, int]) -> None:
    assert dict(zone_counts(ZONES, [member(s, z) for s, z in members])) == expected


@pytest.mark.parametrize(
    ("zones", "members", "expected"),
    [
        pytest.param((), [(1, "zone-a")], 0, id="no-zones-no-skew"),
        pytest.param(ZONES, [], 0, id="empty-store"),
        pytest.param(ZONES, [(1, "zone-a"), (2, "zone-b"), (3, "zone-c")], 0, id="even"),
        pytest.param(ZONES, [(1, "zone-a"), (2, "zone-b")], 1, id="one-zone-short"),
        pytest.param(ZONES, [(1, "zone-a"), (2, "zone-a"), (3, "zone-a"), (4, "zone-b")], 3, id="empty-zone-counts"),
        pytest.param(("zone-a", "zone-b"), [(1, "zone-a"), (2, "zone-b"), (3, "zone-x")], 0, id="unlisted-ignored"),
    ],
)
def test_skew_is_fullest_minus_emptiest_of_the_stores_zones(
    zones: tuple[str, ...], members: list[tuple[int, str]], expected: int
) -> None:
    assert skew(zones, [member(s, z) for s, z in members]) == expected


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-b", "ready"), (3, "zone-c", "ready"), (4, "zone-a", "ready")],
            ["orders-4", "orders-1", "orders-3", "orders-2"],
            id="fullest-zone-first-then-newest",
        ),
        pytest.param(
            [(1, "zone-a", "ready"), (5, "zone-a", "ready"), (3, "zone-a", "ready"), (2, "zone-b", "ready")],
            ["orders-5", "orders-3", "orders-1", "orders-2"],
            id="newest-first-within-a-zone",
        ),
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-a", "ready"), (3, "zone-b", "terminating")],
            ["orders-3", "orders-2", "orders-1"],
            id="broken-first-even-from-the-emptiest-zone",
        ),
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-a", "lost"), (3, "zone-b", "ready")],
            ["orders-2", "orders-1", "orders-3"],
            id="lost-volume-first",
        ),
        pytest.param(
            [(1, "zone-a", "ready"), (2, "zone-a", "ready"), (3, "zone-b", "starting")],
            ["orders-2", "orders-1", "orders-3"],
            id="a-newcomer-is-never-retired-for-being-new",
        ),
        pytest.param(
            [
                (1, "zone-a", "lost"),
                (2, "zone-a", "terminating"),
                (4, "zone-a", "ready"),
                (3, "zone-b", "lost"),
                (9, "zone-b", "ready"),
            ],
            ["orders-2", "orders-1", "orders-3", "orders-4", "orders-9"],
            id="among-broken-fullest-zone-then-newest",
        ),
    ],
)
def test_retirement_order_is_broken_then_ready_by_fullest_zone_and_newest_then_starting(
    members: list[tuple[int, str, str]], expected: list[str]
) -> None:
    order = retirement_order([member(serial, zone, state) for serial, zone, state in members])
    assert [m.name for m in order] == expected


# ================================================================================================
# Which zones


@pytest.mark.parametrize(
    ("spec_zones", "nodes", "expected"),
    [
        pytest.param(["zone-b", "zone-a"], [], ("zone-b", "zone-a"), id="spec-zones-as-given-even-without-nodes"),
        pytest.param(
            None,
            [node("n1", "zone-b"), node("n2", "zone-a"), node("n3", "zone-a")],
            ("zone-a", "zone-b"),
            id="default-zones-of-nodes-sorted-once-each",
        ),
        pytest.param(
            None,
            [node("n1", "zone-a"), node("n2", "zone-b", taints=[{"key": "k", "effect": "NoSchedule"}])],
            ("zone-a",),
            id="noschedule-tainted-node-excluded",
        ),
        pytest.param(
            None,
            [node("n1", "zone-a"), node("n2", "zone-b", taints=[{"key": "k", "effect": "NoExecute"}])],
            ("zone-a",),
            id="noexecute-tainted-node-excluded",
        ),
        pytest.param(
            None,
            [node("n1", "zone-a"), node("n2", "zone-b", taints=[{"key": "k", "effect": "PreferNoSchedule"}])],
            ("zone-a", "zone-b"),
            id="prefer-noschedule-taint-still-schedulable",
        ),
        pytest.param(
            None, [node("n1", "zone-a"), node("n2", "zone-b", ready=False)], ("zone-a",), id="notready-node-excluded"
        ),
        pytest.param(
            None,
            [node("n1", "zone-a"), node("n2", "zone-b", unschedulable=True)],
            ("zone-a",),
            id="cordoned-node-excluded",
        ),
        pytest.param(
            None,
            [node("n1", "zone-a", unschedulable=True), node("n2", "zone-a")],
            ("zone-a",),
            id="one-good-node-keeps-its-zone",
        ),
        pytest.param(None, [node("n1", None), node("n2", "zone-a")], ("zone-a",), id="node-without-zone-ignored"),
        pytest.param(None, [node("n1", "zone-a", ready=False)], (), id="no-schedulable-node-no-zone"),
    ],
)
def test_new_members_go_to_the_specs_zones_or_to_zones_with_schedulable_nodes(
    spec_zones: list[str] | None, nodes: list[dict[str, Any]], expected: tuple[str, ...]
) -> None:
    seen = observed(World(nodes=tuple(nodes)))
    zones = desired_zones(store_spec(zones=spec_zones), seen)
    if spec_zones is not None:
        assert zones == expected
    else:
        assert tuple(placeable(zones, seen, {})) == expected


def test_a_zone_whose_nodes_are_cordoned_or_down_stays_home_to_its_members() -> None:
    nodes = (node("n1", "zone-a"), node("n2", "zone-b", unschedulable=True), node("n3", "zone-c", ready=False))
    empty = observed(World(nodes=nodes))
    assert desired_zones(store_spec(), empty) == ("zone-a",)  # a new store ignores them
    world = with_members(World(nodes=nodes), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    seen = observed(world)
    assert desired_zones(store_spec(), seen) == ("zone-a", "zone-b", "zone-c")  # its members keep them
    assert placeable(desired_zones(store_spec(), seen), seen, {}) == ["zone-a"]
