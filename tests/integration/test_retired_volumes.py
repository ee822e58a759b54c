"""spec.retiredVolumes on the real control plane, under each deletion policy: a retired member's
volume is kept, or deleted once the store is whole and deleteAfter has passed (I3), with the count
and bytes in status and metrics. A watch sees when each claim went, so "not before deleteAfter" is
measured on the API server's own events, not on a poll's samples."""

from __future__ import annotations

from datetime import datetime

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.conftest import Operator
from tests.integration.test_operator import member_claims, passes, store, wait_ready
from tests.watching import Watcher

pytestmark = pytest.mark.cluster

AFTER = 4.0


def claims_by_name(kube: Kube, namespace: str, name: str) -> dict[str, Obj]:
    return {c["metadata"]["name"]: c for c in member_claims(kube, namespace, name)}


def retired_status(kube: Kube, namespace: str, name: str) -> Obj:
    return (kube.get(k.STORES, name, namespace).get("status") or {}).get("retiredVolumes") or {}


@pytest.mark.parametrize("deletion", ["Retain", "Snapshot", "Delete"])
def test_retired_volumes_are_kept_or_deleted_after_the_wait_by_policy(
    operator: Operator, kube: Kube, namespace: str, deletion: str
) -> None:
    extra: Obj = {"snapshots": {"interval": "1h"}} if deletion == "Snapshot" else {}
    timed, default = f"timed-{deletion.lower()}", f"default-{deletion.lower()}"
    kube.create(
        k.STORES,
        store(
            timed, deletionPolicy=deletion, retiredVolumes={"policy": "Delete", "deleteAfter": f"{AFTER:g}s"}, **extra
        ),
        namespace,
    )
    kube.create(k.STORES, store(default, deletionPolicy=deletion, **extra), namespace)
    for name in (timed, default):
        wait_ready(kube, namespace, name, 3)
    volumes = {
        n: c["spec"]["volumeName"]
        for name in (timed, default)
        for n, c in claims_by_name(kube, namespace, name).items()
    }
    watcher = Watcher(kube, k.PVCS, namespace, limit=120)
    try:
        for name in (timed, default):
            kube.patch(k.STORES, name, {"spec": {"replicas": 2}}, namespace)
        for name in (timed, default):
            wait_ready(kube, namespace, name, 2)
        # The timed store: the volume stays, dated and counted, then goes once deleteAfter has passed.
        wait_for(
            lambda: f"{timed}-3" not in claims_by_name(kube, namespace, timed), "the timed volume deleted", timeout=60
        )
        wait_for(lambda: kube.find(k.PVS, volumes[f"{timed}-3"]) is None, "its disk deleted with it", timeout=60)
        wait_for(lambda: not retired_status(kube, namespace, timed), "nothing retired reported any more", timeout=30)
    finally:
        events = watcher.stop()
    dated = [
        o["metadata"].get("annotations", {}).get(names.RETIRED_AT_ANNOTATION)
        for _, o in events
        if o["metadata"]["name"] == f"{timed}-3"
    ]
    retired_at = datetime.fromisoformat(next(d for d in dated if d))
    going = next(
        o["metadata"].get("deletionTimestamp")
        for kind, o in events
        if o["metadata"]["name"] == f"{timed}-3" and o["metadata"].get("deletionTimestamp")
    )
    waited = (datetime.fromisoformat(going) - retired_at).total_seconds()
    assert waited >= AFTER - 1, f"deleted {waited}s after its retirement (deleteAfter {AFTER}s; timestamps in seconds)"

    # The default follows deletionPolicy: Delete deletes at once; Retain and Snapshot keep, pinned.
    if deletion == "Delete":
        wait_for(lambda: f"{default}-3" not in claims_by_name(kube, namespace, default), "deleted at once", timeout=30)
        return
    passes(operator, kube, namespace, default)
    kept = claims_by_name(kube, namespace, default)[f"{default}-3"]
    assert kept["metadata"]["labels"][names.RETIRED_LABEL] == "true"
    assert kube.get(k.PVS, volumes[f"{default}-3"])["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    report = wait_for(lambda: retired_status(kube, namespace, default) or None, "retired volumes reported", timeout=30)
    assert report["count"] == 1 and report["bytes"] == 1024**3 and "nextDeletion" not in report
    metrics = operator.metrics()
    assert metrics[f'phalanx_retired_volumes{{namespace="{namespace}",store="{default}"}}'] == 1
    assert metrics[f'phalanx_retired_volume_bytes{{namespace="{namespace}",store="{default}"}}'] == 1024**3


def test_a_lost_members_volume_goes_only_after_its_replacement_has_been_ready_for_the_wait(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    spec: Obj = {"memberFailureGrace": "2s", "zoneFailureGrace": "60s"}
    kube.create(
        k.STORES,
        store("mended", recovery=spec, retiredVolumes={"policy": "Delete", "deleteAfter": f"{AFTER:g}s"}),
        namespace,
    )
    wait_ready(kube, namespace, "mended", 3)
    victim = kube.get(k.PODS, "mended-2", namespace)
    watcher = Watcher(kube, k.PODS, namespace, selector=f"{names.STORE_LABEL}=mended", limit=150)
    claims = Watcher(kube, k.PVCS, namespace, selector=f"{names.STORE_LABEL}=mended", limit=150)
    try:
        sim.stop_node(victim["spec"]["nodeName"])

        def going() -> bool:  # a pod on a dead node never finishes: the claim's protection holds it
            claim = claims_by_name(kube, namespace, "mended").get("mended-2")
            return claim is None or bool(claim["metadata"].get("deletionTimestamp"))

        wait_for(going, "the lost volume deleted", timeout=120)
    finally:
        pod_events, claim_events = watcher.stop(), claims.stop()
    record = kube.get(k.STORES, "mended", namespace)["status"]["lastRecovery"]
    replacement = record["replacement"]
    ready_at = next(
        datetime.fromisoformat(c["lastTransitionTime"])
        for _, p in pod_events
        if p["metadata"]["name"] == replacement
        for c in p["status"].get("conditions") or []
        if c["type"] == "Ready" and c["status"] == "True"
    )
    deleted = next(
        datetime.fromisoformat(o["metadata"]["deletionTimestamp"])
        for _, o in claim_events
        if o["metadata"]["name"] == "mended-2" and o["metadata"].get("deletionTimestamp")
    )
    waited = (deleted - ready_at).total_seconds()
    assert waited >= AFTER - 1, f"deleted {waited}s after {replacement} was Ready (deleteAfter {AFTER}s)"
