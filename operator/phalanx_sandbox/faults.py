"""Fault injection and data access for the simulated cluster: the handle tests and the CLI hold.

Everything goes through the API server, as declarations the simulator honours (annotations) or as the
real-world event itself (a deleted PersistentVolume is a lost disk). Nothing here talks to the
simulator process, so a test, the ``phalanx-sandbox`` command and a person with kubectl can all break
the same cluster the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from phalanx import kube as k
from phalanx.kube import Kube, Obj
from phalanx_sandbox.names import (
    CRASH,
    DATA,
    RESTORE_FAILS,
    SNAPSHOT_CLASS,
    SNAPSHOT_FAILS,
    STOPPED,
    ZONE_LABEL,
    volume_data,
)

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | Literal[False] | None], what: str, timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | Literal[False] | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class SimulatorHandle:
    """Break and inspect the simulated cluster."""

    kube: Kube

    # ------------------------------------------------------------ nodes and zones

    def nodes(self, zone: str | None = None) -> list[Obj]:
        selector = f"{ZONE_LABEL}={zone}" if zone else "type=phalanx-sim"
        return self.kube.items(k.NODES, selector=selector)

    def zones(self) -> list[str]:
        return sorted({n["metadata"]["labels"][ZONE_LABEL] for n in self.nodes()})

    def stop_node(self, name: str) -> None:
        """The node's kubelet dies: no more heartbeats, pods frozen as they are."""
        self.kube.patch(k.NODES, name, {"metadata": {"annotations": {STOPPED: "true"}}})

    def start_node(self, name: str) -> None:
        self.kube.patch(k.NODES, name, {"metadata": {"annotations": {STOPPED: None}}})

    def stop_zone(self, zone: str) -> list[str]:
        names = [n["metadata"]["name"] for n in self.nodes(zone)]
        for name in names:
            self.stop_node(name)
        return names

    def start_zone(self, zone: str) -> list[str]:
        names = [n["metadata"]["name"] for n in self.nodes(zone)]
        for name in names:
            self.start_node(name)
        return names

    def node_ready(self, name: str) -> bool:
        node = self.kube.get(k.NODES, name)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))

    # ------------------------------------------------------------ pods

    def crash_pod(self, namespace: str, name: str, *, loop: bool = False) -> None:
        """The pod's container exits: unready, restarted, ready again (or stuck, with ``loop``)."""
        value = "loop" if loop else f"crash-{time.monotonic_ns()}"
        self.kube.patch(k.PODS, name, {"metadata": {"annotations": {CRASH: value}}}, namespace)

    # ------------------------------------------------------------ volumes and data

    def volume_of(self, namespace: str, pvc: str) -> Obj | None:
        claim = self.kube.find(k.PVCS, pvc, namespace)
        volume = (claim or {}).get("spec", {}).get("volumeName")
        return self.kube.find(k.PVS, volume) if volume else None

    def lose_volume(self, namespace: str, pvc: str) -> str:
        """The disk behind a claim is gone: its PV is deleted, protection or not; the claim turns Lost."""
        pv = self.volume_of(namespace, pvc)
        if pv is None:
            raise LookupError(f"claim {namespace}/{pvc} has no bound volume")
        name: str = pv["metadata"]["name"]
        self.kube.delete(k.PVS, name)
        self.kube.patch(k.PVS, name, {"metadata": {"finalizers": None}})
        return name

    def read(self, namespace: str, pvc: str) -> dict[str, int]:
        """The data on the volume bound to a claim."""
        pv = self.volume_of(namespace, pvc)
        if pv is None:
            raise LookupError(f"claim {namespace}/{pvc} has no bound volume")
        return volume_data(pv)

    def write(self, namespace: str, pvc: str, seq: int, size: int | None = None) -> None:
        """An acknowledged write: the volume now holds sequence number ``seq`` (and ``size`` bytes)."""
        pv = self.volume_of(namespace, pvc)
        if pv is None:
            raise LookupError(f"claim {namespace}/{pvc} has no bound volume")
        data = volume_data(pv)
        data["seq"] = seq
        if size is not None:
            data["bytes"] = size
        self.kube.patch(k.PVS, pv["metadata"]["name"], {"metadata": {"annotations": {DATA: json.dumps(data)}}})

    def snapshot_data(self, namespace: str, snapshot: str) -> dict[str, int]:
        vs = self.kube.get(k.SNAPSHOTS, snapshot, namespace)
        content = self.kube.get(k.SNAPSHOT_CONTENTS, vs["status"]["boundVolumeSnapshotContentName"])
        return volume_data(content)

    # ------------------------------------------------------------ storage failure knobs

    def fail_restores_from(self, namespace: str, snapshot: str, fail: bool = True) -> None:
        value = "true" if fail else None
        self.kube.patch(k.SNAPSHOTS, snapshot, {"metadata": {"annotations": {RESTORE_FAILS: value}}}, namespace)

    def fail_snapshots(self, fail: bool = True, snapshot_class: str = SNAPSHOT_CLASS) -> None:
        value = "true" if fail else None
        self.kube.patch(k.SNAPSHOT_CLASSES, snapshot_class, {"metadata": {"annotations": {SNAPSHOT_FAILS: value}}})
