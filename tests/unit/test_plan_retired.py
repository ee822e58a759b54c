"""Retired volumes: kept or deleted by spec.retiredVolumes, under each deletion policy (I3).

A retired volume is the volume of a member that left: one lost and replaced, or one retired when the
store shrank or moved a member. The policy defaults to deletionPolicy's (Delete deletes, Retain and
Snapshot keep); set, it decides alone, with ``deleteAfter`` counted from when the replacement became
Ready (or from the retirement, for a member that left without one), and only while the store is whole.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from phalanx.models import ReplicatedStoreSpec
from phalanx.plan import RetireMember, next_deadline, plan
from tests.unit.test_plan import ZONES
from tests.unit.world import (
    START,
    World,
    claim,
    empty_world,
    make_unready,
    observed,
    stamp,
    store_spec,
    with_members,
)

HOUR = 3600
DAY = 24 * HOUR


def replaced_store(replacement_ready_for: int, *, retired_at: int | None = None) -> World:
    """Three members, orders-4 replacing orders-2 (retired, its volume kept); orders-4 Ready for
    ``replacement_ready_for`` seconds."""
    world = with_members(empty_world(ZONES), (1, "zone-a"), (3, "zone-c"), (4, "zone-b"))
    claims = [c for c in world.claims if c["metadata"]["name"] != "orders-4"]
    claims.append(claim("orders-4", "zone-b", created=4, replaces="orders-2"))
    retired = START - replacement_ready_for - 60 if retired_at is None else retired_at
    claims.append(claim("orders-2", "zone-b", retired=True, created=2, retired_at=retired))
    pods = []
    for raw in world.pods:
        raw["status"]["conditions"][0]["lastTransitionTime"] = stamp(START - replacement_ready_for)
        pods.append(raw)
    return replace(world, claims=tuple(claims), pods=tuple(pods))


def spec_with(deletion: str, retired: dict[str, Any] | None = None, replicas: int = 3) -> ReplicatedStoreSpec:
    extra: dict[str, Any] = {"deletionPolicy": deletion}
    if deletion == "Snapshot":
        extra["snapshots"] = {}
    if retired is not None:
        extra["retiredVolumes"] = retired
    return store_spec(replicas, **extra)


def deleted_volumes(spec: ReplicatedStoreSpec, world: World, later: int = 0) -> list[str]:
    decided = plan(spec, observed(world), world.now + timedelta(seconds=later), has_ports=True)
    return [a.member for a in decided.actions if isinstance(a, RetireMember) and a.delete_volume]


@pytest.mark.parametrize(
    ("deletion", "retired", "ready_for", "deleted"),
    [
        # Unset: deletionPolicy decides; Retain and Snapshot keep forever, Delete deletes once whole.
        pytest.param("Retain", None, 30 * DAY, [], id="retain-default-keeps-forever"),
        pytest.param("Snapshot", None, 30 * DAY, [], id="snapshot-default-keeps-forever"),
        pytest.param("Delete", None, 1, ["orders-2"], id="delete-default-deletes-once-whole"),
        # Set: the policy decides, whatever deletionPolicy is.
        pytest.param(
            "Retain", {"policy": "Delete", "deleteAfter": "24h"}, DAY - 1, [], id="retain-delete-24h-too-soon"
        ),
        pytest.param(
            "Retain", {"policy": "Delete", "deleteAfter": "24h"}, DAY, ["orders-2"], id="retain-delete-24h-due"
        ),
        pytest.param(
            "Snapshot", {"policy": "Delete", "deleteAfter": "1h"}, HOUR, ["orders-2"], id="snapshot-delete-1h"
        ),
        pytest.param("Delete", {"policy": "Delete", "deleteAfter": "24h"}, HOUR, [], id="delete-delete-24h-too-soon"),
        pytest.param("Delete", {"policy": "Retain"}, 30 * DAY, [], id="delete-but-retain-retired"),
        pytest.param(
            "Retain", {"policy": "Retain", "deleteAfter": "1s"}, 30 * DAY, [], id="retain-ignores-delete-after"
        ),
    ],
)
def test_the_policy_and_deletion_policy_decide_when_a_retired_volume_goes(
    deletion: str, retired: dict[str, Any] | None, ready_for: int, deleted: list[str]
) -> None:
    assert deleted_volumes(spec_with(deletion, retired), replaced_store(ready_for)) == deleted


def test_the_wait_counts_from_the_retirement_when_that_came_after_the_replacement_was_ready() -> None:
    spec = spec_with("Retain", {"policy": "Delete", "deleteAfter": "1h"})
    world = replaced_store(DAY, retired_at=START - HOUR + 10)  # retired by hand only 50 minutes ago
    assert deleted_volumes(spec, world) == []
    assert deleted_volumes(spec, world, later=10) == ["orders-2"]


@pytest.mark.parametrize("deletion", ["Retain", "Snapshot", "Delete"])
def test_a_retired_volume_never_goes_while_the_store_is_not_whole(deletion: str) -> None:
    spec = spec_with(deletion, {"policy": "Delete", "deleteAfter": "1s"})
    world = replaced_store(DAY)
    assert deleted_volumes(spec, make_unready(world, ["orders-1"])) == [], "a member not Ready"
    shrunk = replace(world, pods=world.pods[:-1], claims=world.claims[1:])  # orders-1 gone altogether
    decided = plan(spec, observed(shrunk), shrunk.now, has_ports=True)
    assert not [a for a in decided.actions if isinstance(a, RetireMember) and a.delete_volume]


def test_a_retired_volume_waits_for_its_replacement_to_be_ready() -> None:
    spec = spec_with("Retain", {"policy": "Delete", "deleteAfter": "1s"})
    world = replaced_store(DAY)
    unready = make_unready(world, ["orders-4"])
    assert deleted_volumes(spec, unready) == []


def test_an_undated_retirement_is_dated_before_its_wait_starts() -> None:
    """A volume retired by an older Phalanx carries no date: it is dated now, never deleted at once."""
    spec = spec_with("Retain", {"policy": "Delete", "deleteAfter": "1h"})
    world = replaced_store(DAY, retired_at=-1)
    decided = plan(spec, observed(world), world.now, has_ports=True)
    assert [(a.member, a.delete_volume) for a in decided.actions if isinstance(a, RetireMember)] == [
        ("orders-2", False)
    ]
    keep = plan(spec_with("Retain"), observed(world), world.now, has_ports=True)
    assert not [a for a in keep.actions if isinstance(a, RetireMember)], "Retain needs no date"


@pytest.mark.parametrize(
    ("deletion", "retired", "at_once"),
    [
        ("Delete", None, True),
        ("Delete", {"deleteAfter": "1h"}, False),
        ("Retain", None, False),
        ("Retain", {"policy": "Delete"}, True),
        ("Snapshot", {"policy": "Delete", "deleteAfter": "10m"}, False),
    ],
)
def test_scale_down_takes_the_volume_at_once_only_with_no_wait_to_serve(
    deletion: str, retired: dict[str, Any] | None, at_once: bool
) -> None:
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"), (4, "zone-a"))
    decided = plan(spec_with(deletion, retired), observed(world), world.now, has_ports=True)
    [retire] = [a for a in decided.actions if isinstance(a, RetireMember)]
    assert (retire.member, retire.delete_volume) == ("orders-4", at_once)


def test_a_member_that_left_without_a_replacement_counts_from_its_retirement() -> None:
    spec = spec_with("Retain", {"policy": "Delete", "deleteAfter": "2h"})
    world = with_members(empty_world(ZONES), (1, "zone-a"), (2, "zone-b"), (3, "zone-c"))
    world = replace(world, claims=(*world.claims, claim("orders-4", "zone-a", retired=True, retired_at=START - HOUR)))
    assert deleted_volumes(spec, world) == []
    assert deleted_volumes(spec, world, later=HOUR) == ["orders-4"]


def test_status_reports_what_is_kept_and_when_the_next_goes() -> None:
    spec = spec_with("Retain", {"policy": "Delete", "deleteAfter": "24h"})
    world = replaced_store(HOUR)
    world = replace(world, claims=(*world.claims, claim("orders-9", "zone-a", retired=True, retired_at=START - 10)))
    for raw in world.claims:
        raw["spec"]["resources"] = {"requests": {"storage": "1Gi"}}
    decided = plan(spec, observed(world), world.now, has_ports=True)
    report = decided.status.retired_volumes
    assert report is not None
    assert (report.count, report.bytes) == (2, 2 * 1024**3)
    assert report.next_deletion == world.now + timedelta(seconds=DAY - HOUR), "orders-2: 24h after orders-4 was Ready"
    assert next_deadline(spec, observed(world), world.now) <= DAY - HOUR + 1, "and the store looks again then"
    kept = plan(spec_with("Retain"), observed(world), world.now, has_ports=True).status.retired_volumes
    assert kept is not None and kept.count == 2 and kept.next_deletion is None
    none = plan(spec, observed(with_members(empty_world(ZONES), (1, "zone-a"))), world.now, has_ports=True)
    assert none.status.retired_volumes is None
