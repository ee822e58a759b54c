"""The operator in a cluster of ordinary size, on a control plane of its own: 33 nodes and more
objects of every watched kind than any per-kind worker limit, restarted under them; and a watch that
lags behind the operator's own writes.

Regressions: an operator whose handlers waited for every object of every kind to be indexed, with a
worker limit of 20 per kind, reconciled nothing at all once a kind had more than 20 objects (33 nodes
were enough); and a store that planned before the watch showed its own creations created more
members than asked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import Sandbox, wait_for
from tests.conftest import Cluster, Operator, install_crds
from tests.integration.test_operator import member_claims, member_pods, ready, store

pytestmark = pytest.mark.cluster

NODES_PER_ZONE = 11
STORES = 25
"""25 stores of 3: 75 pods, 75 claims, 50 Services, 25 budgets and 33 nodes, each above 20."""


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    sandbox = Sandbox(workdir=tmp_path_factory.mktemp("big"), nodes_per_zone=NODES_PER_ZONE, say=print)
    sandbox.start()
    try:
        install_crds(Cluster(sandbox))
        yield Cluster(sandbox)
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def big_operator(big: Cluster) -> Iterator[Operator]:
    running = Operator(big)
    running.start()
    yield running
    running.stop()


def new_namespace(kube: Kube) -> str:
    name = f"s-{uuid.uuid4().hex[:8]}"
    kube.create(k.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    accounts = k.Resource("", "v1", "serviceaccounts")
    wait_for(lambda: (kube.find(accounts, "default", name) or {}).get("secrets"), f"{name}/default SA token")
    return name


def create_stores(kube: Kube, namespace: str, count: int, replicas: int = 3) -> list[str]:
    """``count`` stores, created at once (as `kubectl apply -f dir/` would)."""
    names_ = [f"st{i}" for i in range(count)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: kube.create(k.STORES, store(n, replicas), namespace), names_))
    return names_


def all_ready(kube: Kube, namespace: str, stores: list[str], replicas: int, timeout: float) -> None:
    def check() -> bool:
        return all(ready(kube, namespace, s, replicas) is not None for s in stores)

    wait_for(check, f"{len(stores)} stores Ready with {replicas}", timeout=timeout, interval=0.5)


def serials(objs: list[Obj]) -> list[int]:
    return sorted(int(o["metadata"]["name"].rsplit("-", 1)[1]) for o in objs)


def assert_exact_members(kube: Kube, namespace: str, stores: list[str], replicas: int) -> None:
    """Exactly ``replicas`` live pods and claims per store, serials 1..replicas: nothing made twice."""
    for name in stores:
        pods = [p for p in member_pods(kube, namespace, name) if not p["metadata"].get("deletionTimestamp")]
        claims = member_claims(kube, namespace, name)
        live = [c for c in claims if (c["metadata"].get("labels") or {}).get(names.RETIRED_LABEL) != "true"]
        assert serials(pods) == serials(live) == list(range(1, replicas + 1)), (name, serials(pods), serials(claims))


def test_an_operator_restarted_under_a_cluster_of_real_size_converges_and_heals(
    big: Cluster, big_operator: Operator
) -> None:
    kube = big.kube()
    namespace = new_namespace(kube)
    stores = create_stores(kube, namespace, STORES)
    all_ready(kube, namespace, stores, 3, timeout=180)
    assert len(kube.items(k.NODES)) == 3 * NODES_PER_ZONE

    big_operator.stop()
    victim = kube.get(k.PODS, "st7-2", namespace)
    kube.delete(k.PODS, "st7-2", namespace, grace_seconds=0)
    big_operator.start()

    def healed() -> bool:
        pod = kube.find(k.PODS, "st7-2", namespace)
        return pod is not None and pod["metadata"]["uid"] != victim["metadata"]["uid"]

    wait_for(healed, "the pod deleted during the restart to be recreated", timeout=60)

    def every_store_reconciled() -> bool:
        return all(big_operator.reconciles(namespace, s) >= 1 for s in stores)

    wait_for(every_store_reconciled, f"all {STORES} stores reconciled after the restart", timeout=60)
    all_ready(kube, namespace, stores, 3, timeout=60)
    assert_exact_members(kube, namespace, stores, 3)


def test_a_lagging_watch_never_makes_a_store_create_or_retire_twice(big: Cluster, big_operator: Operator) -> None:
    kube = big.kube()
    namespace = new_namespace(kube)
    big_operator.stop()
    big_operator.start(PHALANX_TEST_WATCH_DELAY="3")  # every pod and claim event arrives 3 s late
    try:
        stores = create_stores(kube, namespace, 10)
        all_ready(kube, namespace, stores, 3, timeout=180)
        assert_exact_members(kube, namespace, stores, 3)

        shrinking = stores[:4]
        for name in shrinking:
            kube.patch(k.STORES, name, {"spec": {"replicas": 2}}, namespace)
        all_ready(kube, namespace, shrinking, 2, timeout=120)
        for name in shrinking:
            retired = [
                c
                for c in member_claims(kube, namespace, name)
                if (c["metadata"].get("labels") or {}).get(names.RETIRED_LABEL) == "true"
            ]
            assert serials(retired) == [3], (name, serials(retired))
        assert_exact_members(kube, namespace, shrinking, 2)
        assert_exact_members(kube, namespace, stores[4:], 3)
    finally:
        big_operator.stop()
        big_operator.start()
