"""Restore drills on the real control plane: the newest snapshot restored into a throwaway claim,
checked by a one-shot pod (the simulator's ``exit-code`` knob plays its check), judged, reported in
status, a condition, an Event and metrics, and cleaned up; a failed check and a failed restore are
reported; an operator killed in the middle of a drill finishes it; and nothing of any drill is left
behind, while the members are never touched."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.conftest import Operator
from tests.integration.test_operator import condition, member_claims, member_pods, store, wait_ready
from tests.integration.test_recovery import ready_snapshots
from tests.watching import Watcher

pytestmark = pytest.mark.cluster

EXIT_CODE = "sim.phalanx.dev/exit-code"
CHECK = {"name": "check", "image": "registry.invalid/check:1", "command": ["check", "/data"]}


def verify(exit_code: int) -> dict[str, Any]:
    """A verification pod whose check (played by the simulator) exits with ``exit_code``."""
    return {"metadata": {"annotations": {EXIT_CODE: str(exit_code)}}, "spec": {"containers": [CHECK]}}


def drill_store(name: str, **drill: Any) -> Obj:
    return store(name, snapshots={"interval": "1h", "drill": {"interval": "1h", **drill}})


def last_drill(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return (kube.get(k.STORES, name, namespace).get("status") or {}).get("lastDrill")


def drill_objects(kube: Kube, namespace: str, name: str) -> list[str]:
    """Whatever of any drill of the store exists: claims, pods, and the volumes bound to its claims."""
    claims = [
        c["metadata"]["name"]
        for c in kube.items(k.PVCS, namespace, f"{names.STORE_LABEL}={name},{names.DRILL_LABEL}=true")
    ]
    pods = [p["metadata"]["name"] for p in kube.items(k.PODS, namespace, f"{names.DRILL_OF_LABEL}={name}")]
    volumes = [
        v["metadata"]["name"]
        for v in kube.items(k.PVS)
        if (v["spec"].get("claimRef") or {}).get("namespace") == namespace
        and names.is_drill_name(name, str((v["spec"].get("claimRef") or {}).get("name")))
    ]
    return [f"claim {c}" for c in claims] + [f"pod {p}" for p in pods] + [f"volume {v}" for v in volumes]


def nothing_left(kube: Kube, namespace: str, name: str) -> None:
    wait_for(lambda: not drill_objects(kube, namespace, name), f"nothing of {name}'s drills left", timeout=60)


def members_of(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    """Members' claims and pods by name -> uid: what a drill must never touch."""
    claims = [c for c in member_claims(kube, namespace, name) if names.DRILL_LABEL not in c["metadata"]["labels"]]
    return {
        **{f"claim {c['metadata']['name']}": c["metadata"]["uid"] for c in claims},
        **{f"pod {p['metadata']['name']}": p["metadata"]["uid"] for p in member_pods(kube, namespace, name)},
    }


def store_events(kube: Kube, namespace: str, name: str) -> list[Obj]:
    return [e for e in kube.items(k.EVENTS, namespace) if e["involvedObject"]["name"] == name]


def test_a_drill_verifies_the_newest_snapshot_reports_it_and_leaves_nothing_behind(
    operator: Operator, kube: Kube, namespace: str
) -> None:
    watcher = Watcher(kube, k.PODS, namespace, f"{names.DRILL_OF_LABEL}=proven")
    try:
        kube.create(k.STORES, drill_store("proven", verify=verify(0)), namespace)
        wait_ready(kube, namespace, "proven", 3)
        before = members_of(kube, namespace, "proven")
        record = wait_for(lambda: last_drill(kube, namespace, "proven"), "the first drill's verdict", timeout=60)
    finally:
        events = watcher.stop()
    obj = kube.get(k.STORES, "proven", namespace)
    assert (record["result"], record["reason"]) == ("Succeeded", "Verified"), record
    assert record["snapshot"] == obj["status"]["snapshots"]["latest"] and record["zone"] == "zone-a"
    assert names.is_drill_name("proven", record["name"]) and record["lastSucceededAt"] == record["finishedAt"]
    verified = condition(obj, "RestoreVerified")
    assert (
        verified["status"] == "True"
        and verified["reason"] == "DrillSucceeded"
        and record["name"] in verified["message"]
    )
    assert condition(obj, "Ready")["status"] == "True", "a drill is no member work"
    # The verification pod as the API server had it: once, on the copy read-only, in the drill's zone,
    # outside the store's selectors.
    pods = {obj["metadata"]["name"]: obj for _, obj in events}
    (pod,) = pods.values()
    assert pod["spec"]["restartPolicy"] == "Never" and names.STORE_LABEL not in pod["metadata"]["labels"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": record["name"], "readOnly": True}} in pod["spec"][
        "volumes"
    ]
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env == {"PHALANX_STORE": "proven", "PHALANX_ZONE": "zone-a", "PHALANX_SNAPSHOT": record["snapshot"]}
    scheduled = [p["spec"].get("nodeName") for _, p in events if p["spec"].get("nodeName")]
    assert scheduled and kube.get(k.NODES, scheduled[0])["metadata"]["labels"][names.NODE_ZONE_LABEL] == "zone-a"
    # The verdict is in the status the pass writes first; its Events and metrics follow the pass.
    said = wait_for(
        lambda: (
            (found := store_events(kube, namespace, "proven"))
            and any(e["reason"] == "DrillSucceeded" and e["type"] == "Normal" for e in found)
            and found
        ),
        "the DrillSucceeded Event",
    )
    assert any(e["reason"] == "DrillStarted" for e in said)
    succeeded = f'phalanx_drills_total{{namespace="{namespace}",result="Succeeded",store="proven"}}'
    samples = wait_for(lambda: (found := operator.metrics()).get(succeeded) == 1 and found, "the drill counted")
    key = f'phalanx_last_drill_success_timestamp_seconds{{namespace="{namespace}",store="proven"}}'
    assert abs(samples[key] - datetime.fromisoformat(record["finishedAt"].replace("Z", "+00:00")).timestamp()) < 0.01
    assert samples['phalanx_drill_duration_seconds_count{result="Succeeded"}'] >= 1
    nothing_left(kube, namespace, "proven")
    assert members_of(kube, namespace, "proven") == before, "a drill touched a member"
    owned = {o["name"] for o in kube.get(k.STORES, "proven", namespace)["status"]["owned"]["claims"]}
    assert owned == {"proven-1", "proven-2", "proven-3"}, "the drill's claim left the record with it"


def test_a_failed_check_is_reported_and_leaves_nothing_behind(operator: Operator, kube: Kube, namespace: str) -> None:
    kube.create(k.STORES, drill_store("doubted", verify=verify(3)), namespace)
    wait_ready(kube, namespace, "doubted", 3)
    record = wait_for(lambda: last_drill(kube, namespace, "doubted"), "the drill's verdict", timeout=60)
    assert (record["result"], record["reason"]) == ("Failed", "VerifyFailed"), record
    assert "exited 3" in record["message"] and record.get("lastSucceededAt") is None
    obj = kube.get(k.STORES, "doubted", namespace)
    verified = condition(obj, "RestoreVerified")
    assert verified["status"] == "False" and verified["reason"] == "DrillFailed" and "exited 3" in verified["message"]
    assert condition(obj, "Ready")["status"] == "True", "a failed drill says nothing of the members"
    wait_for(
        lambda: any(
            e["reason"] == "DrillFailed" and e["type"] == "Warning" for e in store_events(kube, namespace, "doubted")
        ),
        "the DrillFailed warning",
    )
    key = f'phalanx_drills_total{{namespace="{namespace}",result="Failed",store="doubted"}}'
    wait_for(lambda: operator.metrics().get(key) == 1, "the failed drill counted")
    nothing_left(kube, namespace, "doubted")


def test_a_snapshot_that_does_not_restore_fails_its_drill_and_seeds_no_member(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    kube.create(k.STORES, store("hopeful", snapshots={"interval": "1h"}), namespace)
    wait_ready(kube, namespace, "hopeful", 3)
    (snapshot,) = wait_for(lambda: ready_snapshots(kube, namespace, "hopeful"), "the first snapshot", timeout=30)
    sim.fail_restores_from(namespace, snapshot["metadata"]["name"])
    drill = {"interval": "1h", "timeout": "10s"}  # no pod: the claim binding is the verdict
    kube.patch(k.STORES, "hopeful", {"spec": {"snapshots": {"drill": drill}}}, namespace)
    record = wait_for(lambda: last_drill(kube, namespace, "hopeful"), "the drill's verdict", timeout=60)
    assert (record["result"], record["reason"]) == ("Failed", "RestoreFailed"), record
    assert record["snapshot"] == snapshot["metadata"]["name"] and record["seconds"] >= 10
    assert condition(kube.get(k.STORES, "hopeful", namespace), "RestoreVerified")["reason"] == "DrillFailed"
    nothing_left(kube, namespace, "hopeful")
    # The lineage it proved broken seeds no member: a lost member starts empty instead.
    sim.lose_volume(namespace, "hopeful-2")
    lost = wait_for(
        lambda: (kube.get(k.STORES, "hopeful", namespace)["status"].get("lastRecovery") or {}).get("replacement"),
        "the lost member replaced",
        timeout=60,
    )
    assert kube.get(k.STORES, "hopeful", namespace)["status"]["lastRecovery"]["source"] == "Empty", lost


def test_an_operator_killed_after_starting_a_drill_finishes_it_and_leaves_nothing_behind(
    operator: Operator, kube: Kube, namespace: str
) -> None:
    operator.stop()
    crashing = operator.start(PHALANX_TEST_CRASH_AFTER="StartDrill")
    try:
        kube.create(k.STORES, drill_store("steadfast", verify=verify(0)), namespace)
        wait_for(lambda: not crashing.alive(), "the operator to die after StartDrill", timeout=90)
        assert drill_objects(kube, namespace, "steadfast"), "the drill it started is there"
    finally:
        operator.stop()
        operator.start()
    record = wait_for(lambda: last_drill(kube, namespace, "steadfast"), "the drill's verdict", timeout=60)
    assert record["result"] == "Succeeded", record
    nothing_left(kube, namespace, "steadfast")
    wait_ready(kube, namespace, "steadfast", 3)
