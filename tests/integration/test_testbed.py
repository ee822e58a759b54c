"""The test bed itself, proven on the real control plane: what Phalanx's tests rely on really happens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from phalanx import kube as k
from phalanx.kube import ApiError, Kube, Obj
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.conftest import Cluster, tool

pytestmark = pytest.mark.cluster

STATEFULSETS = k.Resource("apps", "v1", "statefulsets")
CONFIGMAPS = k.Resource("", "v1", "configmaps")


def pod_ready(pod: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def zone_of_node(kube: Kube, node: str) -> str:
    return str(kube.get(k.NODES, node)["metadata"]["labels"]["topology.kubernetes.io/zone"])


def volume_pod(name: str, claim: str, annotations: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def claim(name: str, snapshot: str | None = None) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if snapshot:
        spec["dataSource"] = {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": snapshot,
        }
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def snapshot(name: str, source: str) -> Obj:
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": {"volumeSnapshotClassName": "phalanx-sim", "source": {"persistentVolumeClaimName": source}},
    }


def running_pod_with_volume(kube: Kube, namespace: str, name: str, snapshot_name: str | None = None) -> Obj:
    kube.create(k.PVCS, claim(name, snapshot_name), namespace)
    kube.create(k.PODS, volume_pod(name, name), namespace)
    return wait_for(
        lambda: (p := kube.get(k.PODS, name, namespace)) and pod_ready(p) and p,
        f"pod {name} Ready",
        timeout=60,
    )


def test_statefulset_spreads_over_zones_and_becomes_ready(kube: Kube, namespace: str) -> None:
    labels = {"app": "web"}
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web",
            "replicas": 6,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "web", "image": "registry.invalid/web:1"}],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchLabels": labels},
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                }
            ],
        },
    }
    kube.create(STATEFULSETS, sts, namespace)
    wait_for(
        lambda: kube.get(STATEFULSETS, "web", namespace).get("status", {}).get("readyReplicas") == 6,
        "the real StatefulSet controller to report 6 ready replicas",
        timeout=90,
    )
    pods = kube.items(k.PODS, namespace, "app=web")
    zones = Counter(zone_of_node(kube, p["spec"]["nodeName"]) for p in pods)
    assert sorted(zones.values()) == [2, 2, 2], zones
    for pod in pods:  # each volume was provisioned in its pod's zone
        pvc = kube.get(k.PVCS, f"data-{pod['metadata']['name']}", namespace)
        pv = kube.get(k.PVS, pvc["spec"]["volumeName"])
        term = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
        assert term["values"] == [zone_of_node(kube, pod["spec"]["nodeName"])]


def test_stopped_node_is_marked_not_ready_and_tainted_by_node_lifecycle(kube: Kube, sim: SimulatorHandle) -> None:
    node = sim.nodes("zone-b")[0]["metadata"]["name"]
    sim.stop_node(node)

    def unreachable() -> bool:
        obj = kube.get(k.NODES, node)
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        taints = {t["key"] for t in obj["spec"].get("taints") or []}
        return ready["status"] == "Unknown" and "node.kubernetes.io/unreachable" in taints

    wait_for(unreachable, f"{node} NotReady and tainted unreachable", timeout=40)
    sim.start_node(node)

    def recovered() -> bool:
        obj = kube.get(k.NODES, node)
        return sim.node_ready(node) and not obj["spec"].get("taints")

    wait_for(recovered, f"{node} Ready and untainted again", timeout=40)


def test_snapshot_becomes_ready_and_restore_carries_its_data_only(
    kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    running_pod_with_volume(kube, namespace, "source")
    sim.write(namespace, "source", seq=5, size=1000)
    kube.create(k.SNAPSHOTS, snapshot("snap", "source"), namespace)
    wait_for(
        lambda: (kube.get(k.SNAPSHOTS, "snap", namespace).get("status") or {}).get("readyToUse"),
        "snapshot readyToUse",
    )
    sim.write(namespace, "source", seq=9)  # after the snapshot: must not leak into the restore
    running_pod_with_volume(kube, namespace, "restored", snapshot_name="snap")
    assert sim.read(namespace, "restored") == {"seq": 5, "bytes": 1000}
    assert sim.read(namespace, "source")["seq"] == 9
    assert sim.snapshot_data(namespace, "snap")["seq"] == 5
    # Deleting the snapshot removes its content (deletionPolicy Delete) and then the snapshot itself.
    content = kube.get(k.SNAPSHOTS, "snap", namespace)["status"]["boundVolumeSnapshotContentName"]
    kube.delete(k.SNAPSHOTS, "snap", namespace)
    wait_for(lambda: kube.find(k.SNAPSHOTS, "snap", namespace) is None, "snapshot deleted")
    wait_for(lambda: kube.find(k.SNAPSHOT_CONTENTS, content) is None, "content deleted")


def test_snapshot_and_restore_failure_knobs(kube: Kube, namespace: str, sim: SimulatorHandle) -> None:
    running_pod_with_volume(kube, namespace, "source")
    kube.create(k.SNAPSHOTS, snapshot("good", "source"), namespace)
    wait_for(lambda: (kube.get(k.SNAPSHOTS, "good", namespace).get("status") or {}).get("readyToUse"), "good ready")
    sim.fail_restores_from(namespace, "good")
    kube.create(k.PVCS, claim("broken", "good"), namespace)
    kube.create(k.PODS, volume_pod("broken", "broken"), namespace)

    def provisioning_failed() -> bool:
        events = kube.items(k.EVENTS, namespace)
        return any(e["involvedObject"]["name"] == "broken" and e["reason"] == "ProvisioningFailed" for e in events)

    wait_for(provisioning_failed, "a ProvisioningFailed event on the restored claim", timeout=60)
    assert kube.get(k.PVCS, "broken", namespace)["status"]["phase"] == "Pending"
    sim.fail_snapshots()
    try:
        kube.create(k.SNAPSHOTS, snapshot("bad", "source"), namespace)
        wait_for(
            lambda: ((kube.get(k.SNAPSHOTS, "bad", namespace).get("status") or {}).get("error") or {}).get("message"),
            "snapshot error reported",
        )
        assert not kube.get(k.SNAPSHOTS, "bad", namespace)["status"]["readyToUse"]
    finally:
        sim.fail_snapshots(False)


def test_pod_readiness_delay_crash_and_graceful_deletion(kube: Kube, namespace: str, sim: SimulatorHandle) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "slow", "annotations": {"sim.phalanx.dev/ready-after": "2"}},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }
    created = time.monotonic()
    kube.create(k.PODS, pod, namespace)
    wait_for(lambda: pod_ready(kube.get(k.PODS, "slow", namespace)), "slow pod Ready", timeout=30)
    assert time.monotonic() - created >= 2.0
    sim.crash_pod(namespace, "slow")
    wait_for(
        lambda: kube.get(k.PODS, "slow", namespace)["status"]["containerStatuses"][0]["restartCount"] == 1,
        "a restart recorded",
    )
    wait_for(lambda: pod_ready(kube.get(k.PODS, "slow", namespace)), "ready again after the crash", timeout=30)
    deleted = time.monotonic()
    kube.delete(k.PODS, "slow", namespace)  # default 30 s grace: the simulated kubelet finishes it
    wait_for(lambda: kube.find(k.PODS, "slow", namespace) is None, "graceful deletion finished", timeout=15)
    assert time.monotonic() - deleted < 10


def test_lost_volume_turns_claim_lost_and_pod_unready(kube: Kube, namespace: str, sim: SimulatorHandle) -> None:
    running_pod_with_volume(kube, namespace, "victim")
    sim.lose_volume(namespace, "victim")
    wait_for(
        lambda: kube.get(k.PVCS, "victim", namespace)["status"].get("phase") == "Lost",
        "claim Lost",
        timeout=30,
    )
    wait_for(lambda: not pod_ready(kube.get(k.PODS, "victim", namespace)), "pod unready", timeout=30)


def test_garbage_collector_deletes_dependents(kube: Kube, namespace: str) -> None:
    owner = kube.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}, namespace)
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    kube.create(
        CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "dependent", "ownerReferences": [ref]},
        },
        namespace,
    )
    kube.delete(CONFIGMAPS, "owner", namespace)
    wait_for(lambda: kube.find(CONFIGMAPS, "dependent", namespace) is None, "dependent collected", timeout=30)


def test_token_without_rbac_rights_is_refused(cluster: Cluster, kube: Kube, namespace: str) -> None:
    plane = cluster.sandbox.plane
    assert plane is not None
    nobody = str(plane.kubeconfig_for(plane.credentials.unprivileged, "nobody"))
    refused = cluster.kubectl("get", "pods", "-n", namespace, kubeconfig=nobody, check=False)
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()
    with pytest.raises(ApiError) as error:
        Kube.from_kubeconfig(nobody).items(k.PODS, namespace)
    assert error.value.status == 403
    assert cluster.kubectl("get", "pods", "-n", namespace).returncode == 0


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_helm_binaries_run_and_reach_the_cluster(cluster: Cluster, helm: str) -> None:
    version = cluster.run([tool(helm), "version", "--short"]).stdout
    assert version.startswith("v3." if helm == "helm3" else "v4.")
    listing = cluster.run([tool(helm), "list", "--all-namespaces", "--kubeconfig", cluster.kubeconfig])
    assert "NAME" in listing.stdout


def test_control_plane_dies_with_its_parent(tmp_path: Path) -> None:
    """An interrupted run (parent SIGKILLed) leaves no etcd or kube-* process behind."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from phalanx_sandbox.controlplane import ControlPlane
        plane = ControlPlane(workdir=Path({str(tmp_path)!r}), say=lambda s: None)
        plane.start()
        print(json.dumps([p.popen.pid for p in plane.processes]), flush=True)
        sys.stdin.read()
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = json.loads(parent.stdout.readline())
    assert len(pids) == 4
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    def all_gone() -> bool:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().split()[2]
            except OSError:
                continue
            if state != "Z":
                alive.append(pid)
        return not alive

    wait_for(all_gone, "every control plane process to exit with its parent", timeout=20)
