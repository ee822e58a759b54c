"""Snapshots: taken when due or asked for, one at a time, round-robin over zones; pruned by count and
age, never the newest ready one, never one a restore reads, superseded failures only."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from phalanx.plan import DeleteSnapshot, Snapshot, prune_snapshots, take_snapshot
from tests.unit.test_plan import ALL_CHILDREN, NOW, ZONES
from tests.unit.world import (
    START,
    World,
    empty_world,
    make_ready,
    observed,
    stamp,
    store_spec,
    volume_snapshot,
    with_members,
)

SPEC = store_spec(3, snapshots={"interval": "1h", "keep": 2, "maxAge": "3h"})


def store(*snapshots: dict[str, Any]) -> World:
    world = make_ready(with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c")))
    return replace(world, children=ALL_CHILDREN, snapshots=snapshots)


def snap(name: str, age: int, zone: str = "zone-a", state: str = "ready", request: str | None = None) -> dict[str, Any]:
    made = volume_snapshot(name, "orders-1", zone, created=START - age)
    if state == "ready":
        made["status"] = {"readyToUse": True, "creationTime": stamp(START - age)}
    elif state == "failed":
        made["status"] = {"readyToUse": False, "error": {"message": "class is broken"}}
    if request is not None:
        made["metadata"]["annotations"] = {"phalanx.dev/snapshot-request": request}
    return made


@pytest.mark.parametrize(
    ("snapshots", "annotations", "taken", "again_in"),
    [
        pytest.param((), {}, ["zone-a"], 3600.0, id="first-one-at-once"),
        pytest.param((snap("s1", 1800),), {}, [], 1800.0, id="not-due-yet"),
        pytest.param((snap("s1", 3601),), {}, ["zone-b"], 3600.0, id="due-next-zone-round-robin"),
        pytest.param((snap("s1", 3601, zone="zone-c"),), {}, ["zone-a"], 3600.0, id="round-robin-wraps"),
        pytest.param((snap("s1", 10, state="taking"),), {}, [], 5.0, id="one-in-flight-waits"),
        pytest.param((snap("s1", 60),), {"phalanx.dev/snapshot-request": "now"}, ["zone-b"], 3600.0, id="asked-for"),
        pytest.param(
            (snap("s1", 60, request="now"),), {"phalanx.dev/snapshot-request": "now"}, [], 3540.0, id="asked-once"
        ),
        pytest.param((snap("s1", 5, state="failed"),), {}, [], 5.0, id="failure-backs-off"),
    ],
)
def test_a_snapshot_is_taken_when_due_or_asked_for_one_at_a_time(
    snapshots: tuple[dict[str, Any], ...], annotations: dict[str, str], taken: list[str], again_in: float
) -> None:
    seen = observed(store(*snapshots))
    if annotations:
        seen = replace(seen, snapshot_request=annotations["phalanx.dev/snapshot-request"])
    actions, due = take_snapshot(SPEC, seen, NOW)
    assert [a.zone for a in actions if isinstance(a, Snapshot)] == taken
    assert due == pytest.approx(again_in)


def test_retention_keeps_the_newest_and_what_a_restore_reads() -> None:
    snapshots = (
        snap("s-old", 5 * 3600),  # beyond maxAge
        snap("s-2", 3000),
        snap("s-1", 2000),  # beyond keep (2) once s-0 and s-3 are counted
        snap("s-3", 1500),
        snap("s-0", 100),
        snap("s-f1", 50, state="failed"),
        snap("s-f2", 40, state="failed"),
    )
    seen = observed(store(*snapshots))
    pruned = {a.name for a in prune_snapshots(SPEC, seen, NOW) if isinstance(a, DeleteSnapshot)}
    assert pruned == {"s-old", "s-2", "s-1", "s-f1"}  # the newest failure stays, for the record
    reading = {a.name for a in prune_snapshots(SPEC, seen, NOW, frozenset({"s-1"})) if isinstance(a, DeleteSnapshot)}
    assert "s-1" not in reading


def test_the_newest_ready_snapshot_is_kept_however_old() -> None:
    seen = observed(store(snap("s-ancient", 10 * 3600)))
    assert prune_snapshots(SPEC, seen, NOW) == []
