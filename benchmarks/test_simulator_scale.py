"""How long the simulator (with the real scheduler) takes to bring N pods to Ready. ``make bench``."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from phalanx import kube as k
from phalanx.kube import Kube
from phalanx_sandbox import wait_for

PODS = int(os.environ.get("BENCH_PODS", "1000"))


@pytest.mark.cluster
def test_pods_to_ready(kube: Kube, namespace: str) -> None:
    def create(index: int) -> None:
        kube.create(
            k.PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"p-{index}", "labels": {"bench": "scale"}},
                "spec": {"containers": [{"name": "c", "image": "registry.invalid/c:1"}]},
            },
            namespace,
        )

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(PODS)))
    created = time.monotonic() - started

    def all_ready() -> int | None:
        pods = kube.items(k.PODS, namespace, "bench=scale")
        ready = sum(
            1
            for p in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
        )
        return ready if ready == PODS else None

    wait_for(all_ready, f"{PODS} pods Ready", timeout=900, interval=1.0)
    total = time.monotonic() - started
    print(
        f"\nBENCH simulator: {PODS} pods created in {created:.1f}s, all Ready after {total:.1f}s "
        f"({PODS / total:.0f} pods/s)"
    )
