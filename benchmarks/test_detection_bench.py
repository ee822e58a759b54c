"""Detection time: node stop → replacement created, with memberFailureGrace 5 s, judged by the node
controller's NotReady alone (PHALANX_NODE_HEARTBEATS=false) and from the nodes' Lease heartbeats
(the default). The control plane's node-monitor grace here is 8 s (40 s by default in a real
cluster, where the gap is wider still).

Run with ``make bench`` or ``pytest benchmarks/test_detection_bench.py -s``; ``BENCH_DETECTION_RUNS``
sets the stops per mode (default 3).
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.conftest import Operator
from tests.integration.test_operator import member_claims, store, wait_ready

pytestmark = pytest.mark.cluster

RUNS = int(os.environ.get("BENCH_DETECTION_RUNS", "3"))


def stop_and_time(kube: Kube, sim: SimulatorHandle, namespace: str, name: str) -> float:
    """Stop the node of the store's second member; seconds until its replacement's claim exists."""
    member = sorted(c["metadata"]["name"] for c in member_claims(kube, namespace, name)
                    if not (c["metadata"].get("labels") or {}).get(names.RETIRED_LABEL))[1]  # fmt: skip
    node = kube.get(k.PODS, member, namespace)["spec"]["nodeName"]
    begin = time.monotonic()
    sim.stop_node(node)

    def replaced() -> bool:
        return any(
            (c["metadata"].get("annotations") or {}).get(names.REPLACES_ANNOTATION) == member
            for c in member_claims(kube, namespace, name)
        )

    wait_for(replaced, f"a replacement for {member}", timeout=120, interval=0.05)
    took = time.monotonic() - begin
    sim.start_node(node)
    wait_for(lambda: sim.node_ready(node), f"{node} back", timeout=60)
    wait_ready(kube, namespace, name, 3, timeout=120)
    return took


def test_node_stop_to_replacement(operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle) -> None:
    results: dict[str, list[float]] = {}
    try:
        for mode, heartbeats in (("node controller only", "false"), ("heartbeats", "true")):
            operator.stop()
            operator.start(PHALANX_NODE_HEARTBEATS=heartbeats)
            name = f"detect-{heartbeats}"
            kube.create(
                k.STORES, store(name, recovery={"memberFailureGrace": "5s", "zoneFailureGrace": "5m"}), namespace
            )
            wait_ready(kube, namespace, name, 3)
            results[mode] = [stop_and_time(kube, sim, namespace, name) for _ in range(RUNS)]
    finally:
        operator.stop()
        operator.start()
    for mode, took in results.items():
        print(f"\n{mode}: node stop → replacement created, median {statistics.median(took):.1f} s, "
              f"max {max(took):.1f} s ({', '.join(f'{t:.1f}' for t in took)})")  # fmt: skip
    assert statistics.median(results["heartbeats"]) < statistics.median(results["node controller only"])
