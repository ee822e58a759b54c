"""GitOps and observability with the real tools, on the real control plane: `kubectl wait` and a
kstatus reader (Flux's) end on a store's conditions; a store applied server-side by a GitOps field
manager never drifts under Phalanx; `kubectl scale` and an autoscaler use the scale subresource; and
every metric the README lists is served."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import yaml

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.conftest import Cluster, Operator
from tests.integration.test_operator import condition, store, wait_ready
from tests.unit.test_kstatus import kstatus
from tests.unit.test_metrics import readme_metric_names, served_metric_names

pytestmark = pytest.mark.cluster

GITOPS = "argocd-controller"
"""The field manager Argo CD applies with (server-side)."""


def kstatus_wait(kube: Kube, namespace: str, name: str, timeout: float = 90) -> tuple[str, Obj]:
    """Poll as Flux's health check does (cli-utils' kstatus) until the store is no longer InProgress."""

    def settled() -> tuple[str, Obj] | None:
        obj = kube.get(k.STORES, name, namespace)
        if not obj.get("status"):
            return None  # not seen by a controller yet: kstatus's InProgress for a resource with conditions
        found = kstatus(obj["metadata"]["generation"], obj["status"])
        return (found, obj) if found != "InProgress" else None

    return wait_for(settled, f"{name} Current or Failed", timeout=timeout, interval=0.2)


def test_kubectl_wait_and_a_kstatus_reader_end_on_ready_and_on_stalled_with_the_message(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str
) -> None:
    kube.create(k.STORES, store("waited"), namespace)
    started = time.monotonic()
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "rstore/waited", "--timeout=90s")
    assert time.monotonic() - started < 90
    found, obj = kstatus_wait(kube, namespace, "waited")
    assert found == "Current" and obj["status"]["readyReplicas"] == 3

    kube.create(k.STORES, store("broken", updates={"canary": 10}), namespace)  # canary larger than the store
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Stalled", "rstore/broken", "--timeout=60s")
    jsonpath = '{.status.conditions[?(@.type=="Stalled")].message}'
    message = cluster.kubectl("get", "-n", namespace, "rstore/broken", "-o", f"jsonpath={jsonpath}").stdout
    assert "spec.updates.canary" in message and "at most 3" in message, message
    found, obj = kstatus_wait(kube, namespace, "broken", timeout=30)
    assert found == "Failed", "a stalled store fails at once, not at the reader's timeout"
    assert condition(obj, "Reconciling")["status"] == "False" and condition(obj, "Ready")["status"] == "False"


def manifest(namespace: str, replicas: int) -> str:
    body = store("gitops", replicas=replicas)
    body["metadata"]["namespace"] = namespace
    body["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "argocd"}
    return yaml.safe_dump(body)


def apply(cluster: Cluster, text: str, *extra: str) -> str:
    """`kubectl apply --server-side` as Argo CD's controller: fails on any conflict (no --force-conflicts)."""
    args = ("apply", "--server-side", f"--field-manager={GITOPS}", *extra, "-f", "-")
    return cluster.kubectl(*args, input=text).stdout


def owned(entry: Obj) -> dict[str, Any]:
    fields: dict[str, Any] = entry.get("fieldsV1") or {}
    return fields


def test_a_store_applied_server_side_by_gitops_never_drifts_under_phalanx(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    apply(cluster, manifest(namespace, 3))
    wait_ready(kube, namespace, "gitops", 3)
    text = manifest(namespace, 4)  # scaled through the same manager, as a commit would
    apply(cluster, text)
    wait_ready(kube, namespace, "gitops", 4)
    sim.lose_volume(namespace, "gitops-2")  # a recovery: Phalanx writes status, creates and retires members

    def recovered() -> bool:
        status = kube.get(k.STORES, "gitops", namespace).get("status") or {}
        return (status.get("lastRecovery") or {}).get("member") == "gitops-2" and bool(
            status["lastRecovery"].get("readyAt")
        )

    wait_for(recovered, "gitops-2 replaced", timeout=90)
    wait_ready(kube, namespace, "gitops", 4)

    before = kube.get(k.STORES, "gitops", namespace)
    dry_run = apply(cluster, text, "--dry-run=server")
    assert "serverside-applied (server dry run)" in dry_run, dry_run
    diff = cluster.kubectl("diff", "--server-side", f"--field-manager={GITOPS}", "-f", "-", input=text, check=False)
    assert (diff.returncode, diff.stdout) == (0, ""), f"drift:\n{diff.stdout}{diff.stderr}"
    after = kube.get(k.STORES, "gitops", namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"] == 2, "two applies, no other spec write"

    entries = after["metadata"]["managedFields"]
    ours = [e for e in entries if e["manager"] == GITOPS]
    assert [e["operation"] for e in ours] == ["Apply"]
    assert set(owned(ours[0])) == {"f:metadata", "f:spec"}
    others = {e["manager"]: owned(e) for e in entries if e["manager"] != GITOPS}
    assert set(others) <= {names.FIELD_MANAGER, "kopf"}, others
    assert set(others[names.FIELD_MANAGER]) == {"f:status"}, "Phalanx writes status only"
    kopf = others.get("kopf", {})  # Kopf: the finalizer, and its bookkeeping under status.kopf
    assert set(kopf) <= {"f:metadata", "f:status"} and set(kopf.get("f:metadata", {})) <= {"f:finalizers"}, kopf
    assert set(kopf.get("f:status", {})) <= {".", "f:kopf"}, kopf
    finalizers = after["metadata"].get("finalizers") or []
    assert finalizers == [names.FINALIZER]
    assert not {a for a in after["metadata"].get("annotations") or {} if "kopf" in a}, "no Kopf annotation"


def scale_of(cluster: Cluster, namespace: str, name: str) -> Obj:
    path = f"/apis/phalanx.dev/v1alpha1/namespaces/{namespace}/replicatedstores/{name}/scale"
    scale: Obj = json.loads(cluster.kubectl("get", "--raw", path).stdout)
    return scale


HPAS = k.Resource("autoscaling", "v2beta2", "horizontalpodautoscalers")  # the test cluster is v1.20


def test_kubectl_scale_converges_and_the_scale_subresource_gives_an_autoscaler_the_members(
    cluster: Cluster, operator: Operator, kube: Kube, namespace: str
) -> None:
    kube.create(k.STORES, store("scaled"), namespace)
    wait_ready(kube, namespace, "scaled", 3)
    cluster.kubectl("scale", "-n", namespace, "rstore/scaled", "--replicas=4")
    wait_ready(kube, namespace, "scaled", 4)
    scale = scale_of(cluster, namespace, "scaled")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 4
    assert scale["status"] == {"replicas": 4, "selector": "phalanx.dev/store=scaled"}
    selected = kube.items(k.PODS, namespace, scale["status"]["selector"])
    assert sorted(p["metadata"]["name"] for p in selected) == [f"scaled-{i}" for i in range(1, 5)]

    # The real HPA controller reads the scale subresource and its selector: with no metrics API in
    # this cluster it goes no further than asking for metrics, which proves it got that far.
    hpa = {
        "apiVersion": "autoscaling/v2beta2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "scaled"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "phalanx.dev/v1alpha1", "kind": "ReplicatedStore", "name": "scaled"},
            "minReplicas": 3,
            "maxReplicas": 6,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                    "averageUtilization": 80}}}],
        },
    }  # fmt: skip
    kube.create(HPAS, hpa, namespace)

    def judged() -> dict[str, Obj] | None:
        conditions = (kube.get(HPAS, "scaled", namespace).get("status") or {}).get("conditions") or []
        by_type = {c["type"]: c for c in conditions}
        return by_type if "ScalingActive" in by_type else None

    conditions = wait_for(judged, "the HPA controller to look at the store", timeout=60, interval=0.5)
    assert conditions["AbleToScale"]["status"] == "True", conditions  # it read /scale
    active = conditions["ScalingActive"]
    assert active["reason"] != "InvalidSelector", active  # and took the selector
    assert active["reason"] == "FailedGetResourceMetric", active


def test_every_metric_the_readme_lists_is_served_by_the_running_operator(operator: Operator) -> None:
    text = requests.get(operator.metrics_url, timeout=5).text
    listed = readme_metric_names()
    assert len(listed) > 20
    assert listed - served_metric_names(text) == set()
    build = [line for line in text.splitlines() if line.startswith("phalanx_build_info{")]
    assert len(build) == 1 and build[0].endswith(" 1.0") and 'python="3.' in build[0], build
