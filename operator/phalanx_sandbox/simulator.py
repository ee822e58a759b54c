"""The cluster simulator: kubelets, a CSI driver and the snapshot controller, played through the API.

The real control plane (``controlplane``) brings scheduling, garbage collection, node lifecycle and
volume binding; what it lacks is everything that runs on nodes or in storage. This module plays those
parts, kwok-style, and talks only to the API server, so what Phalanx sees is exactly what it would see
on a real cluster:

- **Nodes** across zones renew their Leases and report ``Ready``. A node annotated ``stopped`` stops
  both, and the real node-lifecycle controller marks it NotReady and taints it.
- **Pods** scheduled to a live node turn Running and Ready after a delay (the pod's
  ``sim.phalanx.dev/ready-after`` annotation, seconds). Graceful deletions are finished. A pod whose
  volume is lost reports not ready, as its application would. A pod annotated
  ``sim.phalanx.dev/exit-code`` is a one-shot: after the same delay its containers exit with that code
  (phase Succeeded for 0, else Failed), as a check such as a restore drill's verification would.
- **Volumes**: a StorageClass served by a CSI driver named ``sim.csi.phalanx.dev``; a PV per PVC,
  pinned to the zone of the node that the scheduler selected. Released volumes are deleted.
- **Snapshots**: the ``snapshot.storage.k8s.io/v1`` kinds; contents created, ``readyToUse`` after a
  delay; PVCs restored from a VolumeSnapshot ``dataSource``.
- **Data**: every PV carries ``sim.phalanx.dev/data`` (JSON: a write sequence number and a size) that
  snapshots copy and restores inherit, so tests can prove lineage and that nothing was lost.

Fault injection is declarative, through annotations; ``SimulatorHandle`` (in ``faults``) writes them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import itertools
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from phalanx import kube as k
from phalanx.kube import ApiError, Informer, Kube, Obj
from phalanx_sandbox.names import (
    CATCH_UP_FROM,
    CATCH_UP_RATE,
    CRASH,
    DATA,
    DRIVER,
    EXIT_CODE,
    READY_AFTER,
    RESTORE_FAILS,
    SELECTED_NODE,
    SNAPSHOT_CLASS,
    SNAPSHOT_DELAY,
    SNAPSHOT_FAILS,
    SNAPSHOT_FINALIZER,
    STOPPED,
    STORAGE_CLASS,
    ZONE_LABEL,
    volume_data,
)
from phalanx_sandbox.snapshot_crds import snapshot_crds

log = logging.getLogger("phalanx.simulator")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


class WorkQueue:
    """Keys to reconcile, each at most once in the queue and never by two workers at once.

    The same contract as client-go's workqueue: a key added while it is processed is processed again
    afterwards; ``add_after`` schedules a key for later (readiness delays, retries).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[str, str]] = []
        self._dirty: set[tuple[str, str]] = set()
        self._processing: set[tuple[str, str]] = set()
        self._timers: list[tuple[float, int, tuple[str, str]]] = []
        self._counter = itertools.count()
        self._closed = False

    def add(self, item: tuple[str, str]) -> None:
        with self._cond:
            if item in self._dirty:
                return
            self._dirty.add(item)
            if item not in self._processing:
                self._queue.append(item)
                self._cond.notify()

    def add_after(self, item: tuple[str, str], delay: float) -> None:
        if delay <= 0:
            self.add(item)
            return
        with self._cond:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._counter), item))
            self._cond.notify()

    def get(self) -> tuple[str, str] | None:
        with self._cond:
            while True:
                if self._closed:
                    return None
                moment = time.monotonic()
                while self._timers and self._timers[0][0] <= moment:
                    _, _, due = heapq.heappop(self._timers)
                    if due not in self._dirty:
                        self._dirty.add(due)
                        if due not in self._processing:
                            self._queue.append(due)
                if self._queue:
                    item = self._queue.pop(0)
                    self._processing.add(item)
                    self._dirty.discard(item)
                    return item
                wait = self._timers[0][0] - moment if self._timers else None
                self._cond.wait(wait)

    def done(self, item: tuple[str, str]) -> None:
        with self._cond:
            self._processing.discard(item)
            if item in self._dirty:
                self._queue.append(item)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass
class Config:
    """What the simulated cluster looks like and how fast it reacts."""

    zones: list[str] = field(default_factory=lambda: ["zone-a", "zone-b", "zone-c"])
    nodes_per_zone: int = 2
    pod_ready_after: float = 0.5
    snapshot_ready_after: float = 1.0
    lease_seconds: float = 1.0
    status_seconds: float = 10.0
    workers: int = 8
    node_pods: int = 1000


def node_name(zone: str, index: int) -> str:
    return f"sim-{zone}-{index}"


class Simulator:
    """Everything that would run on nodes or in storage, reacting to the API server."""

    def __init__(self, kube: Kube, config: Config | None = None) -> None:
        self.kube = kube
        self.config = config or Config()
        self.queue = WorkQueue()
        self.informers: dict[str, Informer] = {}
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.pod_seen: dict[str, float] = {}  # pod uid -> when it was first seen on a live node
        self.pod_crash: dict[str, str] = {}  # pod uid -> last crash annotation handled
        self.event_sent: dict[str, float] = {}  # rate limit of Warning events
        self.snapshot_bound: dict[str, float] = {}  # snapshot uid -> when its content was made
        self.caught_up_at: dict[str, float] = {}  # pod uid -> when it has copied what its peers hold
        self._reconcilers: dict[str, Callable[[str], None]] = {
            "nodes": self.reconcile_node,
            "pods": self.reconcile_pod,
            "persistentvolumeclaims": self.reconcile_pvc,
            "persistentvolumes": self.reconcile_pv,
            "volumesnapshots": self.reconcile_snapshot,
            "volumesnapshotcontents": self.reconcile_content,
            "volumesnapshotclasses": lambda key: None,
            "storageclasses": lambda key: None,
        }

    # ---------------------------------------------------------------- setup and lifecycle

    def install(self) -> None:
        """Cluster-scoped fixtures: snapshot CRDs, CSIDriver, StorageClass, VolumeSnapshotClass, nodes."""
        for crd in snapshot_crds():
            self.kube.ensure(k.CRDS, crd)
        self._wait_crds()
        self.kube.ensure(
            k.CSIDRIVERS,
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "CSIDriver",
                "metadata": {"name": DRIVER},
                "spec": {"attachRequired": False, "podInfoOnMount": False},
            },
        )
        self.kube.ensure(
            k.STORAGECLASSES,
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": DRIVER,
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer",
                "allowVolumeExpansion": True,
            },
        )
        self.kube.ensure(
            k.SNAPSHOT_CLASSES,
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotClass",
                "metadata": {
                    "name": SNAPSHOT_CLASS,
                    "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"},
                },
                "driver": DRIVER,
                "deletionPolicy": "Delete",
            },
        )
        for zone in self.config.zones:
            for index in range(self.config.nodes_per_zone):
                self.kube.ensure(k.NODES, self.node_manifest(zone, index))

    def _wait_crds(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.kube.listing(k.SNAPSHOT_CLASSES)
                self.kube.listing(k.SNAPSHOTS)
                self.kube.listing(k.SNAPSHOT_CONTENTS)
                return
            except ApiError:
                time.sleep(0.2)
        raise RuntimeError("snapshot CRDs were not served within 30s")

    def node_manifest(self, zone: str, index: int) -> Obj:
        name = node_name(zone, index)
        capacity = {
            "cpu": "64",
            "memory": "256Gi",
            "pods": str(self.config.node_pods),
            "ephemeral-storage": "1Ti",
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    ZONE_LABEL: zone,
                    "topology.kubernetes.io/region": "sim",
                    "type": "phalanx-sim",
                },
            },
            "spec": {},
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": self._node_conditions(),
                "nodeInfo": {
                    "kubeletVersion": "v1.20.2",
                    "kubeProxyVersion": "v1.20.2",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "containerRuntimeVersion": "sim://1.0",
                    "osImage": "phalanx simulator",
                    "kernelVersion": "sim",
                    "machineID": name,
                    "systemUUID": name,
                    "bootID": name,
                },
                "addresses": [{"type": "Hostname", "address": name}],
            },
        }

    @staticmethod
    def _node_conditions() -> list[Obj]:
        stamp = now_iso()
        quiet = [
            ("MemoryPressure", "KubeletHasSufficientMemory"),
            ("DiskPressure", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "KubeletHasSufficientPID"),
        ]
        conditions = [
            {
                "type": t,
                "status": "False",
                "reason": r,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
            for t, r in quiet
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "simulated kubelet is posting ready status",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
        )
        return conditions

    def start(self) -> None:
        for res in (
            k.NODES,
            k.PODS,
            k.PVCS,
            k.PVS,
            k.SNAPSHOTS,
            k.SNAPSHOT_CONTENTS,
            k.SNAPSHOT_CLASSES,
            k.STORAGECLASSES,
        ):
            informer = Informer(self.kube, res, self._changed)
            self.informers[res.plural] = informer
            informer.start()
        for informer in self.informers.values():
            informer.synced.wait(30)
        for index in range(self.config.workers):
            self._thread(self._work, f"sim-worker-{index}")
        self._thread(self._heartbeats, "sim-heartbeats")

    def _thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        self.queue.close()
        for informer in self.informers.values():
            informer.stop()

    def _changed(self, kind: str, key: str) -> None:
        self.queue.add((kind, key))
        if kind == "nodes":  # a node back from the dead: its kubelet reports its pods again
            for pod in self._pods_on(key):
                self.queue.add(("pods", k.key_of(pod)))
        elif kind == "persistentvolumeclaims":
            for pod in self._pods_using(key):
                self.queue.add(("pods", k.key_of(pod)))
        elif kind == "persistentvolumes":
            claim = (self.cache("persistentvolumes", key) or {}).get("spec", {}).get("claimRef")
            if claim:
                self.queue.add(("persistentvolumeclaims", f"{claim['namespace']}/{claim['name']}"))
        elif kind == "volumesnapshotcontents":
            ref = (self.cache(kind, key) or {}).get("spec", {}).get("volumeSnapshotRef") or {}
            if ref.get("name"):
                self.queue.add(("volumesnapshots", f"{ref.get('namespace')}/{ref['name']}"))
        elif kind == "volumesnapshots":  # restores waiting for this snapshot
            for pvc in self.informers["persistentvolumeclaims"].values() if self.informers else []:
                source = pvc["spec"].get("dataSource") or {}
                if (
                    source.get("kind") == "VolumeSnapshot"
                    and f"{pvc['metadata']['namespace']}/{source.get('name')}" == key
                ):
                    self.queue.add(("persistentvolumeclaims", k.key_of(pvc)))

    def cache(self, kind: str, key: str) -> Obj | None:
        informer = self.informers.get(kind)
        return informer.get(key) if informer else None

    def _pods_on(self, node: str) -> list[Obj]:
        informer = self.informers.get("pods")
        return [p for p in informer.values() if p["spec"].get("nodeName") == node] if informer else []

    def _pods_using(self, pvc_key: str) -> list[Obj]:
        informer = self.informers.get("pods")
        if not informer:
            return []
        namespace, name = pvc_key.split("/", 1)
        return [p for p in informer.values() if p["metadata"]["namespace"] == namespace and name in _claims(p)]

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            kind, key = item
            try:
                self._reconcilers[kind](key)
            except ApiError as error:
                if error.status not in (404, 409):
                    log.warning("%s %s: %s", kind, key, error)
                self.queue.add_after(item, 0.5)
            except Exception:
                log.exception("%s %s failed", kind, key)
                self.queue.add_after(item, 1.0)
            finally:
                self.queue.done(item)

    # ---------------------------------------------------------------- nodes

    def node_alive(self, name: str) -> bool:
        node = self.cache("nodes", name)
        if node is None or node["metadata"].get("deletionTimestamp"):
            return False
        return (node["metadata"].get("annotations") or {}).get(STOPPED) != "true"

    def _heartbeats(self) -> None:
        """Renew the Lease of every live node, as a kubelet does, so node-lifecycle sees it healthy."""
        while not self.stopping.wait(self.config.lease_seconds):
            for node in self.informers["nodes"].values():
                name = node["metadata"]["name"]
                if node["metadata"].get("labels", {}).get("type") != "phalanx-sim" or not self.node_alive(name):
                    continue
                try:
                    self._renew_lease(node)
                    self.queue.add(("nodes", name))
                except ApiError as error:
                    log.warning("lease of %s: %s", name, error)
                except Exception:
                    log.exception("lease of %s", name)

    def _renew_lease(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            self.kube.patch(k.LEASES, name, {"spec": {"renewTime": stamp}}, "kube-node-lease")
        except ApiError as error:
            if error.status != 404:
                raise
            self.kube.ensure(
                k.LEASES,
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": name,
                        "namespace": "kube-node-lease",
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}
                        ],
                    },
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": stamp},
                },
            )

    def reconcile_node(self, name: str) -> None:
        """A live node reports Ready=True, refreshing the heartbeat every ``status_seconds``."""
        node = self.cache("nodes", name)
        if node is None or not self.node_alive(name) or node["metadata"].get("labels", {}).get("type") != "phalanx-sim":
            return
        ready = next((c for c in node["status"].get("conditions", []) if c["type"] == "Ready"), None)
        fresh = (
            ready is not None
            and ready["status"] == "True"
            and time.time() - parse_time(ready["lastHeartbeatTime"]) < self.config.status_seconds
        )
        if fresh:
            assert ready is not None
            self.queue.add_after(
                ("nodes", name),
                self.config.status_seconds - (time.time() - parse_time(ready["lastHeartbeatTime"])),
            )
            return
        self.kube.patch(
            k.NODES, name, {"status": {"conditions": self._node_conditions()}}, sub="status", kind="strategic"
        )

    # ---------------------------------------------------------------- pods

    def reconcile_pod(self, key: str) -> None:
        pod = self.cache("pods", key)
        if pod is None:
            return
        node = pod["spec"].get("nodeName")
        if not node or not self.node_alive(node):
            return  # unscheduled, or its kubelet is gone: nothing on a dead node changes
        meta = pod["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        if meta.get("deletionTimestamp"):
            self.kube.delete(k.PODS, name, namespace, uid=uid, grace_seconds=0)
            self.pod_seen.pop(uid, None)
            return
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            return
        moment = time.monotonic()
        first = self.pod_seen.setdefault(uid, moment)
        annotations = meta.get("annotations") or {}
        crash = annotations.get(CRASH)
        if crash and crash != "loop" and self.pod_crash.get(uid) != crash:
            self.pod_crash[uid] = crash
            self.pod_seen[uid] = moment  # restarted: ready again after its delay
            self._set_pod_status(pod, ready=False, crashed=True)
            self.queue.add_after(("pods", key), self._ready_after(pod))
            return
        lost = [c for c in _claims(pod) if self._claim_lost(namespace, c)]
        delay = self._ready_after(pod) - (moment - self.pod_seen[uid] if uid in self.pod_seen else moment - first)
        want_ready = not lost and crash != "loop"
        exit_code = _exit_code(annotations)
        if exit_code is not None and not lost and delay <= 0:
            self._set_pod_exited(pod, exit_code)
            return
        if want_ready and delay <= 0 and not _pod_ready(pod):
            delay = self._catch_up(pod, moment)
        if want_ready and delay > 0:
            if pod["status"].get("phase") != "Running":
                self._set_pod_status(pod, ready=False)
            self.queue.add_after(("pods", key), delay)
            return
        if _pod_ready(pod) != want_ready or pod["status"].get("phase") != "Running":
            message = f"volume lost: {', '.join(lost)}" if lost else ""
            self._set_pod_status(pod, ready=want_ready, message=message)

    def _catch_up(self, pod: Obj, moment: float) -> float:
        """Seconds left copying from peers: the bytes its volume lacks over the pod's copy rate.

        Decided once, when the pod has started; when done, its volume holds what the fullest peer
        holds (the delta was copied), which is how tests see a member catch up.
        """
        notes = pod["metadata"].get("annotations") or {}
        label, rate = notes.get(CATCH_UP_FROM), float(notes.get(CATCH_UP_RATE) or 0)
        if not label or rate <= 0:
            return 0.0
        uid = pod["metadata"]["uid"]
        if uid not in self.caught_up_at:
            own, best = self._volume(pod), self._fullest_peer(pod, label)
            missing = max(0, best.get("bytes", 0) - own.get("bytes", 0)) if best else 0
            self.caught_up_at[uid] = moment + missing / rate
        left = self.caught_up_at[uid] - moment
        if left <= 0:
            best = self._fullest_peer(pod, label)
            pv = self._pv_of(pod)
            if best and pv is not None and volume_data(pv) != best:
                self.kube.patch(k.PVS, pv["metadata"]["name"], {"metadata": {"annotations": {DATA: json.dumps(best)}}})
        return left

    def _pv_of(self, pod: Obj) -> Obj | None:
        claims = _claims(pod)
        pvc = self.cache("persistentvolumeclaims", f"{pod['metadata']['namespace']}/{claims[0]}") if claims else None
        volume = (pvc or {}).get("spec", {}).get("volumeName")
        return self.cache("persistentvolumes", volume) if volume else None

    def _volume(self, pod: Obj) -> dict[str, int]:
        return volume_data(self._pv_of(pod))

    def _fullest_peer(self, pod: Obj, label: str) -> dict[str, int] | None:
        value = (pod["metadata"].get("labels") or {}).get(label)
        peers = [
            p
            for p in self.informers["pods"].values()
            if p["metadata"]["namespace"] == pod["metadata"]["namespace"]
            and p["metadata"]["uid"] != pod["metadata"]["uid"]
            and (p["metadata"].get("labels") or {}).get(label) == value
            and _pod_ready(p)
        ]
        volumes = [self._volume(p) for p in peers]
        return max(volumes, key=lambda d: (d.get("bytes", 0), d.get("seq", 0))) if volumes else None

    def _ready_after(self, pod: Obj) -> float:
        raw = (pod["metadata"].get("annotations") or {}).get(READY_AFTER)
        try:
            return float(raw) if raw is not None else self.config.pod_ready_after
        except ValueError:
            return self.config.pod_ready_after

    def _claim_lost(self, namespace: str, claim: str) -> bool:
        pvc = self.cache("persistentvolumeclaims", f"{namespace}/{claim}")
        return pvc is None or pvc["status"].get("phase") == "Lost"

    def _set_pod_status(self, pod: Obj, *, ready: bool, crashed: bool = False, message: str = "") -> None:
        stamp = now_iso()
        status = "True" if ready else "False"
        previous = {c["name"]: c for c in pod["status"].get("containerStatuses") or []}
        containers = []
        for container in pod["spec"]["containers"]:
            before = previous.get(container["name"], {})
            restarts = int(before.get("restartCount", 0)) + (1 if crashed else 0)
            entry: Obj = {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "sim://" + container.get("image", ""),
                "containerID": f"sim://{pod['metadata']['uid']}-{container['name']}-{restarts}",
                "ready": ready,
                "started": True,
                "restartCount": restarts,
                "state": {"running": {"startedAt": stamp}},
            }
            if crashed:
                entry["lastState"] = {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": stamp}}
            containers.append(entry)
        uid_hash = sum(pod["metadata"]["uid"].encode()) % 250
        patch = {
            "status": {
                "phase": "Running",
                "hostIP": "10.250.0.1",
                "podIP": f"10.244.{uid_hash}.{len(pod['metadata']['name']) % 250 + 1}",
                "startTime": pod["status"].get("startTime") or stamp,
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
                    {"type": "ContainersReady", "status": status, "lastTransitionTime": stamp},
                    {
                        "type": "Ready",
                        "status": status,
                        "lastTransitionTime": stamp,
                        "message": message or None,
                    },
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
                ],
                "containerStatuses": containers,
            }
        }
        self.kube.patch(
            k.PODS,
            pod["metadata"]["name"],
            patch,
            pod["metadata"]["namespace"],
            sub="status",
            kind="strategic",
        )

    def _set_pod_exited(self, pod: Obj, code: int) -> None:
        """A one-shot pod's containers exited with ``code``: Succeeded for 0, else Failed, for good."""
        stamp = now_iso()
        containers = [
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "sim://" + container.get("image", ""),
                "containerID": f"sim://{pod['metadata']['uid']}-{container['name']}-0",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "startedAt": pod["status"].get("startTime") or stamp,
                        "finishedAt": stamp,
                    }
                },
            }
            for container in pod["spec"]["containers"]
        ]
        patch = {
            "status": {
                "phase": "Succeeded" if code == 0 else "Failed",
                "startTime": pod["status"].get("startTime") or stamp,
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
                    {"type": "ContainersReady", "status": "False", "lastTransitionTime": stamp},
                    {"type": "Ready", "status": "False", "lastTransitionTime": stamp},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
                ],
                "containerStatuses": containers,
            }
        }
        meta = pod["metadata"]
        self.kube.patch(k.PODS, meta["name"], patch, meta["namespace"], sub="status", kind="strategic")

    # ---------------------------------------------------------------- volumes

    def _ours(self, pvc: Obj) -> bool:
        class_name = pvc["spec"].get("storageClassName")
        storage_class = self.cache("storageclasses", class_name) if class_name else None
        return storage_class is not None and storage_class.get("provisioner") == DRIVER

    def reconcile_pvc(self, key: str) -> None:
        """Provision a PV for a pending claim of our class, once the scheduler picked its node."""
        pvc = self.cache("persistentvolumeclaims", key)
        if pvc is None or pvc["metadata"].get("deletionTimestamp") or pvc["spec"].get("volumeName"):
            return
        if pvc["status"].get("phase") not in (None, "Pending") or not self._ours(pvc):
            return
        node_name_ = (pvc["metadata"].get("annotations") or {}).get(SELECTED_NODE)
        if not node_name_:
            return  # WaitForFirstConsumer: nothing to do before the scheduler chose a node
        node = self.cache("nodes", node_name_)
        if node is None:
            return
        zone = node["metadata"]["labels"].get(ZONE_LABEL, "")
        data: dict[str, int] = {"seq": 0, "bytes": 0}
        source = pvc["spec"].get("dataSource") or {}
        if source.get("kind") == "VolumeSnapshot":
            restored = self._restore_source(pvc, source["name"])
            if restored is None:
                return
            data = restored
        self._create_pv(pvc, zone, data)

    def _restore_source(self, pvc: Obj, snapshot_name: str) -> dict[str, int] | None:
        namespace = pvc["metadata"]["namespace"]
        snapshot = self.cache("volumesnapshots", f"{namespace}/{snapshot_name}")
        if snapshot is None:
            self._warn(pvc, "ProvisioningFailed", f"VolumeSnapshot {snapshot_name} not found")
            return None
        if (snapshot["metadata"].get("annotations") or {}).get(RESTORE_FAILS) == "true":
            self._warn(
                pvc,
                "ProvisioningFailed",
                f"failed to restore volume from snapshot {snapshot_name}: simulated restore failure",
            )
            return None
        status = snapshot.get("status") or {}
        if not status.get("readyToUse"):
            self._warn(pvc, "ProvisioningFailed", f"VolumeSnapshot {snapshot_name} is not ready to use")
            return None
        content = self.cache("volumesnapshotcontents", status.get("boundVolumeSnapshotContentName", ""))
        if content is None:
            return None
        return volume_data(content)

    def _create_pv(self, pvc: Obj, zone: str, data: dict[str, int]) -> None:
        meta = pvc["metadata"]
        name = f"pvc-{meta['uid']}"
        size = pvc["spec"]["resources"]["requests"]["storage"]
        self.kube.ensure(
            k.PVS,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": name,
                    "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER, DATA: json.dumps(data)},
                    "labels": {ZONE_LABEL: zone},
                },
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": pvc["spec"].get("accessModes") or ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Delete",
                    "storageClassName": pvc["spec"]["storageClassName"],
                    "volumeMode": pvc["spec"].get("volumeMode", "Filesystem"),
                    "claimRef": {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "namespace": meta["namespace"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                    "csi": {"driver": DRIVER, "volumeHandle": name, "fsType": "ext4"},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": ZONE_LABEL, "operator": "In", "values": [zone]}]}
                            ]
                        }
                    },
                },
            },
        )

    def reconcile_pv(self, name: str) -> None:
        """Delete a released volume of ours, as an external provisioner does for reclaimPolicy Delete."""
        pv = self.cache("persistentvolumes", name)
        if pv is None or pv["metadata"].get("deletionTimestamp"):
            return
        ours = (pv["metadata"].get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") == DRIVER
        if (
            ours
            and pv["status"].get("phase") == "Released"
            and pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
        ):
            self.kube.delete(k.PVS, name, uid=pv["metadata"]["uid"])

    # ---------------------------------------------------------------- snapshots

    def reconcile_snapshot(self, key: str) -> None:
        snapshot = self.cache("volumesnapshots", key)
        if snapshot is None:
            return
        meta = snapshot["metadata"]
        status = snapshot.get("status") or {}
        content_name = f"snapcontent-{meta['uid']}"
        if meta.get("deletionTimestamp"):
            self._delete_snapshot(snapshot, content_name)
            return
        if SNAPSHOT_FINALIZER not in (meta.get("finalizers") or []):
            self.kube.patch(
                k.SNAPSHOTS,
                meta["name"],
                [
                    {
                        "op": "add",
                        "path": "/metadata/finalizers",
                        "value": [*(meta.get("finalizers") or []), SNAPSHOT_FINALIZER],
                    }
                ],
                meta["namespace"],
                kind="json",
            )
            return
        class_name = snapshot["spec"].get("volumeSnapshotClassName") or SNAPSHOT_CLASS
        snapshot_class = self.cache("volumesnapshotclasses", class_name)
        if snapshot_class is None:
            self._snapshot_error(snapshot, f"VolumeSnapshotClass {class_name} not found")
            return
        class_notes = snapshot_class["metadata"].get("annotations") or {}
        if status.get("readyToUse"):
            return
        if class_notes.get(SNAPSHOT_FAILS) == "true":
            self._snapshot_error(snapshot, "simulated snapshot failure (the CSI driver refused to cut it)")
            return
        content = self.cache("volumesnapshotcontents", content_name)
        if content is None:
            self._cut(snapshot, snapshot_class, content_name)
            return
        made = self.snapshot_bound.setdefault(meta["uid"], time.monotonic())
        try:
            delay = float(class_notes.get(SNAPSHOT_DELAY, self.config.snapshot_ready_after))
        except ValueError:
            delay = self.config.snapshot_ready_after
        wait = made + delay - time.monotonic()
        if wait > 0:
            if not status.get("boundVolumeSnapshotContentName"):
                self._snapshot_status(snapshot, content, ready=False)
            self.queue.add_after(("volumesnapshots", key), wait)
            return
        self._snapshot_status(snapshot, content, ready=True)

    def _cut(self, snapshot: Obj, snapshot_class: Obj, content_name: str) -> None:
        """Freeze the source volume's data into a VolumeSnapshotContent."""
        meta = snapshot["metadata"]
        claim = (snapshot["spec"].get("source") or {}).get("persistentVolumeClaimName")
        pvc = self.cache("persistentvolumeclaims", f"{meta['namespace']}/{claim}") if claim else None
        volume = pvc["spec"].get("volumeName") if pvc else None
        pv = self.cache("persistentvolumes", volume) if volume else None
        if pvc is None or pv is None or pvc["status"].get("phase") != "Bound":
            self._snapshot_error(snapshot, f"source PersistentVolumeClaim {claim} is not bound")
            self.queue.add_after(("volumesnapshots", k.key_of(snapshot)), 1.0)
            return
        self.kube.ensure(
            k.SNAPSHOT_CONTENTS,
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotContent",
                "metadata": {"name": content_name, "annotations": {DATA: json.dumps(volume_data(pv))}},
                "spec": {
                    "deletionPolicy": snapshot_class.get("deletionPolicy", "Delete"),
                    "driver": DRIVER,
                    "source": {"volumeHandle": pv["spec"]["csi"]["volumeHandle"]},
                    "volumeSnapshotClassName": snapshot_class["metadata"]["name"],
                    "volumeSnapshotRef": {
                        "apiVersion": "snapshot.storage.k8s.io/v1",
                        "kind": "VolumeSnapshot",
                        "name": meta["name"],
                        "namespace": meta["namespace"],
                        "uid": meta["uid"],
                    },
                },
            },
        )
        self.snapshot_bound[meta["uid"]] = time.monotonic()

    def _snapshot_status(self, snapshot: Obj, content: Obj, *, ready: bool) -> None:
        pv = self.cache("persistentvolumes", content["spec"]["source"].get("volumeHandle", "")) or {}
        size = pv.get("spec", {}).get("capacity", {}).get("storage", "1Gi")
        created = content["metadata"]["creationTimestamp"]
        status = {
            "boundVolumeSnapshotContentName": content["metadata"]["name"],
            "creationTime": created,
            "readyToUse": ready,
            "restoreSize": size,
            "error": None,
        }
        meta = snapshot["metadata"]
        self.kube.patch(k.SNAPSHOTS, meta["name"], {"status": status}, meta["namespace"], sub="status")
        if ready:
            stamp = int(parse_time(created) * 1e9)
            self.kube.patch(
                k.SNAPSHOT_CONTENTS,
                content["metadata"]["name"],
                {
                    "status": {
                        "readyToUse": True,
                        "creationTime": stamp,
                        "snapshotHandle": content["metadata"]["name"],
                    }
                },
                sub="status",
            )

    def _snapshot_error(self, snapshot: Obj, message: str) -> None:
        meta = snapshot["metadata"]
        current = ((snapshot.get("status") or {}).get("error") or {}).get("message")
        if current == message:
            return
        self.kube.patch(
            k.SNAPSHOTS,
            meta["name"],
            {"status": {"readyToUse": False, "error": {"message": message, "time": now_iso()}}},
            meta["namespace"],
            sub="status",
        )
        self._warn(snapshot, "SnapshotCreationFailed", message, api_version="snapshot.storage.k8s.io/v1")

    def _delete_snapshot(self, snapshot: Obj, content_name: str) -> None:
        meta = snapshot["metadata"]
        content = self.cache("volumesnapshotcontents", content_name)
        if content is not None and content["spec"].get("deletionPolicy") == "Delete":
            self.kube.delete(k.SNAPSHOT_CONTENTS, content_name)
        finalizers = meta.get("finalizers") or []
        if SNAPSHOT_FINALIZER in finalizers:
            remaining = [f for f in finalizers if f != SNAPSHOT_FINALIZER]
            self.kube.patch(
                k.SNAPSHOTS,
                meta["name"],
                [
                    {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                    {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
                ],
                meta["namespace"],
                kind="json",
            )
        self.snapshot_bound.pop(meta["uid"], None)

    def reconcile_content(self, name: str) -> None:
        """A content whose snapshot is gone follows its deletion policy."""
        content = self.cache("volumesnapshotcontents", name)
        if content is None or content["metadata"].get("deletionTimestamp"):
            return
        ref = content["spec"].get("volumeSnapshotRef") or {}
        snapshot = self.cache("volumesnapshots", f"{ref.get('namespace')}/{ref.get('name')}")
        orphaned = snapshot is None or snapshot["metadata"]["uid"] != ref.get("uid")
        if orphaned and content["spec"].get("deletionPolicy") == "Delete" and ref.get("uid"):
            self.kube.delete(k.SNAPSHOT_CONTENTS, name, uid=content["metadata"]["uid"])

    # ---------------------------------------------------------------- events

    def _warn(self, obj: Obj, reason: str, message: str, api_version: str = "v1") -> None:
        """A Warning Event on obj, at most one every 10 s per object and reason (as kubelets do)."""
        meta = obj["metadata"]
        mark = f"{meta['uid']}/{reason}"
        if time.monotonic() - self.event_sent.get(mark, -1e9) < 10:
            return
        self.event_sent[mark] = time.monotonic()
        stamp = now_iso()
        namespace = meta.get("namespace") or "default"
        self.kube.ensure(
            k.EVENTS,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": api_version,
                    "kind": obj.get("kind", ""),
                    "name": meta["name"],
                    "namespace": meta.get("namespace"),
                    "uid": meta["uid"],
                },
                "reason": reason,
                "message": message,
                "type": "Warning",
                "source": {"component": "phalanx-simulator"},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            },
        )


def _claims(pod: Obj) -> list[str]:
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"].get("volumes") or []
        if v.get("persistentVolumeClaim")
    ]


def _exit_code(annotations: Obj) -> int | None:
    """The code a one-shot pod exits with (``sim.phalanx.dev/exit-code``), or None: it runs for good."""
    try:
        return int(annotations[EXIT_CODE]) if EXIT_CODE in annotations else None
    except ValueError:
        return 1  # a value that is no number is a broken check: it fails


def _pod_ready(pod: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def main(argv: list[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m phalanx_sandbox.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--zones", default="zone-a,zone-b,zone-c")
    parser.add_argument("--nodes-per-zone", type=int, default=2)
    parser.add_argument("--pod-ready-after", type=float, default=0.5)
    parser.add_argument("--snapshot-ready-after", type=float, default=1.0)
    parser.add_argument("--ready-file", help="touched once the simulator runs (for supervisors)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = Config(
        zones=[z for z in args.zones.split(",") if z],
        nodes_per_zone=args.nodes_per_zone,
        pod_ready_after=args.pod_ready_after,
        snapshot_ready_after=args.snapshot_ready_after,
    )
    simulator = Simulator(Kube.from_kubeconfig(args.kubeconfig), config)
    simulator.install()
    simulator.start()
    if args.ready_file:
        Path(args.ready_file).touch()
    log.info("simulator running: zones=%s nodes/zone=%d", config.zones, config.nodes_per_zone)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    done.wait()
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Config", "Simulator", "WorkQueue", "main", "volume_data"]
