"""Snapshot lineage and snapshot-based recovery on the real control plane, with the simulator's data
proving where each replacement's data came from."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.conftest import Operator
from tests.integration.test_operator import condition, member_claims, member_pods, passes, store, wait_ready
from tests.watching import Watcher, lowest_ready

pytestmark = pytest.mark.cluster

FAST = {"memberFailureGrace": "2s", "zoneFailureGrace": "3s"}


def snapshots_of(kube: Kube, namespace: str, name: str) -> list[Obj]:
    return kube.items(k.SNAPSHOTS, namespace, f"{names.STORE_LABEL}={name}")


def ready_snapshots(kube: Kube, namespace: str, name: str) -> list[Obj]:
    return [s for s in snapshots_of(kube, namespace, name) if (s.get("status") or {}).get("readyToUse")]


def write_all(sim: SimulatorHandle, kube: Kube, namespace: str, name: str, seq: int) -> None:
    """An acknowledged write that every member holds (the replicated store's data at ``seq``)."""
    for claim in member_claims(kube, namespace, name):
        if claim["metadata"]["labels"].get(names.RETIRED_LABEL) != "true":
            sim.write(namespace, claim["metadata"]["name"], seq=seq, size=seq * 1000)


def snapshot_now(kube: Kube, namespace: str, name: str, token: str) -> Obj:
    """Ask for an on-demand snapshot through the store's annotation; wait until it is ready."""
    kube.patch(k.STORES, name, {"metadata": {"annotations": {names.SNAPSHOT_REQUEST: token}}}, namespace)

    def taken() -> Obj | None:
        for snap in ready_snapshots(kube, namespace, name):
            if (snap["metadata"].get("annotations") or {}).get(names.SNAPSHOT_REQUEST) == token:
                return snap
        return None

    return wait_for(taken, f"on-demand snapshot {token}", timeout=30)


def members(kube: Kube, namespace: str, name: str) -> dict[str, Obj]:
    """Live members' claims by name (retired ones left out)."""
    return {
        c["metadata"]["name"]: c
        for c in member_claims(kube, namespace, name)
        if c["metadata"]["labels"].get(names.RETIRED_LABEL) != "true"
    }


def recovered(kube: Kube, namespace: str, name: str) -> Obj | None:
    """The store once its last recovery completed (its replacement ready) and it is Ready again."""
    obj = kube.get(k.STORES, name, namespace)
    record = (obj.get("status") or {}).get("lastRecovery") or {}
    if record.get("readyAt") and condition(obj, "Ready").get("status") == "True":
        return obj
    return None


@pytest.fixture
def snapshotting(operator: Operator, kube: Kube, namespace: str) -> Iterator[str]:
    """A 3-member store taking snapshots every 30 s, ready, with one on-demand snapshot of seq=5."""
    kube.create(
        k.STORES,
        store("lineage", snapshots={"interval": "30s", "keep": 3}, recovery=FAST),
        namespace,
    )
    wait_ready(kube, namespace, "lineage", 3)
    yield "lineage"


def test_snapshots_rotate_zones_prune_to_keep_and_report_freshness(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    kube.create(k.STORES, store("lineage", snapshots={"interval": "5s", "keep": 2}), namespace)
    wait_ready(kube, namespace, "lineage", 3)
    seen: dict[str, str] = {}  # every snapshot ever listed, by name (names sort in time order)
    most_ready = 0

    def four_taken() -> bool:
        nonlocal most_ready
        for snap in snapshots_of(kube, namespace, "lineage"):
            seen[snap["metadata"]["name"]] = snap["metadata"]["labels"][names.ZONE_LABEL]
        most_ready = max(most_ready, len(ready_snapshots(kube, namespace, "lineage")))
        return len(seen) >= 4

    wait_for(four_taken, "four snapshots taken", timeout=60, interval=0.2)
    zones = [seen[name] for name in sorted(seen)]
    assert len(set(zones[:3])) == 3, f"snapshots should rotate over the zones: {zones}"
    assert most_ready <= 3  # keep=2, plus at most the newest one before its predecessor is pruned
    wait_for(lambda: len(ready_snapshots(kube, namespace, "lineage")) <= 2, "pruned to keep=2", timeout=30)
    obj = kube.get(k.STORES, "lineage", namespace)
    assert condition(obj, "SnapshotsFresh")["status"] == "True"
    latest = obj["status"]["snapshots"]["latest"]
    assert latest in {s["metadata"]["name"] for s in ready_snapshots(kube, namespace, "lineage")}
    key = f'phalanx_snapshot_age_seconds{{namespace="{namespace}",store="lineage"}}'
    assert 0 <= operator.metrics()[key] < 30


def test_failed_snapshots_are_reported_and_retried(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    sim.fail_snapshots()
    try:
        kube.create(k.STORES, store("flaky", snapshots={"interval": "1h"}), namespace)
        wait_ready(kube, namespace, "flaky", 3)
        # Each failed attempt is counted in status (pruning keeps only the newest failure); the retry
        # comes after a backoff that doubles: 10 s after the first failure, 20 s after the second.
        seen: dict[int, float] = {}

        def failures() -> int:
            count = int(
                ((kube.get(k.STORES, "flaky", namespace).get("status") or {}).get("snapshots") or {}).get("failures")
                or 0
            )
            seen.setdefault(count, time.monotonic())
            return count

        wait_for(lambda: failures() >= 3, "three failed attempts, each retried", timeout=90, interval=0.2)
        first_gap, second_gap = seen[2] - seen[1], seen[3] - seen[2]
        assert 8 <= first_gap <= 15 and second_gap >= 1.6 * first_gap, (first_gap, second_gap)
        obj = kube.get(k.STORES, "flaky", namespace)
        fresh = condition(obj, "SnapshotsFresh")
        assert fresh["status"] == "False" and "failure" in fresh["message"]
    finally:
        sim.fail_snapshots(False)
    wait_for(lambda: ready_snapshots(kube, namespace, "flaky"), "a snapshot succeeds after the failures", timeout=90)
    wait_for(
        lambda: condition(kube.get(k.STORES, "flaky", namespace), "SnapshotsFresh").get("status") == "True",
        "SnapshotsFresh again",
    )


def test_stopped_node_member_rebuilt_in_its_zone_from_the_latest_snapshot(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle, snapshotting: str
) -> None:
    write_all(sim, kube, namespace, snapshotting, seq=5)
    snap = snapshot_now(kube, namespace, snapshotting, "before-loss")
    assert sim.snapshot_data(namespace, snap["metadata"]["name"])["seq"] == 5
    write_all(sim, kube, namespace, snapshotting, seq=9)  # after the snapshot: the peers hold it
    victim = kube.get(k.PODS, "lineage-2", namespace)
    zone = victim["metadata"]["labels"][names.ZONE_LABEL]
    sim.stop_node(victim["spec"]["nodeName"])
    obj = wait_for(lambda: recovered(kube, namespace, snapshotting), "recovery completed", timeout=90)
    record = obj["status"]["lastRecovery"]
    assert record["member"] == "lineage-2" and record["reason"].startswith("NodeLost")
    assert record["source"] == "Snapshot" and record["snapshot"] == snap["metadata"]["name"]
    replacement = record["replacement"]
    assert record["seconds"] > 0
    live = members(kube, namespace, snapshotting)
    assert sorted(live) == sorted(["lineage-1", "lineage-3", replacement])
    claim = live[replacement]
    assert claim["spec"]["dataSource"]["name"] == snap["metadata"]["name"]
    assert claim["metadata"]["labels"][names.ZONE_LABEL] == zone
    assert sim.read(namespace, replacement)["seq"] == 5  # the snapshot's data: it catches up 5 -> 9 from peers
    pod = kube.get(k.PODS, replacement, namespace)
    env = {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}
    assert env["PHALANX_SEEDED_FROM"] == snap["metadata"]["name"]
    old = kube.get(k.PVCS, "lineage-2", namespace)  # Retain: the lost member's volume is kept, retired
    assert old["metadata"]["labels"][names.RETIRED_LABEL] == "true"

    def reasons() -> Counter[str]:
        return Counter(e["reason"] for e in kube.items(k.EVENTS, namespace) if e["involvedObject"]["name"] == "lineage")

    # RecoveryCompleted is posted by the pass that writes readyAt, after the write: wait for it.
    wait_for(lambda: reasons()["RecoveryCompleted"] > 0, "the RecoveryCompleted Event")
    said = reasons()
    assert said["MemberLost"] == 1 and said["MemberReplaced"] == 1 and said["RecoveryCompleted"] == 1
    samples = operator.metrics()
    assert samples[f'phalanx_recoveries_total{{namespace="{namespace}",source="Snapshot",store="lineage"}}'] == 1
    # status.reliability: the loss, the blast radius it took (one member of three, one zone of three
    # dark while its node was down), and the recovery's time by source.
    held = wait_for(
        lambda: (
            (kube.get(k.STORES, snapshotting, namespace)["status"].get("reliability") or {}).get("recoveries")
            and kube.get(k.STORES, snapshotting, namespace)["status"]["reliability"]
        ),
        "the recovery in status.reliability",
    )
    assert [(e["member"], e["reason"]) for e in held["losses"]] == [("lineage-2", "NodeLost")]
    assert held["worst"]["members"] == 33 and held["worst"]["zones"] in (0, 33)
    assert [(r["member"], r["source"]) for r in held["recoveries"]] == [(replacement, "Snapshot")]
    assert held["summary"][0]["source"] == "Snapshot" and held["summary"][0]["count"] == 1
    assert held["now"] == {"members": 0, "zones": 0}
    samples = operator.metrics()
    assert samples[f'phalanx_member_losses_24h{{namespace="{namespace}",store="lineage"}}'] == 1
    assert (
        samples[f'phalanx_blast_radius_ratio{{namespace="{namespace}",of="members",store="lineage",when="worst"}}']
        == 0.33
    )


def test_lost_volume_member_rebuilt_from_snapshot(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle, snapshotting: str
) -> None:
    write_all(sim, kube, namespace, snapshotting, seq=7)
    snap = snapshot_now(kube, namespace, snapshotting, "before-disk-loss")
    sim.lose_volume(namespace, "lineage-3")
    obj = wait_for(lambda: recovered(kube, namespace, snapshotting), "recovery completed", timeout=60)
    record = obj["status"]["lastRecovery"]
    assert record["member"] == "lineage-3" and record["reason"].startswith("VolumeLost")
    assert record["snapshot"] == snap["metadata"]["name"]
    assert sim.read(namespace, record["replacement"])["seq"] == 7
    assert len(members(kube, namespace, snapshotting)) == 3


def test_no_usable_snapshot_falls_back_to_empty_with_the_reason(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    kube.create(k.STORES, store("bare", recovery=FAST), namespace)  # no snapshots configured
    wait_ready(kube, namespace, "bare", 3)
    write_all(sim, kube, namespace, "bare", seq=4)
    sim.lose_volume(namespace, "bare-1")
    obj = wait_for(lambda: recovered(kube, namespace, "bare"), "recovery completed", timeout=60)
    record = obj["status"]["lastRecovery"]
    assert record["source"] == "Empty" and "snapshot" not in record
    replacement = record["replacement"]
    assert sim.read(namespace, replacement)["seq"] == 0  # empty: it will copy everything from its peers
    events = [e for e in kube.items(k.EVENTS, namespace) if e["reason"] == "MemberReplaced"]
    assert any("no snapshots are configured" in e["message"] for e in events)


def test_failed_restore_falls_back_to_empty(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle, snapshotting: str
) -> None:
    snap = snapshot_now(kube, namespace, snapshotting, "poisoned")
    sim.fail_restores_from(namespace, snap["metadata"]["name"])
    sim.lose_volume(namespace, "lineage-1")

    def empty_fallback() -> Obj | None:
        record = (kube.get(k.STORES, snapshotting, namespace).get("status") or {}).get("lastRecovery") or {}
        return record if record.get("reason", "").startswith("RestoreFailed") else None

    record = wait_for(empty_fallback, "the failed restore replaced by an empty member", timeout=60)
    assert record["source"] == "Empty"
    wait_for(lambda: recovered(kube, namespace, snapshotting), "recovery completed", timeout=60)
    assert len(members(kube, namespace, snapshotting)) == 3


def test_zone_loss_with_redistribute_rebuilds_elsewhere_then_rebalances(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    kube.create(
        k.STORES,
        store(
            "spread",
            replicas=6,
            snapshots={"interval": "1h"},
            recovery={**FAST, "zoneFailure": "Redistribute"},
        ),
        namespace,
    )
    wait_ready(kube, namespace, "spread", 6)
    wait_for(lambda: ready_snapshots(kube, namespace, "spread"), "a first snapshot")
    sim.stop_zone("zone-c")

    def redistributed() -> Counter[str] | None:
        pods = [p for p in member_pods(kube, namespace, "spread") if not p["metadata"].get("deletionTimestamp")]
        live = members(kube, namespace, "spread")
        zones = Counter(c["metadata"]["labels"][names.ZONE_LABEL] for c in live.values())
        ready = ready_members(pods, live)
        return zones if zones == Counter({"zone-a": 3, "zone-b": 3}) and ready == 6 else None

    wait_for(redistributed, "zone-c's members rebuilt in zone-a and zone-b", timeout=120)
    obj = kube.get(k.STORES, "spread", namespace)
    assert obj["status"]["lastRecovery"]["reason"].startswith("ZoneLost")
    watcher = Watcher(kube, k.PODS, namespace, selector=f"{names.STORE_LABEL}=spread", limit=200)
    sim.start_zone("zone-c")
    seen_unbalanced = False

    def balanced() -> bool:
        nonlocal seen_unbalanced
        current = kube.get(k.STORES, "spread", namespace)
        if condition(current, "ZonesBalanced").get("status") == "False":
            seen_unbalanced = True
        return (
            seen_unbalanced
            and condition(current, "ZonesBalanced").get("status") == "True"
            and condition(current, "Ready").get("status") == "True"
        )

    try:
        wait_for(balanced, "the members moved back to zone-c, balanced and Ready", timeout=180, interval=0.2)
    finally:
        events = watcher.stop()
    assert seen_unbalanced, "the returned zone was never reported as unbalanced"
    lowest = lowest_ready(watcher.initial, events)  # moving back is voluntary: every transition counted
    assert lowest >= 5, f"rebalancing took more than one member out at a time ({lowest} ready)"
    zones = Counter(c["metadata"]["labels"][names.ZONE_LABEL] for c in members(kube, namespace, "spread").values())
    assert zones == Counter({"zone-a": 2, "zone-b": 2, "zone-c": 2})
    held = kube.get(k.STORES, "spread", namespace)["status"]["reliability"]
    assert held["worst"] == {**held["worst"], "members": 33, "zones": 33}, "a zone of three, two members of six"
    assert held["lossesInWindow"] == 2 and {e["reason"] for e in held["losses"]} == {"ZoneLost"}


def test_zone_loss_with_wait_reports_the_zone_and_replaces_nothing(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    kube.create(k.STORES, store("patient", replicas=3, recovery=FAST), namespace)
    wait_ready(kube, namespace, "patient", 3)
    sim.stop_zone("zone-a")

    def reported() -> Obj | None:
        obj = kube.get(k.STORES, "patient", namespace)
        return obj if "zone zone-a is down beyond" in condition(obj, "Reconciling").get("message", "") else None

    wait_for(reported, "the lost zone reported", timeout=60)  # so zoneFailureGrace (and member grace) passed
    passes(operator, kube, namespace, "patient")  # the operator looked again: nothing may be replaced
    assert sorted(members(kube, namespace, "patient")) == ["patient-1", "patient-2", "patient-3"]
    sim.start_zone("zone-a")
    wait_ready(kube, namespace, "patient", 3, timeout=60)


@pytest.mark.parametrize("crash_after", ["RetireMember", "CreateMember"])
def test_operator_killed_mid_recovery_completes_it_with_exactly_one_replacement(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle, snapshotting: str, crash_after: str
) -> None:
    snapshot_now(kube, namespace, snapshotting, "before-crash")
    operator.stop()
    crashing = operator.start(PHALANX_TEST_CRASH_AFTER=crash_after)
    try:
        sim.lose_volume(namespace, "lineage-2")
        wait_for(lambda: not crashing.alive(), f"the operator to die after {crash_after}", timeout=60)
    finally:
        operator.stop()
        operator.start()
    wait_for(lambda: recovered(kube, namespace, snapshotting), "recovery completed after the restart", timeout=60)
    claims = member_claims(kube, namespace, snapshotting)
    replacements = [c for c in claims if c["metadata"].get("annotations", {}).get(names.REPLACES_ANNOTATION)]
    assert len(replacements) == 1, "exactly one replacement"
    record = kube.get(k.STORES, snapshotting, namespace)["status"]["lastRecovery"]
    assert record["member"] == "lineage-2" and record["replacement"] == replacements[0]["metadata"]["name"]
    live = members(kube, namespace, snapshotting)
    assert len(live) == 3 and "lineage-2" not in live
    restored = [c for c in claims if c["spec"].get("dataSource")]
    assert len(restored) == 1, "exactly one restore"
    assert len(member_pods(kube, namespace, snapshotting)) == 3


def ready_members(pods: list[Obj], live: dict[str, Obj]) -> int:
    return sum(
        1
        for p in pods
        if p["metadata"]["name"] in live
        and not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    )


def test_a_zone_whose_nodes_return_one_at_a_time_replaces_nobody(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    """Zone-b's two nodes stop together and come back one at a time, the second more than a
    memberFailureGrace after the first: the members on the second are part of the zone's outage,
    not losses of their own. A watch sees every claim event: none is retired, none is created."""
    grace = 3.0
    recovery = {"memberFailureGrace": f"{grace:g}s", "zoneFailureGrace": "90s", "zoneFailure": "Wait"}
    stores = ("east", "west")
    for name in stores:
        kube.create(k.STORES, store(name, replicas=6, recovery=recovery), namespace)
    for name in stores:
        wait_ready(kube, namespace, name, 6)
    claims_before = {c["metadata"]["name"] for name in stores for c in member_claims(kube, namespace, name)}
    on_node = Counter(
        p["spec"].get("nodeName")
        for name in stores
        for p in member_pods(kube, namespace, name)
        if p["spec"].get("nodeName")
    )
    first, last = sorted(sim.nodes("zone-b"), key=lambda n: on_node[n["metadata"]["name"]])
    first_node, last_node = first["metadata"]["name"], last["metadata"]["name"]
    assert on_node[last_node] > 0, "a member must be on the node that comes back last"
    watcher = Watcher(kube, k.PVCS, namespace, limit=240)
    try:
        sim.stop_zone("zone-b")
        wait_for(lambda: not sim.node_ready(first_node) and not sim.node_ready(last_node), "zone-b down", timeout=60)

        def zone_b(name: str) -> Obj:
            status = kube.get(k.STORES, name, namespace).get("status") or {}
            return next(z for z in status.get("zones") or [] if z["name"] == "zone-b")

        wait_for(lambda: all(zone_b(n).get("downSince") for n in stores), "zone-b reported down", timeout=30)
        sim.start_node(first_node)
        wait_for(lambda: all(zone_b(n).get("returnedAt") for n in stores), "zone-b's return recorded", timeout=60)
        back = time.monotonic()

        def waiting_said(name: str) -> bool:
            message = condition(kube.get(k.STORES, name, namespace), "Reconciling").get("message", "")
            return f"but for {last_node}" in message

        wait_for(lambda: any(waiting_said(n) for n in stores), f"the wait for {last_node} reported", timeout=30)
        # The gap is the scenario: the straggler stays down well past its own grace, while the
        # operator keeps looking (each pass counted), before it comes back.
        wait_for(lambda: time.monotonic() - back > 3 * grace, "three member graces since the zone returned")
        for name in stores:
            passes(operator, kube, namespace, name)
        sim.start_node(last_node)
        for name in stores:
            wait_ready(kube, namespace, name, 6, timeout=90)
    finally:
        events = watcher.stop()
    retired = [o["metadata"]["name"] for _, o in events if (o["metadata"].get("labels") or {}).get(names.RETIRED_LABEL)]
    created = [o["metadata"]["name"] for kind, o in events if kind == "ADDED"]
    assert retired == [], f"members were retired although their nodes came back: {sorted(set(retired))}"
    assert created == [], f"members were replaced although their nodes came back: {created}"
    assert {c["metadata"]["name"] for name in stores for c in member_claims(kube, namespace, name)} == claims_before
    for name in stores:
        assert not (kube.get(k.STORES, name, namespace).get("status") or {}).get("lastRecovery")


def test_a_member_on_a_node_whose_heartbeats_stopped_is_replaced_before_the_node_controller_says_so(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    """The node controller marks a stopped node NotReady only after its grace (8 s on this control
    plane, 40 s by default); Phalanx reads the node's Lease and counts memberFailureGrace (3 s) from
    the last heartbeat: the replacement is made before the controller has even spoken."""
    kube.create(k.STORES, store("prompt", recovery={"memberFailureGrace": "3s", "zoneFailureGrace": "60s"}), namespace)
    wait_ready(kube, namespace, "prompt", 3)
    node = kube.get(k.PODS, "prompt-2", namespace)["spec"]["nodeName"]
    watcher = Watcher(kube, k.PVCS, namespace, selector=f"{names.STORE_LABEL}=prompt", limit=60)
    stopped = time.monotonic()
    sim.stop_node(node)

    def replaced() -> bool:
        return any(
            (c["metadata"].get("annotations") or {}).get(names.REPLACES_ANNOTATION) == "prompt-2"
            for c in member_claims(kube, namespace, "prompt")
        )

    wait_for(replaced, "a replacement for prompt-2", timeout=40, interval=0.1)
    took = time.monotonic() - stopped
    watcher.stop()

    # The node controller's verdict, and the earliest a replacement could come from it alone: its
    # NotReady plus memberFailureGrace. Both read on the API server's clock, whatever the load here.
    def not_ready_at() -> str | None:
        ready = next(c for c in kube.get(k.NODES, node)["status"]["conditions"] if c["type"] == "Ready")
        return ready["lastTransitionTime"] if ready["status"] != "True" else None

    controller = datetime.fromisoformat(
        wait_for(not_ready_at, "the node controller's NotReady", timeout=60).replace("Z", "+00:00")
    )
    made = next(
        c for c in member_claims(kube, namespace, "prompt")
        if (c["metadata"].get("annotations") or {}).get(names.REPLACES_ANNOTATION) == "prompt-2"
    )  # fmt: skip
    created = datetime.fromisoformat(made["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    assert created < controller + timedelta(seconds=3), (
        f"replacement made at {created}, the controller's NotReady at {controller} ({took:.1f}s after the stop)"
    )
