"""The operator core on the real control plane: members across zones, self-healing, scaling, status,
events, metrics, bad input, pause and the deletion policy."""

from __future__ import annotations

import copy
import time
from collections import Counter
from typing import Any

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.conftest import Cluster, Operator
from tests.watching import Watcher, lowest_ready

pytestmark = pytest.mark.cluster

PDBS = k.Resource("policy", "v1beta1", "poddisruptionbudgets")  # the test cluster is v1.20


def store(name: str, replicas: int = 3, **spec: Any) -> Obj:
    body: Obj = {
        "apiVersion": "phalanx.dev/v1alpha1",
        "kind": "ReplicatedStore",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "store",
                            "image": "registry.invalid/store:1",
                            "ports": [{"name": "client", "containerPort": 6379}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ]
                }
            },
            "storage": {"size": "1Gi"},
        },
    }
    body["spec"].update(spec)
    return body


def condition(obj: Obj, kind: str) -> Obj:
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if entry["type"] == kind:
            return dict(entry)
    return {}


def ready(kube: Kube, namespace: str, name: str, replicas: int) -> Obj | None:
    """The store once it reports Ready for its current generation with ``replicas`` ready members."""
    obj = kube.get(k.STORES, name, namespace)
    status = obj.get("status") or {}
    if (
        condition(obj, "Ready").get("status") == "True"
        and status.get("observedGeneration") == obj["metadata"]["generation"]
        and status.get("readyReplicas") == replicas
    ):
        return obj
    return None


def wait_ready(kube: Kube, namespace: str, name: str, replicas: int, timeout: float = 60) -> Obj:
    return wait_for(lambda: ready(kube, namespace, name, replicas), f"{name} Ready with {replicas}", timeout=timeout)


def member_pods(kube: Kube, namespace: str, name: str) -> list[Obj]:
    return kube.items(k.PODS, namespace, f"{names.STORE_LABEL}={name}")


def member_claims(kube: Kube, namespace: str, name: str) -> list[Obj]:
    return kube.items(k.PVCS, namespace, f"{names.STORE_LABEL}={name}")


def passes(operator: Operator, kube: Kube, namespace: str, name: str, count: int = 2) -> None:
    """Make the operator look at the store ``count`` more times, and see each pass happen.

    Each annotation is a change of the store that wakes its reconcile; the pass counter proves the
    operator did look, so "nothing happened" afterwards is an observation, not a hope.
    """
    for _ in range(count):
        before = operator.reconciles(namespace, name)
        token = str(time.monotonic_ns())
        kube.patch(k.STORES, name, {"metadata": {"annotations": {"test/poke": token}}}, namespace)

        def looked(before: float = before) -> bool:
            return operator.reconciles(namespace, name) > before

        wait_for(looked, f"a reconcile pass of {name}")


def zones_of(pods: list[Obj]) -> Counter[str]:
    return Counter(p["metadata"]["labels"][names.ZONE_LABEL] for p in pods)


def test_store_converges_spread_over_zones_with_status_columns_events(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str
) -> None:
    kube.create(k.STORES, store("orders", replicas=6), namespace)
    obj = wait_ready(kube, namespace, "orders", 6)
    pods = member_pods(kube, namespace, "orders")
    assert sorted(p["metadata"]["name"] for p in pods) == [f"orders-{i}" for i in range(1, 7)]
    assert sorted(zones_of(pods).values()) == [2, 2, 2]
    for pod in pods:  # pinned to its zone, and scheduled there
        node = kube.get(k.NODES, pod["spec"]["nodeName"])
        assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == pod["metadata"]["labels"][names.ZONE_LABEL]
        env = {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}
        assert env["PHALANX_MEMBER"] == pod["metadata"]["name"]
        assert {f["manager"] for f in pod["metadata"]["managedFields"]} >= {"phalanx"}
        assert env["PHALANX_SEEDED_FROM"] == ""
        assert "orders-1.orders-peers." in env["PHALANX_PEERS"]
    claims = member_claims(kube, namespace, "orders")
    assert all(not c["metadata"].get("ownerReferences") for c in claims), "volumes must never be garbage-collected"
    status = obj["status"]
    assert status["phase"] == "Ready"
    assert status["readyDisplay"] == "6/6" and status["zonesDisplay"] == "3/3"
    assert {z["name"]: (z["members"], z["ready"]) for z in status["zones"]} == {
        "zone-a": (2, 2),
        "zone-b": (2, 2),
        "zone-c": (2, 2),
    }
    assert {m["state"] for m in status["members"]} == {"Ready"}
    assert condition(obj, "Reconciling")["status"] == "False"
    assert condition(obj, "Stalled")["status"] == "False"
    assert condition(obj, "ZonesBalanced")["status"] == "True"
    # kstatus: kubectl wait works, and the printer columns show ready/desired and zones.
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "rstore/orders", "--timeout=10s")
    table = cluster.kubectl("get", "-n", namespace, "rstore", "orders").stdout.split("\n")
    assert table[0].split()[:4] == ["NAME", "READY", "ZONES", "PHASE"]
    assert table[1].split()[:4] == ["orders", "6/6", "3/3", "Ready"]
    assert kube.get(k.SERVICES, "orders-peers", namespace)["spec"]["clusterIP"] == "None"
    assert kube.find(k.SERVICES, "orders", namespace) is not None
    assert kube.get(PDBS, "orders", namespace)["spec"]["maxUnavailable"] == 1
    events = [e for e in kube.items(k.EVENTS, namespace) if e["involvedObject"]["name"] == "orders"]
    assert Counter(e["reason"] for e in events)["MemberCreated"] == 6


def test_deleted_pod_comes_back_on_the_same_volume(operator: Operator, kube: Kube, namespace: str) -> None:
    kube.create(k.STORES, store("heal"), namespace)
    wait_ready(kube, namespace, "heal", 3)
    victim = kube.get(k.PODS, "heal-2", namespace)
    claim = kube.get(k.PVCS, "heal-2", namespace)
    kube.delete(k.PODS, "heal-2", namespace, grace_seconds=0)

    def replaced() -> Obj | None:
        pod = kube.find(k.PODS, "heal-2", namespace)
        return pod if pod and pod["metadata"]["uid"] != victim["metadata"]["uid"] else None

    pod = wait_for(replaced, "a new heal-2 pod", timeout=10, interval=0.02)  # how fast: make bench
    data = next(v for v in pod["spec"]["volumes"] if v["name"] == names.DATA_VOLUME)
    assert data["persistentVolumeClaim"]["claimName"] == "heal-2"
    assert kube.get(k.PVCS, "heal-2", namespace)["metadata"]["uid"] == claim["metadata"]["uid"]
    assert pod["metadata"]["labels"][names.ZONE_LABEL] == victim["metadata"]["labels"][names.ZONE_LABEL]
    wait_ready(kube, namespace, "heal", 3)
    assert len(member_pods(kube, namespace, "heal")) == 3


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_scale_up_then_down_keeps_balance_quorum_and_retired_volumes_by_policy(
    operator: Operator, kube: Kube, namespace: str, policy: str
) -> None:
    kube.create(k.STORES, store("scale", replicas=3, deletionPolicy=policy), namespace)
    wait_ready(kube, namespace, "scale", 3)
    kube.patch(k.STORES, "scale", {"spec": {"replicas": 6}}, namespace)
    wait_ready(kube, namespace, "scale", 6)
    assert sorted(zones_of(member_pods(kube, namespace, "scale")).values()) == [2, 2, 2]
    watcher = Watcher(kube, k.PODS, namespace, selector=f"{names.STORE_LABEL}=scale", limit=90)
    try:
        kube.patch(k.STORES, "scale", {"spec": {"replicas": 3}}, namespace)
        wait_ready(kube, namespace, "scale", 3)
    finally:
        events = watcher.stop()
    lowest = lowest_ready(watcher.initial, events)  # every transition, not samples of it
    assert lowest >= 3, f"scale down broke quorum: {lowest} ready"
    pods = member_pods(kube, namespace, "scale")
    assert sorted(p["metadata"]["name"] for p in pods) == ["scale-1", "scale-2", "scale-3"]  # newest retired
    assert sorted(zones_of(pods).values()) == [1, 1, 1]
    claims = {c["metadata"]["name"]: c for c in member_claims(kube, namespace, "scale")}
    retired = {n for n, c in claims.items() if c["metadata"]["labels"].get(names.RETIRED_LABEL) == "true"}
    if policy == "Retain":
        assert retired == {"scale-4", "scale-5", "scale-6"}
    else:
        wait_for(
            lambda: (
                {c["metadata"]["name"] for c in member_claims(kube, namespace, "scale")}
                == {"scale-1", "scale-2", "scale-3"}
            ),
            "retired volumes deleted",
        )
    # Serials are never reused: scaling up again makes scale-7.
    kube.patch(k.STORES, "scale", {"spec": {"replicas": 4}}, namespace)
    wait_ready(kube, namespace, "scale", 4)
    assert "scale-7" in {p["metadata"]["name"] for p in member_pods(kube, namespace, "scale")}


def test_invalid_store_is_stalled_with_a_clear_message_and_nothing_created(
    operator: Operator, kube: Kube, namespace: str
) -> None:
    body = store("bad")
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "PHALANX_MEMBER", "value": "mine"}]  # reserved: only the operator can judge
    kube.create(k.STORES, body, namespace)

    def stalled() -> Obj | None:
        obj = kube.get(k.STORES, "bad", namespace)
        return obj if condition(obj, "Stalled").get("status") == "True" else None

    obj = wait_for(stalled, "the invalid store to be Stalled")
    message = condition(obj, "Stalled")["message"]
    assert "PHALANX_MEMBER" in message and "env" in message
    assert obj["status"]["phase"] == "Invalid"
    assert condition(obj, "Ready")["status"] == "False"
    passes(operator, kube, namespace, "bad")  # the operator looked again, and still wrote nothing
    assert member_pods(kube, namespace, "bad") == []
    assert member_claims(kube, namespace, "bad") == []
    assert kube.items(k.SERVICES, namespace) == []
    # Fixing the spec lets it converge.
    kube.patch(k.STORES, "bad", {"spec": {"template": {"spec": {"containers": [{**container, "env": []}]}}}}, namespace)
    wait_ready(kube, namespace, "bad", 3)


def test_paused_store_gets_status_only(operator: Operator, kube: Kube, namespace: str) -> None:
    kube.create(k.STORES, store("still", paused=True), namespace)
    obj = wait_for(
        lambda: (o := kube.get(k.STORES, "still", namespace)).get("status", {}).get("phase") == "Paused" and o,
        "phase Paused",
    )
    assert condition(obj, "Reconciling")["reason"] == "Paused"
    passes(operator, kube, namespace, "still")
    assert member_pods(kube, namespace, "still") == [] and member_claims(kube, namespace, "still") == []
    kube.patch(k.STORES, "still", {"spec": {"paused": False}}, namespace)
    wait_ready(kube, namespace, "still", 3)


def test_steady_state_reconcile_writes_nothing(operator: Operator, kube: Kube, namespace: str) -> None:
    kube.create(k.STORES, store("calm"), namespace)
    wait_ready(kube, namespace, "calm", 3)
    passes(operator, kube, namespace, "calm", 1)  # settle: the last status write has been echoed
    before = operator.writes(namespace)
    assert before > 0
    status_before = kube.get(k.STORES, "calm", namespace)["status"]
    passes(operator, kube, namespace, "calm", 5)  # five full reconciles, each seen to happen
    assert operator.writes(namespace) == before
    status_after = kube.get(k.STORES, "calm", namespace)["status"]
    # Not one field of Phalanx's status moved (Kopf records the test's pokes in its own status.kopf).
    assert {**status_after, "kopf": None} == {**status_before, "kopf": None}
    assert status_after["readyReplicas"] == 3


def test_metrics_endpoint_serves_the_documented_metrics(operator: Operator, kube: Kube, namespace: str) -> None:
    kube.create(k.STORES, store("metered"), namespace)
    wait_ready(kube, namespace, "metered", 3)
    samples = operator.metrics()
    text = "\n".join(samples)
    for metric in (
        "phalanx_reconcile_duration_seconds_bucket",
        "phalanx_reconciles_total",
        "phalanx_members",
        "phalanx_store_desired_replicas",
        "phalanx_store_ready_replicas",
        "phalanx_store_condition",
        "phalanx_actions_total",
        "phalanx_api_requests_total",
    ):
        assert metric in text, metric
    ready_key = f'phalanx_store_ready_replicas{{namespace="{namespace}",store="metered"}}'
    wait_for(lambda: operator.metrics().get(ready_key) == 3.0, "ready replicas metric at 3")
    members = {k_: v for k_, v in operator.metrics().items() if k_.startswith("phalanx_members{") and namespace in k_}
    assert sum(members.values()) == 3 and all('state="Ready"' in k_ for k_ in members)


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deletion_policy_leaves_exactly_the_volumes_it_should(
    operator: Operator, kube: Kube, namespace: str, policy: str
) -> None:
    kube.create(k.STORES, store("gone", deletionPolicy=policy), namespace)
    wait_ready(kube, namespace, "gone", 3)
    uids = {c["metadata"]["name"]: c["metadata"]["uid"] for c in member_claims(kube, namespace, "gone")}
    kube.delete(k.STORES, "gone", namespace)
    wait_for(lambda: kube.find(k.STORES, "gone", namespace) is None, "store deleted (finalizer done)")
    wait_for(lambda: not member_pods(kube, namespace, "gone"), "member pods gone")
    if policy == "Delete":
        wait_for(lambda: not member_claims(kube, namespace, "gone"), "volumes deleted")
        return
    claims = member_claims(kube, namespace, "gone")
    assert {c["metadata"]["name"]: c["metadata"]["uid"] for c in claims} == uids
    assert all(names.RETAINED_ANNOTATION in c["metadata"]["annotations"] for c in claims)
    for claim in claims:  # pinned: even deleting the namespace (and so the claims) keeps the data
        pv = kube.get(k.PVS, claim["spec"]["volumeName"])
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    # A store re-created under the same name adopts the retained volumes: same claims, same members.
    kube.create(k.STORES, store("gone"), namespace)
    wait_ready(kube, namespace, "gone", 3)
    assert {c["metadata"]["name"]: c["metadata"]["uid"] for c in member_claims(kube, namespace, "gone")} == uids
    assert sorted(p["metadata"]["name"] for p in member_pods(kube, namespace, "gone")) == sorted(uids)


def test_deletion_policy_snapshot_keeps_a_final_snapshot_of_every_volume(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    kube.create(k.STORES, store("last", deletionPolicy="Snapshot", snapshots={"interval": "1h"}), namespace)
    wait_ready(kube, namespace, "last", 3)
    volumes = {}
    for claim in member_claims(kube, namespace, "last"):
        sim.write(namespace, claim["metadata"]["name"], seq=42)
        volumes[claim["metadata"]["name"]] = claim["spec"]["volumeName"]
    store_uid = kube.get(k.STORES, "last", namespace)["metadata"]["uid"]
    kube.delete(k.STORES, "last", namespace)
    wait_for(lambda: kube.find(k.STORES, "last", namespace) is None, "store deleted (finalizer done)", timeout=60)
    finals = {
        s["metadata"]["labels"][names.MEMBER_LABEL]: s
        for s in kube.items(k.SNAPSHOTS, namespace, f"{names.FINAL_LABEL}=true")
    }
    assert sorted(finals) == sorted(volumes)
    for member, snap in finals.items():
        assert snap["metadata"]["name"] == f"{member}-final-{store_uid[:8]}"
        assert snap["status"]["readyToUse"] is True
        assert sim.snapshot_data(namespace, snap["metadata"]["name"])["seq"] == 42
    wait_for(lambda: not member_claims(kube, namespace, "last"), "claims deleted")
    # The reclaim policy was given back before the claims went: the disks went with them.
    wait_for(lambda: all(kube.find(k.PVS, v) is None for v in volumes.values()), "volumes deleted", timeout=60)


def test_spec_edits_reach_the_services_and_the_disruption_budget(
    operator: Operator, kube: Kube, namespace: str
) -> None:
    kube.create(k.STORES, store("edited"), namespace)
    wait_ready(kube, namespace, "edited", 3)
    assert kube.get(PDBS, "edited", namespace)["spec"]["maxUnavailable"] == 1
    kube.patch(k.STORES, "edited", {"spec": {"disruptionBudget": {"maxUnavailable": 0}}}, namespace)
    wait_for(lambda: kube.get(PDBS, "edited", namespace)["spec"]["maxUnavailable"] == 0, "budget updated")
    body = kube.get(k.STORES, "edited", namespace)
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"name": "client", "containerPort": 6380}]
    kube.patch(k.STORES, "edited", {"spec": {"template": body["spec"]["template"]}}, namespace)
    wait_for(
        lambda: [p["port"] for p in kube.get(k.SERVICES, "edited", namespace)["spec"]["ports"]] == [6380],
        "client Service ports updated",
    )


def test_store_without_ports_gets_no_client_service(operator: Operator, kube: Kube, namespace: str) -> None:
    body = store("quiet")
    body = copy.deepcopy(body)
    del body["spec"]["template"]["spec"]["containers"][0]["ports"]
    kube.create(k.STORES, body, namespace)
    wait_ready(kube, namespace, "quiet", 3)
    assert [s["metadata"]["name"] for s in kube.items(k.SERVICES, namespace)] == ["quiet-peers"]
