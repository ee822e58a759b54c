"""The watch cache: the world that ``observe`` reads, kept from watches of the kinds Phalanx manages.

Before observe → plan → act. One ``Informer`` (list, then watch) per kind and watched namespace, each
in a thread of its own, keeps slim copies of the objects (the few fields ``observe`` reads), grouped
by the store that their ``phalanx.dev/store`` label names. So a store's pass costs its own objects,
never the cluster's, and memory grows by a few hundred bytes per object.

Why not Kopf's indexes: Kopf holds every handler of every kind until all indexed objects of all
kinds are indexed, and with a per-kind worker limit the waiting workers take every slot (no store is
reconciled once a kind has more objects than the limit); without a limit, each new object wakes every
waiting worker, and a restart takes time quadratic in the cluster's size. Here, stores start once
every kind's first LIST is in (``synced``), and nothing waits on anything else.

Every change wakes the stores it concerns, through ``on_wake`` (called from the informer threads):
a child wakes its store; a node wakes the stores with a pod on it, and every store when its zone's
health as a whole changes (the last ready node going, the first coming back, a zone's first or last
node), since zone outages and placement read whole zones.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from phalanx import build, names
from phalanx.heartbeats import Heartbeats
from phalanx.kube import LEASES, NODES, PODS, PVCS, PVS, SERVICES, SNAPSHOTS, Informer, Kube, Obj, Resource
from phalanx.observe import NodeView

log = logging.getLogger("phalanx.cache")

NODE_LEASES = "kube-node-lease"
"""Where kubelets renew their nodes' Leases."""

StoreKey = tuple[str, str]
"""(namespace, store name)."""
Wake = Callable[[Iterable[StoreKey] | None], None]
"""Called with the stores to wake, or None for every store."""


def _meta(obj: Obj, *annotations: str) -> Obj:
    """Identity, Phalanx's own labels (a template's labels would only cost memory), the controller
    reference and the annotations asked for."""
    meta = obj.get("metadata") or {}
    kept: Obj = {
        key: meta[key] for key in ("name", "namespace", "uid", "deletionTimestamp", "creationTimestamp") if key in meta
    }
    labels = meta.get("labels") or {}
    kept["labels"] = {k_: v for k_, v in labels.items() if k_.startswith(names.PREFIX) or k_ == names.NODE_ZONE_LABEL}
    controller = [
        {k_: r.get(k_) for k_ in ("kind", "name", "uid", "controller")}
        for r in meta.get("ownerReferences") or []
        if r.get("controller")
    ]
    if controller:
        kept["ownerReferences"] = controller
    found = {a: v for a, v in (meta.get("annotations") or {}).items() if a in annotations}
    if found:
        kept["annotations"] = found
    return kept


def _conditions(obj: Obj, *kinds: str) -> list[Obj]:
    return [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") in kinds]


def slim_pod(pod: Obj) -> Obj:
    """What observe reads of a member's pod: identity, labels, node, phase, readiness, scheduling; and
    of a restore drill's verification pod, how its containers exited (the drill's verdict)."""
    status = pod.get("status") or {}
    slim: Obj = {
        "metadata": _meta(pod),
        "spec": {"nodeName": (pod.get("spec") or {}).get("nodeName")},
        "status": {
            "phase": status.get("phase"),
            "conditions": _conditions(pod, "Ready", "PodScheduled"),
            "containerStatuses": [_container_status(c) for c in status.get("containerStatuses") or []],
        },
    }
    if status.get("reason"):
        slim["status"]["reason"] = status["reason"]
    return slim


def _container_status(container: Obj) -> Obj:
    """Restarts (the rollout's gate reads them) and, once it has exited, the exit code."""
    kept: Obj = {"restartCount": container.get("restartCount", 0)}
    terminated = (container.get("state") or {}).get("terminated")
    if terminated and terminated.get("exitCode") is not None:
        kept["state"] = {"terminated": {"exitCode": terminated["exitCode"]}}
    return kept


def slim_claim(pvc: Obj) -> Obj:
    """What observe reads of a member's claim: identity, labels, seed and retention marks, volume, phase."""
    spec = pvc.get("spec") or {}
    requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    return {
        "metadata": _meta(
            pvc,
            names.SEEDED_FROM_ANNOTATION,
            names.RETAINED_ANNOTATION,
            names.REPLACES_ANNOTATION,
            names.RETIRED_AT_ANNOTATION,
        ),
        "spec": {
            "volumeName": spec.get("volumeName"),
            "dataSource": spec.get("dataSource"),
            "storageClassName": spec.get("storageClassName"),
            "resources": {"requests": {"storage": requested}},
        },
        "status": {"phase": (pvc.get("status") or {}).get("phase")},
    }


def slim_snapshot(snapshot: Obj) -> Obj:
    """What observe reads of a VolumeSnapshot: identity, lineage labels, source, readiness, error."""
    status = snapshot.get("status") or {}
    return {
        "metadata": _meta(snapshot, names.SNAPSHOT_REQUEST),
        "spec": {"source": (snapshot.get("spec") or {}).get("source")},
        "status": {
            "readyToUse": status.get("readyToUse"),
            "error": status.get("error"),
            "creationTime": status.get("creationTime"),
        },
    }


def slim_child(kind: str) -> Callable[[Obj], Obj]:
    """A Service or PodDisruptionBudget as ``kind/name#digest`` of what Phalanx decides in it.
    ``kind`` is given, not read: LIST answers carry no ``kind`` on their items."""

    def slim(obj: Obj) -> Obj:
        if kind == "Service":
            headless = (obj.get("spec") or {}).get("clusterIP") == "None"
            child = "peers-service" if headless else "client-service"
        else:
            child = "disruption-budget"
        digest = build.child_fingerprint({**obj, "kind": kind})
        return {"metadata": _meta(obj), "child": f"{child}/{obj['metadata']['name']}#{digest}"}

    return slim


def slim_volume(pv: Obj) -> Obj:
    """What observe reads of a PersistentVolume: its claim, reclaim policy and the policy Phalanx took away."""
    spec = pv.get("spec") or {}
    claim = spec.get("claimRef") or {}
    return {
        "metadata": _meta(pv, names.RECLAIM_WAS_ANNOTATION, names.RETAINED_CLAIM_ANNOTATION),
        "spec": {
            "persistentVolumeReclaimPolicy": spec.get("persistentVolumeReclaimPolicy"),
            "claimRef": {k_: claim.get(k_) for k_ in ("namespace", "name", "uid")} if claim else None,
        },
        "status": {"phase": (pv.get("status") or {}).get("phase")},
    }


def slim_node(node: Obj) -> Obj:
    """What NodeView reads of a node: zone label, Ready condition, taints, cordon."""
    spec = node.get("spec") or {}
    return {
        "metadata": {"name": node["metadata"]["name"], "labels": node["metadata"].get("labels") or {}},
        "spec": {"taints": spec.get("taints") or [], "unschedulable": spec.get("unschedulable")},
        "status": {"conditions": _conditions(node, "Ready")},
    }


@dataclass(frozen=True)
class Kind:
    """One watched kind: where it lives and how it is slimmed."""

    name: str
    resource: Resource
    slim: Callable[[Obj], Obj]
    by_store: bool = True
    """Namespaced, selected by the store label, grouped by store (all but nodes)."""
    group_label: str = names.STORE_LABEL
    """The label that names the store an object belongs to (selected by, grouped by)."""


def kinds(budgets: Resource) -> tuple[Kind, ...]:
    """Everything ``observe`` reads; ``budgets`` is the PodDisruptionBudget version the cluster serves."""
    return (
        Kind("pods", PODS, slim_pod),
        # Restore drills' verification pods carry phalanx.dev/drill-of, never the store label (which
        # the store's Services and budget select by): a watch of their own.
        Kind("drills", PODS, slim_pod, group_label=names.DRILL_OF_LABEL),
        Kind("claims", PVCS, slim_claim),
        Kind("snapshots", SNAPSHOTS, slim_snapshot),
        Kind("services", SERVICES, slim_child("Service")),
        Kind("budgets", budgets, slim_child("PodDisruptionBudget")),
        Kind("nodes", NODES, slim_node, by_store=False),
        Kind("volumes", PVS, slim_volume, by_store=False),
    )


def slim_lease(lease: Obj) -> Obj:
    """What heartbeats read of a node's Lease: when it was renewed, and for how long."""
    spec = lease.get("spec") or {}
    return {
        "metadata": {"name": lease["metadata"]["name"], "namespace": lease["metadata"].get("namespace")},
        "spec": {"renewTime": spec.get("renewTime"), "leaseDurationSeconds": spec.get("leaseDurationSeconds")},
    }


def _stamp(value: str | None) -> datetime | None:
    """A Lease's MicroTime (RFC 3339 with microseconds)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _silenced(view: NodeView, since: datetime) -> NodeView:
    """A node whose heartbeats stopped: NotReady since its last one (the earlier of the two), and
    no place for a new member."""
    earliest = min(since, view.not_ready_since) if view.not_ready_since is not None else since
    return replace(view, ready=False, schedulable=False, not_ready_since=earliest, silent=True)


def _zone_health(views: Iterable[NodeView]) -> tuple[bool, bool, bool]:
    """What stores read of a zone as a whole: any node, any ready, any schedulable (not how many:
    a node pool growing by one node must not wake every store)."""
    listed = list(views)
    return bool(listed), any(v.ready for v in listed), any(v.schedulable for v in listed)


class WatchCache:
    """Slim copies of every watched object, grouped by store; nodes as ``NodeView``s."""

    def __init__(
        self,
        kube: Kube,
        budgets: Resource,
        namespaces: tuple[str, ...] = (),
        on_wake: Wake | None = None,
        delay: float = 0.0,
        store: str | None = None,
        heartbeats: bool = False,
    ) -> None:
        """``store``: only this store's children (``phalanx.dev/store=<store>``), for a reader of one
        store (the dry run); the operator selects every store's and groups them. ``heartbeats``:
        watch the nodes' Leases too, so that a node whose heartbeats stopped counts as NotReady
        before the node controller says so (``phalanx.heartbeats``)."""
        self.on_wake: Wake = on_wake or (lambda stores: None)
        self.lock = threading.Lock()
        self.informers: list[Informer] = []
        self.kinds = {kind.name: kind for kind in kinds(budgets)}
        self.groups: dict[str, dict[StoreKey, dict[str, Obj]]] = {name: {} for name in self.kinds}
        self.store_of: dict[str, dict[str, StoreKey]] = {name: {} for name in self.kinds}
        """Per kind: object key (``namespace/name``) -> the store it was grouped under."""
        self.pod_node: dict[str, str] = {}
        self.stores_on_node: dict[str, Counter[StoreKey]] = {}
        self.node_views: dict[str, NodeView] = {}
        self._sorted_nodes: tuple[NodeView, ...] | None = None
        self._informer_of: dict[str, list[Informer]] = {}
        for kind in self.kinds.values():
            scopes: tuple[str | None, ...] = namespaces if (namespaces and kind.by_store) else (None,)
            for namespace in scopes:
                informer = Informer(
                    kube,
                    kind.resource,
                    self._changed,
                    kind.name,
                    namespace=namespace,
                    selector=(f"{kind.group_label}={store}" if store else kind.group_label) if kind.by_store else None,
                    transform=kind.slim,
                    # Only the children a store creates lag (tests): nodes and snapshots keep time.
                    delay=delay if kind.name in ("pods", "claims") else 0.0,
                )
                self.informers.append(informer)
                self._informer_of.setdefault(kind.name, []).append(informer)
        self.beats: Heartbeats | None = Heartbeats() if heartbeats else None
        self._silent: frozenset[str] = frozenset()
        self._ticking = threading.Event()
        if heartbeats:
            informer = Informer(kube, LEASES, self._beat, "heartbeats", namespace=NODE_LEASES, transform=slim_lease)
            self.informers.append(informer)
            self._informer_of["heartbeats"] = [informer]

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        for informer in self.informers:
            informer.start()
        if self.beats is not None:
            threading.Thread(target=self._tick, name="phalanx-heartbeats", daemon=True).start()

    def stop(self) -> None:
        self._ticking.set()
        for informer in self.informers:
            informer.stop()

    def load(self) -> None:
        """Every kind listed once, no watch kept: the world as the synced cache of a running operator
        holds it (same selection, same slim copies, same grouping), for a reader that looks once and
        leaves (the dry run). Reads only."""
        for informer in self.informers:
            informer.load()

    def synced(self) -> bool:
        """Every kind's first LIST is in: only then may a store plan (an empty view would create).
        Heartbeats are not waited for: without them (no permission to read the nodes' Leases, an old
        cluster) the node controller's NotReady decides, as it always did."""
        return all(informer.synced.is_set() for informer in self.informers if informer.name != "heartbeats")

    # ------------------------------------------------------------------------------------ reading

    def of_store(self, kind: str, store: StoreKey) -> list[Obj]:
        with self.lock:
            return list(self.groups[kind].get(store, {}).values())

    def child_objects(self, store: StoreKey) -> list[Obj]:
        """The Services and PodDisruptionBudgets labelled as the store's (``child``: ``kind/name#digest``)."""
        return [c for kind in ("services", "budgets") for c in self.of_store(kind, store)]

    def nodes(self) -> tuple[NodeView, ...]:
        """Every node's view, sorted by name (rebuilt only after a node changed); a node whose
        heartbeats stopped is NotReady since its last one."""
        with self.lock:
            if self._sorted_nodes is None:
                self._sorted_nodes = tuple(sorted(self.node_views.values(), key=lambda v: v.name))
            views = self._sorted_nodes
        silent = self._silent_now()
        if not silent:
            return views
        return tuple(_silenced(v, silent[v.name]) if v.name in silent else v for v in views)

    # ------------------------------------------------------------------------------- heartbeats

    def _beat(self, kind: str, key: str) -> None:
        """A node's Lease was renewed (or went): remember when; wake nobody (the ticker does)."""
        assert self.beats is not None
        lease = next((found for i in self._informer_of[kind] if (found := i.get(key)) is not None), None)
        name = key.rpartition("/")[2]
        with self.lock:
            if lease is None:
                self.beats.forget(name)
            else:
                spec = lease.get("spec") or {}
                self.beats.seen(name, _stamp(spec.get("renewTime")), spec.get("leaseDurationSeconds"))

    def _tick(self, period: float = 0.5) -> None:
        """Silence is an absence of events: look every ``period`` and wake the stores on a node that
        went silent or came back (every store when a zone's health as a whole changed)."""
        while not self._ticking.wait(period):
            if not self.synced() or self.beats is None:
                continue
            with self.lock:
                silent = frozenset(self._silent_now())
                changed = silent ^ self._silent
                if not changed:
                    continue
                zones = {v.zone for n in changed if (v := self.node_views.get(n)) is not None}
                health_before = {z: self._zone_health(z, self._silent) for z in zones}
                self._silent = silent
                health_after = {z: self._zone_health(z, silent) for z in zones}
                affected = {s for n in changed for s in self.stores_on_node.get(n, ())}
            log.info("heartbeats stopped: %s; came back: %s", sorted(silent & changed), sorted(changed - silent))
            self.on_wake(None if health_before != health_after else affected)

    def _silent_now(self) -> dict[str, datetime]:
        """Silent nodes, once the Leases have been listed (an empty view is no evidence)."""
        informers = self._informer_of.get("heartbeats") or []
        if self.beats is None or not all(i.synced.is_set() for i in informers):
            return {}
        return self.beats.silent(datetime.now(UTC))

    def _zone_health(self, zone: str | None, silent: frozenset[str]) -> tuple[bool, bool, bool]:
        views = [v for v in self.node_views.values() if v.zone == zone]
        return _zone_health(_silenced(v, datetime.now(UTC)) if v.name in silent else v for v in views)

    def volume(self, name: str | None) -> Obj | None:
        """A PersistentVolume by name."""
        return self._informer_of["volumes"][0].get(name) if name else None

    def find(self, kind: str, namespace: str, name: str) -> Obj | None:
        """One object, as cached now (expectations read it); cluster-scoped kinds ignore ``namespace``."""
        if not self.kinds[kind].by_store:
            return self._informer_of[kind][0].get(name)
        key = f"{namespace}/{name}"
        with self.lock:  # the grouped view, which observe reads: never ahead of it
            store = self.store_of[kind].get(key)
            return self.groups[kind].get(store, {}).get(key) if store is not None else None

    # ----------------------------------------------------------------------------------- changes

    def _changed(self, kind: str, key: str) -> None:
        """An informer saw ``key`` change (or vanish): regroup it and wake whom it concerns."""
        informers = self._informer_of[kind]
        obj = next((found for i in informers if (found := i.get(key)) is not None), None)
        if kind == "nodes":
            self._node_changed(key, obj)
            return
        if kind == "volumes":
            self._volume_changed(obj)
            return
        labels = (obj or {}).get("metadata", {}).get("labels") or {}
        by = self.kinds[kind].group_label
        store = (key.partition("/")[0], labels[by]) if by in labels else None
        with self.lock:
            before = self.store_of[kind].pop(key, None)
            if before is not None:
                group = self.groups[kind].get(before, {})
                group.pop(key, None)
                if not group:
                    self.groups[kind].pop(before, None)
            if store is not None and obj is not None:
                self.store_of[kind][key] = store
                self.groups[kind].setdefault(store, {})[key] = obj
            if kind == "pods":
                self._place_pod(key, before, store, (obj or {}).get("spec", {}).get("nodeName"))
        if self.synced():
            self.on_wake({s for s in (before, store) if s is not None})

    def _place_pod(self, key: str, before: StoreKey | None, store: StoreKey | None, node: str | None) -> None:
        """Keep which stores have pods on which node (a node's trouble wakes only those)."""
        old_node = self.pod_node.pop(key, None)
        if old_node is not None and before is not None:
            counts = self.stores_on_node.get(old_node)
            if counts is not None:
                counts[before] -= 1
                if counts[before] <= 0:
                    del counts[before]
                if not counts:
                    del self.stores_on_node[old_node]
        if node and store is not None:
            self.pod_node[key] = node
            self.stores_on_node.setdefault(node, Counter())[store] += 1

    def _volume_changed(self, obj: Obj | None) -> None:
        """A volume changed (bound, pinned): wake the store whose claim it holds, if any."""
        claim = ((obj or {}).get("spec") or {}).get("claimRef") or {}
        with self.lock:
            store = self.store_of["claims"].get(f"{claim.get('namespace')}/{claim.get('name')}")
        if store is not None and self.synced():
            self.on_wake({store})

    def _node_changed(self, name: str, obj: Obj | None) -> None:
        view = NodeView.of(obj) if obj is not None else None
        with self.lock:
            old = self.node_views.get(name)
            if old == view:
                return  # a heartbeat: nothing any store reads changed
            zones = {v.zone for v in (old, view) if v is not None}
            health_before = {z: _zone_health(v for v in self.node_views.values() if v.zone == z) for z in zones}
            if view is None:
                self.node_views.pop(name, None)
            else:
                self.node_views[name] = view
            self._sorted_nodes = None
            health_after = {z: _zone_health(v for v in self.node_views.values() if v.zone == z) for z in zones}
            affected = set(self.stores_on_node.get(name, ()))
        if not self.synced():
            return
        if health_before != health_after:
            self.on_wake(None)
        elif affected:
            self.on_wake(affected)
