"""The operator core's reaction times. ``make bench``; the numbers go in the closing notes.

- a member's pod deleted -> its replacement pod created (target: under 1 s);
- a store created -> Ready (three members; the simulator's pods start in 0.5 s).
"""

from __future__ import annotations

import statistics
import time

import pytest

from phalanx import kube as k
from phalanx.kube import Kube, Obj
from phalanx_sandbox import wait_for
from tests.conftest import Operator
from tests.integration.test_operator import store, wait_ready

SAMPLES = 10


@pytest.mark.cluster
def test_store_creation_to_ready(operator: Operator, kube: Kube, namespace: str) -> None:
    times = []
    for index in range(3):
        started = time.monotonic()
        kube.create(k.STORES, store(f"s{index}"), namespace)
        wait_ready(kube, namespace, f"s{index}", 3)
        times.append(time.monotonic() - started)
    print(f"\nBENCH store creation to Ready: {[round(t, 1) for t in times]} s (median {statistics.median(times):.1f})")


@pytest.mark.cluster
def test_pod_deletion_to_replacement(operator: Operator, kube: Kube, namespace: str) -> None:
    kube.create(k.STORES, store("heal"), namespace)
    wait_ready(kube, namespace, "heal", 3)
    latencies = []
    for index in range(SAMPLES):
        member = f"heal-{index % 3 + 1}"
        old = kube.get(k.PODS, member, namespace)["metadata"]["uid"]
        kube.delete(k.PODS, member, namespace, grace_seconds=0)
        deleted = time.monotonic()

        def replaced(member: str = member, old: str = old) -> Obj | None:
            pod = kube.find(k.PODS, member, namespace)
            return pod if pod and pod["metadata"]["uid"] != old else None

        wait_for(replaced, "replacement pod", timeout=10, interval=0.005)
        latencies.append(time.monotonic() - deleted)
        wait_ready(kube, namespace, "heal", 3)
    print(
        f"\nBENCH pod deletion to replacement created: median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms over {SAMPLES}"
    )
