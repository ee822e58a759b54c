"""Recovery time, snapshot-seeded versus empty, at three data sizes; and a plain StatefulSet beside it.

Run with ``make bench`` (not part of ``make test``). The simulator copies data at a fixed rate when a
pod catches up from its peers (``sim.phalanx.dev/catch-up-rate``), so the time to Ready grows with
what the new member lacks: a snapshot-seeded member lacks only the writes since the snapshot.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.conftest import Operator
from tests.integration.test_operator import store, wait_ready
from tests.integration.test_recovery import snapshot_now, write_all

GB = 10**9
RATE = GB  # bytes per second a member copies from its peers
SIZES = [1 * GB, 4 * GB, 16 * GB]
DELTA = 0.01  # writes after the snapshot, as a share of the data
RESULTS: list[dict[str, Any]] = []


def poll(probe: Any, what: str, timeout: float = 300) -> Any:
    return wait_for(probe, what, timeout=timeout, interval=0.02)


def pod_ready(pod: Obj | None) -> bool:
    return bool(pod) and any(
        c["type"] == "Ready" and c["status"] == "True" for c in (pod or {}).get("status", {}).get("conditions") or []
    )


@pytest.mark.cluster
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s // GB}GB")
@pytest.mark.parametrize("source", ["Snapshot", "Empty"])
def test_recovery_time(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle, source: str, size: int
) -> None:
    body = store("bench", recovery={"memberFailureGrace": "1s", "source": source}, snapshots={"interval": "1h"})
    body["spec"]["template"]["metadata"] = {
        "annotations": {"sim.phalanx.dev/catch-up-from": names.STORE_LABEL, "sim.phalanx.dev/catch-up-rate": str(RATE)}
    }
    kube.create(k.STORES, body, namespace)
    wait_ready(kube, namespace, "bench", 3, timeout=120)
    write_all(sim, kube, namespace, "bench", seq=100)
    for claim in ("bench-1", "bench-2", "bench-3"):
        sim.write(namespace, claim, seq=100, size=size)
    snapshot_now(kube, namespace, "bench", "bench")
    for claim in ("bench-1", "bench-2", "bench-3"):
        sim.write(namespace, claim, seq=101, size=int(size * (1 + DELTA)))
    node = kube.get(k.PODS, "bench-2", namespace)["spec"]["nodeName"]
    sim.stop_node(node)
    stopped = time.monotonic()
    poll(lambda: not sim.node_ready(node), "node NotReady")
    # Detectable: the node's NotReady transition (the API's timestamp, whole seconds: the operator
    # judges by the same one) plus memberFailureGrace. Measured on the wall clock of this machine.
    ready_condition = next(c for c in kube.get(k.NODES, node)["status"]["conditions"] if c["type"] == "Ready")
    transition = datetime.fromisoformat(ready_condition["lastTransitionTime"].replace("Z", "+00:00")).timestamp()
    detectable = transition + 1.0
    stopped = time.time() - (time.monotonic() - stopped)

    def replacement() -> str | None:
        record = (kube.get(k.STORES, "bench", namespace).get("status") or {}).get("lastRecovery") or {}
        name = record.get("replacement")
        return name if name and kube.find(k.PVCS, name, namespace) else None

    name = poll(replacement, "the replacement")
    created = time.time()
    poll(lambda: pod_ready(kube.find(k.PODS, name, namespace)), "replacement Ready", timeout=600)
    ready = time.time()
    result = {
        "source": source,
        "data_gb": size / GB,
        "overhead_s": round(created - detectable, 2),
        "loss_to_ready_s": round(ready - stopped, 1),
        "detectable_to_ready_s": round(ready - detectable, 1),
        "caught_up_bytes": sim.read(namespace, name)["bytes"],
    }
    RESULTS.append(result)
    print(f"\nBENCH recovery {json.dumps(result)}")


@pytest.mark.cluster
def test_statefulset_on_a_dead_node(kube: Kube, namespace: str, sim: SimulatorHandle) -> None:
    """A plain StatefulSet does not replace a pod on a dead node by itself (its volume is bound there)."""
    labels = {"app": "sts-bench"}
    kube.create(
        k.Resource("apps", "v1", "statefulsets"),
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "plain"},
            "spec": {
                "serviceName": "plain",
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "registry.invalid/c:1"}]},
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                    }
                ],
            },
        },
        namespace,
    )
    poll(lambda: all(pod_ready(kube.find(k.PODS, f"plain-{i}", namespace)) for i in range(3)), "sts ready", timeout=120)
    victim = kube.get(k.PODS, "plain-1", namespace)
    sim.stop_node(victim["spec"]["nodeName"])
    stopped = time.monotonic()
    window = 90.0
    replaced = None
    while time.monotonic() - stopped < window:
        pod = kube.find(k.PODS, "plain-1", namespace)
        if pod and pod["metadata"]["uid"] != victim["metadata"]["uid"] and pod_ready(pod):
            replaced = time.monotonic() - stopped
            break
        time.sleep(0.5)
    result = {"source": "StatefulSet", "replaced_within_s": replaced, "window_s": window}
    RESULTS.append(result)
    print(f"\nBENCH statefulset {json.dumps(result)}")


def test_write_results() -> None:
    """Collect the numbers of this run into .bench/results.json (and print a table)."""
    out = Path(".bench")
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(RESULTS, indent=2))
    for row in RESULTS:
        print("BENCH", row)
