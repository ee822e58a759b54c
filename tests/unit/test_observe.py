"""Observe: how raw pods, claims and nodes from the watch cache become the planner's typed view.

The contract a newcomer needs: members are joined from pods and claims by the ``phalanx.dev/member``
label, never by guessing; children of other stores and names that are not ``<store>-<serial>`` are
never taken for members (so never touched); a retired member's left-over pod is kept apart; the last
serial never goes backwards; and a node counts for placement only when it is Ready, not cordoned and
not tainted NoSchedule or NoExecute.
"""

from __future__ import annotations

from typing import Any

import pytest

from phalanx.observe import ClaimView, NodeView, PodView
from tests.unit.world import EPOCH, World, claim, node, observed, pod, stamp, volume_snapshot


def members_of(world: World, status: dict[str, Any] | None = None) -> list[tuple[str, str, bool, bool]]:
    """(name, zone, has a pod, has a claim) of every member observed."""
    return [(m.name, m.zone, m.pod is not None, m.claim is not None) for m in observed(world, status).members]


# ------------------------------------------------------------------------------------------------
# Members


def test_a_pod_and_a_claim_with_the_same_member_label_are_one_member() -> None:
    world = World(pods=(pod("orders-1", "zone-a"),), claims=(claim("orders-1", "zone-a"),))
    assert members_of(world) == [("orders-1", "zone-a", True, True)]


def test_an_object_named_otherwise_than_its_member_label_is_foreign() -> None:
    renamed = pod("orders-1", "zone-a")
    renamed["metadata"]["name"] = "orders-1-x7k2p"
    seen = observed(World(pods=(renamed,), claims=(claim("orders-1", "zone-a"),)))
    [member] = seen.members
    assert member.name == "orders-1" and member.pod is None
    assert seen.foreign == ("Pod orders-1-x7k2p",)


def test_a_member_may_have_only_a_pod_or_only_a_claim() -> None:
    world = World(pods=(pod("orders-1", "zone-a"),), claims=(claim("orders-2", "zone-b"),))
    assert members_of(world) == [("orders-1", "zone-a", True, False), ("orders-2", "zone-b", False, True)]


def test_members_are_ordered_by_serial_as_a_number() -> None:
    world = World(claims=tuple(claim(f"orders-{n}", "zone-a") for n in (10, 9, 100, 2)))
    assert [m.serial for m in observed(world).members] == [2, 9, 10, 100]


def test_a_members_zone_is_its_claims_even_when_the_pod_says_otherwise() -> None:
    world = World(pods=(pod("orders-1", "zone-b"),), claims=(claim("orders-1", "zone-a"),))
    assert members_of(world) == [("orders-1", "zone-a", True, True)]


@pytest.mark.parametrize(
    ("pods", "claims"),
    [
        pytest.param([pod("payments-1", "zone-a", store="payments")], [], id="pod-of-another-store"),
        pytest.param([], [claim("payments-1", "zone-a", store="payments")], id="claim-of-another-store"),
        pytest.param([], [claim("orders-1", "zone-a", store="orders-archive")], id="our-member-name-other-store"),
        pytest.param([pod("orders-canary", "zone-a")], [claim("orders-canary", "zone-a")], id="no-serial"),
        pytest.param([], [claim("payments-3", "zone-a")], id="another-stores-name-with-our-label"),
        pytest.param([], [claim("orders-", "zone-a")], id="empty-serial"),
        pytest.param([], [claim("orders-1a", "zone-a")], id="serial-not-a-number"),
        pytest.param([], [claim("orders-archive-1", "zone-a")], id="a-longer-store-name"),
    ],
)
def test_children_that_are_not_this_stores_members_are_ignored(
    pods: list[dict[str, Any]], claims: list[dict[str, Any]]
) -> None:
    seen = observed(World(pods=tuple(pods), claims=tuple(claims)))
    assert (seen.members, seen.retired_pods, seen.last_serial) == ((), (), 0)


def test_a_member_label_with_a_non_canonical_serial_is_not_a_member() -> None:
    # "orders-01" would share serial 1 with "orders-1": two names for one serial (I5). Regression test.
    world = World(claims=(claim("orders-1", "zone-a"), claim("orders-01", "zone-b")))
    assert [m.name for m in observed(world).members] == ["orders-1"]


def test_an_unlabelled_child_is_ignored() -> None:
    stray = pod("orders-1", "zone-a")
    stray["metadata"]["labels"] = {}
    assert observed(World(pods=(stray,))).members == ()


# ------------------------------------------------------------------------------------------------
# Retired members


def test_a_retired_claims_pod_is_a_left_over_not_a_member() -> None:
    world = World(
        pods=(pod("orders-1", "zone-a"), pod("orders-2", "zone-b")),
        claims=(claim("orders-1", "zone-a"), claim("orders-2", "zone-b", retired=True)),
    )
    seen = observed(world)
    assert [m.name for m in seen.members] == ["orders-1"]
    assert [p.name for p in seen.retired_pods] == ["orders-2"]


def test_a_retired_claim_without_a_pod_is_neither_member_nor_left_over() -> None:
    seen = observed(World(claims=(claim("orders-2", "zone-b", retired=True),)))
    assert (seen.members, seen.retired_pods) == ((), ())


def test_only_the_value_true_retires_a_claim() -> None:
    almost = claim("orders-2", "zone-b")
    almost["metadata"]["labels"]["phalanx.dev/retired"] = "false"
    assert [m.name for m in observed(World(claims=(almost,))).members] == ["orders-2"]


# ------------------------------------------------------------------------------------------------
# The last serial: never goes backwards, so a name is never used twice


@pytest.mark.parametrize(
    ("status", "serials", "retired", "expected"),
    [
        pytest.param({}, [], [], 0, id="new-store"),
        pytest.param({}, [1, 4, 2], [], 4, id="highest-serial-seen"),
        pytest.param({"lastSerial": 9}, [1, 4], [], 9, id="status-remembers-deleted-members"),
        pytest.param({"lastSerial": 3}, [1, 4], [], 4, id="children-ahead-of-status"),
        pytest.param({}, [1], [7], 7, id="retired-claims-count"),
        pytest.param({"lastSerial": None}, [2], [], 2, id="null-status-field"),
    ],
)
def test_last_serial_is_the_highest_of_status_and_every_serial_seen(
    status: dict[str, Any], serials: list[int], retired: list[int], expected: int
) -> None:
    claims = [claim(f"orders-{n}", "zone-a") for n in serials]
    claims += [claim(f"orders-{n}", "zone-a", retired=True) for n in retired]
    assert observed(World(claims=tuple(claims)), status).last_serial == expected


def test_strangers_do_not_raise_the_last_serial() -> None:
    world = World(claims=(claim("payments-50", "zone-a", store="payments"), claim("orders-canary", "zone-a")))
    assert observed(world).last_serial == 0


# ------------------------------------------------------------------------------------------------
# Nodes


@pytest.mark.parametrize(
    ("raw", "ready", "schedulable"),
    [
        pytest.param(node("n", "zone-a"), True, True, id="ready"),
        pytest.param(node("n", "zone-a", ready=False), False, False, id="notready"),
        pytest.param(node("n", "zone-a", unschedulable=True), True, False, id="cordoned"),
        pytest.param(
            node("n", "zone-a", taints=[{"key": "k", "effect": "NoSchedule"}]), True, False, id="tainted-noschedule"
        ),
        pytest.param(
            node("n", "zone-a", taints=[{"key": "k", "effect": "NoExecute"}]), True, False, id="tainted-noexecute"
        ),
        pytest.param(
            node("n", "zone-a", taints=[{"key": "k", "effect": "PreferNoSchedule"}]),
            True,
            True,
            id="prefer-noschedule-is-only-a-preference",
        ),
        pytest.param(
            {"metadata": {"name": "n", "labels": {}}, "spec": {}, "status": {}}, False, False, id="no-ready-condition"
        ),
    ],
)
def test_a_node_takes_new_members_only_when_ready_uncordoned_and_untainted(
    raw: dict[str, Any], ready: bool, schedulable: bool
) -> None:
    view = NodeView.of(raw)
    assert (view.ready, view.schedulable) == (ready, schedulable)


def test_a_nodes_zone_is_its_topology_label() -> None:
    assert NodeView.of(node("n", "zone-b")).zone == "zone-b"
    assert NodeView.of(node("n", None)).zone is None


def test_zones_with_nodes_lists_each_schedulable_zone_once_sorted() -> None:
    world = World(
        nodes=(
            node("n1", "zone-c"),
            node("n2", "zone-a"),
            node("n3", "zone-a"),
            node("n4", "zone-b", unschedulable=True),
            node("n5", None),
        )
    )
    assert observed(world).zones_with_nodes() == ("zone-a", "zone-c")


def test_nodes_are_looked_up_by_name() -> None:
    seen = observed(World(nodes=(node("n2", "zone-b"), node("n1", "zone-a"))))
    assert [n.name for n in seen.nodes] == ["n1", "n2"]
    assert seen.node("n2") is not None and seen.node("n2").zone == "zone-b"  # type: ignore[union-attr]
    assert (seen.node("n9"), seen.node(None)) == (None, None)


# ------------------------------------------------------------------------------------------------
# Pods and claims, field by field


def test_a_pod_view_reads_phase_readiness_node_revision_and_deletion() -> None:
    view = PodView.of(pod("orders-1", "zone-a", ready=True, ready_at=30, node_name="n1", revision="r1", uid="u1"))
    assert (view.name, view.uid, view.node, view.phase, view.ready, view.terminating, view.revision) == (
        "orders-1",
        "u1",
        "n1",
        "Running",
        True,
        False,
        "r1",
    )
    assert view.ready_since is not None and view.ready_since.isoformat() == "2025-01-01T00:00:30+00:00"
    assert view.created == EPOCH


@pytest.mark.parametrize(
    ("raw", "ready", "finished", "terminating"),
    [
        pytest.param(pod("orders-1", "zone-a", phase="Pending"), False, False, False, id="pending"),
        pytest.param(pod("orders-1", "zone-a"), False, False, False, id="running-unready"),
        pytest.param(pod("orders-1", "zone-a", phase="Succeeded"), False, True, False, id="succeeded-is-finished"),
        pytest.param(pod("orders-1", "zone-a", phase="Failed"), False, True, False, id="failed-is-finished"),
        pytest.param(pod("orders-1", "zone-a", ready=True, terminating=True), True, False, True, id="terminating"),
        pytest.param(
            {"metadata": {"name": "orders-1", "labels": {}}}, False, False, False, id="no-status-yet-is-pending"
        ),
    ],
)
def test_a_pod_view_tells_ready_finished_and_terminating_apart(
    raw: dict[str, Any], ready: bool, finished: bool, terminating: bool
) -> None:
    view = PodView.of(raw)
    assert (view.ready, view.finished, view.terminating) == (ready, finished, terminating)


def test_a_claim_view_reads_volume_zone_seed_and_retirement() -> None:
    raw = claim("orders-1", "zone-a", seeded_from="orders-snap-3", uid="c1")
    raw["metadata"]["deletionTimestamp"] = stamp(5)
    view = ClaimView.of(raw)
    assert (view.name, view.uid, view.phase, view.volume, view.zone, view.retired) == (
        "orders-1",
        "c1",
        "Bound",
        "pv-orders-1",
        "zone-a",
        False,
    )
    assert (view.seeded_from, view.terminating, view.lost) == ("orders-snap-3", True, False)


@pytest.mark.parametrize(
    ("raw", "phase", "volume", "lost"),
    [
        pytest.param(claim("orders-1", "zone-a", phase="Pending"), "Pending", None, False, id="pending-no-volume-yet"),
        pytest.param(claim("orders-1", "zone-a", phase="Lost"), "Lost", "pv-orders-1", True, id="lost"),
        pytest.param({"metadata": {"name": "orders-1"}}, "Pending", None, False, id="no-status-yet-is-pending"),
    ],
)
def test_a_claim_view_knows_when_its_data_is_lost(
    raw: dict[str, Any], phase: str, volume: str | None, lost: bool
) -> None:
    view = ClaimView.of(raw)
    assert (view.phase, view.volume, view.lost) == (phase, volume, lost)


def test_an_empty_seed_annotation_means_an_empty_start() -> None:
    raw = claim("orders-1", "zone-a")
    raw["metadata"]["annotations"] = {"phalanx.dev/seeded-from": ""}
    assert ClaimView.of(raw).seeded_from is None


# ------------------------------------------------------------------------------------------------
# The rest of the view


def test_children_status_and_generation_pass_through() -> None:
    status = {"lastSerial": 2, "phase": "Ready", "owned": {"claims": [], "snapshots": []}}
    world = World(children=frozenset({"peers-service/orders-peers"}))
    seen = observed(world, status, generation=7)
    assert (seen.children, seen.status, seen.generation) == (frozenset({"peers-service/orders-peers"}), status, 7)
    assert seen.store == world.store


def test_member_lookup_by_name() -> None:
    seen = observed(World(claims=(claim("orders-1", "zone-a"),)))
    assert seen.member("orders-1") is seen.members[0]
    assert seen.member("orders-2") is None


# ------------------------------------------------------------------------------------------------
# Lineage


def test_the_lineage_holds_this_incarnations_snapshots_only() -> None:
    """A store re-created under the same name never sees (nor seeds from) its predecessor's snapshots,
    nor the final snapshots of a deleted store."""
    ours = volume_snapshot("orders-1", "orders-1", "zone-a", created=10)
    predecessor = volume_snapshot("orders-0", "orders-1", "zone-a", created=5, store_uid="an-older-store")
    final = volume_snapshot("orders-1-final-x", "orders-1", "zone-a", created=20)
    final["metadata"]["labels"]["phalanx.dev/final"] = "true"
    seen = observed(World(snapshots=(ours, predecessor, final)))
    assert [s.name for s in seen.snapshots] == ["orders-1"]


def test_the_stored_status_is_parsed_once_and_a_stranger_field_loses_nothing_else() -> None:
    status = {
        "lastSerial": 7,
        "members": [{"name": "orders-1", "zone": "zone-a", "state": "Ready", "since": stamp(5)}],
        "fromTheFuture": {"x": 1},  # written by another version: not ours to read
        "lastRecovery": {"member": "orders-2", "reason": "NodeLost: x", "source": "Empty", "startedAt": stamp(9)},
    }
    seen = observed(World(), status)
    assert seen.previous.last_serial == 7
    member = seen.previous_member("orders-1")
    assert member is not None and member.since == EPOCH.replace(second=5)
    assert seen.previous.last_recovery is not None and seen.previous.last_recovery.member == "orders-2"


@pytest.mark.parametrize(
    ("written", "seen"),
    [
        (stamp(60), EPOCH.replace(minute=1)),
        ("yesterday", None),
        ("2025-01-01T00:00:00", None),  # no zone: not a moment
        ("", None),
    ],
)
def test_a_retirement_date_is_read_only_when_it_is_a_moment(written: str, seen: Any) -> None:
    """Anyone who may edit a claim can write the annotation: a bad one leaves it undated, it does not
    stop the store's observation."""
    raw = claim("orders-2", "zone-a", retired=True, replaces="orders-1")
    raw["metadata"]["annotations"]["phalanx.dev/retired-at"] = written
    view = ClaimView.of(raw)
    assert view.retired_at == seen
    assert view.replaces == "orders-1"
