"""``make demo``: Phalanx on the local sandbox cluster, narrated, with timings.

1. Bring up a real control plane, the simulator and the operator (private state directory).
2. Apply ``examples/minimal.yaml`` and show its members becoming Ready, per zone.
3. Turn on snapshots, write some data, take a snapshot.
4. Stop the node of one member and narrate the recovery: loss detected, replacement seeded from the
   snapshot, ready again; with the time of each step and the data proving the lineage.
5. Take everything down. (``make sandbox`` is the one that stays up.)
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import Sandbox, SimulatorHandle, wait_for

T = TypeVar("T")
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "minimal.yaml"
NAMESPACE = "demo"
START = time.monotonic()


def say(line: str) -> None:
    print(f"[demo +{time.monotonic() - START:6.1f}s] {line}", flush=True)


def until(probe: Callable[[], T | None], what: str, timeout: float = 120) -> T:
    return wait_for(probe, what, timeout=timeout, interval=0.05)


def member_table(kube: Kube, name: str) -> str:
    pods = kube.items(k.PODS, NAMESPACE, f"{names.STORE_LABEL}={name}")
    by_zone: dict[str, list[str]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])
        state = "ready" if ready else "starting"
        if pod["metadata"].get("deletionTimestamp"):
            state = "retired, terminating on its dead node"
        zone = pod["metadata"]["labels"].get(names.ZONE_LABEL, "?")
        by_zone.setdefault(zone, []).append(f"{pod['metadata']['name']}({state})")
    return "  ".join(f"{zone}: {', '.join(members)}" for zone, members in sorted(by_zone.items()))


def status_of(kube: Kube, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kube.get(k.STORES, name, NAMESPACE).get("status") or {}
    return status


def ready(kube: Kube, name: str, replicas: int) -> bool:
    status = status_of(kube, name)
    return status.get("phase") == "Ready" and status.get("readyReplicas") == replicas


def run(sandbox: Sandbox) -> None:
    kube = sandbox.kube()
    sim = SimulatorHandle(kube)
    sandbox.start_operator()
    say("operator running; applying examples/minimal.yaml")
    kube.create(k.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    until(lambda: (kube.find(k.Resource("", "v1", "serviceaccounts"), "default", NAMESPACE) or {}).get("secrets"), "ns")
    store: Obj = yaml.safe_load(EXAMPLE.read_text())
    name = store["metadata"]["name"]
    created = time.monotonic()
    kube.create(k.STORES, store, NAMESPACE)
    last = ""
    while not ready(kube, name, 3):
        table = member_table(kube, name)
        if table != last:
            say(table or "no members yet")
            last = table
        time.sleep(0.1)
    say(member_table(kube, name))
    say(f"store {name} Ready in {time.monotonic() - created:.1f}s: 3 members, one per zone")

    say("turning on snapshots (every 1m) and a 5s member failure grace")
    patch = {"spec": {"snapshots": {"interval": "1m"}, "recovery": {"memberFailureGrace": "5s"}}}
    kube.patch(k.STORES, name, patch, NAMESPACE)
    for member in (f"{name}-1", f"{name}-2", f"{name}-3"):
        sim.write(NAMESPACE, member, seq=100, size=10**9)
    say("every member acknowledged write #100; waiting for a snapshot")
    latest = until(lambda: (status_of(kube, name).get("snapshots") or {}).get("latest"), "a ready snapshot")
    say(f"snapshot {latest} ready, holding write #{sim.snapshot_data(NAMESPACE, latest)['seq']}")
    for member in (f"{name}-1", f"{name}-2", f"{name}-3"):
        sim.write(NAMESPACE, member, seq=105, size=10**9 + 5 * 10**6)
    say("writes #101-#105 acknowledged after the snapshot")

    victim = kube.get(k.PODS, f"{name}-2", NAMESPACE)
    node = victim["spec"]["nodeName"]
    sim.stop_node(node)
    stopped = time.monotonic()
    say(f"stopped node {node} (the kubelet of {name}-2 is gone)")
    until(lambda: not sim.node_ready(node), "node NotReady")
    say(f"node-lifecycle controller marked {node} NotReady after {time.monotonic() - stopped:.1f}s")
    record = until(lambda: status_of(kube, name).get("lastRecovery"), "a recovery")
    say(f"{record['member']} lost: {record['reason']}")
    say(
        f"replacement {record['replacement']} created {time.monotonic() - stopped:.1f}s after the stop, "
        f"seeded from {record.get('snapshot') or 'an empty volume'}"
    )
    done = until(
        lambda: (status_of(kube, name).get("lastRecovery") or {}).get("readyAt") and ready(kube, name, 3), "ready"
    )
    record = status_of(kube, name)["lastRecovery"]
    data = sim.read(NAMESPACE, record["replacement"])
    say(
        f"{record['replacement']} Ready: recovery took {record['seconds']}s from detection; "
        f"{time.monotonic() - stopped:.1f}s from the node stop"
    )
    say(f"its volume started at write #{data['seq']} (the snapshot), so it catches up only #101-#105 from its peers")
    say(member_table(kube, name))
    assert done


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="phalanx-demo-") as workdir:
        sandbox = Sandbox(workdir=Path(workdir), say=say)
        say("starting a real control plane (etcd, kube-apiserver, controller-manager, scheduler) and the simulator")
        sandbox.start()
        say(f"control plane up in {sandbox.timings['control_plane']:.1f}s, sandbox in {sandbox.timings['total']:.1f}s")
        try:
            run(sandbox)
        finally:
            sandbox.stop()
            say("sandbox stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
