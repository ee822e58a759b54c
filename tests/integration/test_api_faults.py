"""Faults of the API server itself, and a store the API server keeps refusing.

- kube-apiserver is killed and started again under a running operator, on a control plane of its
  own (the session's controllers must not see it): the operator neither dies nor crash-loops, makes
  no member twice, and goes on healing and scaling.
- A ResourceQuota refuses every pod of some stores: those back off and report Stalled, and a healthy
  store beside them reacts as fast as it did before they came.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator

import pytest

from phalanx import kube as k
from phalanx.kube import Kube
from phalanx_sandbox import Sandbox, wait_for
from tests.conftest import Cluster, Operator, install_crds
from tests.integration.test_operator import condition, member_claims, member_pods, store, wait_ready
from tests.integration.test_scale import new_namespace

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Operator]]:
    sandbox = Sandbox(workdir=tmp_path_factory.mktemp("faults"), nodes_per_zone=1, say=print)
    sandbox.start()
    try:
        cluster = Cluster(sandbox)
        install_crds(cluster)
        running = Operator(cluster)
        running.start()
        yield cluster, running
        running.stop()
    finally:
        sandbox.stop()


def test_an_api_server_restart_under_the_operator_costs_nothing(own: tuple[Cluster, Operator]) -> None:
    cluster, operator = own
    kube = Kube.from_kubeconfig(cluster.kubeconfig)
    namespace = new_namespace(kube)
    for name in ("left", "right"):
        kube.create(k.STORES, store(name), namespace)
    for name in ("left", "right"):
        wait_ready(kube, namespace, name, 3)
    process = operator.process
    assert process is not None and process.popen is not None
    pid = process.popen.pid
    assert cluster.sandbox.plane is not None
    away = cluster.sandbox.plane.restart_apiserver()
    print(f"kube-apiserver away for {away:.1f}s")
    victim = kube.get(k.PODS, "left-2", namespace)["metadata"]["uid"]
    kube.delete(k.PODS, "left-2", namespace)
    kube.patch(k.STORES, "right", {"spec": {"replicas": 4}}, namespace)

    def healed() -> bool:
        pod = kube.find(k.PODS, "left-2", namespace)
        return pod is not None and pod["metadata"]["uid"] != victim

    wait_for(healed, "the deleted pod recreated after the restart", timeout=90)
    wait_ready(kube, namespace, "left", 3, timeout=90)
    wait_ready(kube, namespace, "right", 4, timeout=90)
    assert process.alive() and process.popen.pid == pid, "the operator neither died nor restarted"
    for name, replicas in (("left", 3), ("right", 4)):
        assert len(member_claims(kube, namespace, name)) == replicas, "no member made twice"
        assert len(member_pods(kube, namespace, name)) == replicas


def reaction(kube: Kube, namespace: str, name: str, member: str) -> float:
    """Seconds from a member's pod deleted to its new pod made."""
    old = kube.get(k.PODS, member, namespace)["metadata"]["uid"]
    begin = time.monotonic()
    kube.delete(k.PODS, member, namespace)

    def back() -> bool:
        pod = kube.find(k.PODS, member, namespace)
        return pod is not None and pod["metadata"]["uid"] != old

    wait_for(back, f"{member} recreated", timeout=60, interval=0.02)
    seconds = time.monotonic() - begin
    wait_ready(kube, namespace, name, 3)
    return seconds


def test_stores_a_quota_refuses_back_off_and_do_not_slow_a_healthy_one(
    operator: Operator, kube: Kube, namespace: str
) -> None:
    kube.create(k.STORES, store("healthy"), namespace)
    wait_ready(kube, namespace, "healthy", 3)
    before = [reaction(kube, namespace, "healthy", f"healthy-{n}") for n in (1, 2, 3)]
    blocked_ns = new_namespace(kube)
    quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    kube.create(k.Resource("", "v1", "resourcequotas"), quota, blocked_ns)
    wait_for(
        lambda: (kube.get(k.Resource("", "v1", "resourcequotas"), "no-pods", blocked_ns).get("status") or {}).get(
            "hard"
        ),
        "the quota in force",
    )
    blocked = [f"blocked-{uuid.uuid4().hex[:4]}" for _ in range(5)]
    for name in blocked:
        kube.create(k.STORES, store(name), blocked_ns)

    def stalled(name: str) -> bool:
        found = condition(kube.get(k.STORES, name, blocked_ns), "Stalled")
        return (
            found.get("status") == "True" and found.get("reason") == "Refused" and "quota" in found.get("message", "")
        )

    wait_for(lambda: all(stalled(n) for n in blocked), "the refused stores reported Stalled", timeout=90)
    passes_then = {n: operator.reconciles(blocked_ns, n) for n in blocked}
    during = [reaction(kube, namespace, "healthy", f"healthy-{n}") for n in (1, 2, 3)]
    later = {n: operator.reconciles(blocked_ns, n) for n in blocked}
    print(f"reaction before {before}, beside refused stores {during}")
    assert statistics.median(during) <= 2 * statistics.median(before) + 0.5, (before, during)
    assert all(later[n] - passes_then[n] <= 3 for n in blocked), "a refused store backs off instead of retrying"
