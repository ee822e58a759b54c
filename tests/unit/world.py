"""A tiny in-memory cluster for the planner's tests: raw children, and what a Plan makes of them.

Tests build a world of nodes, member pods, claims and snapshots in the shape the API server returns
them (and the watch cache hands to ``observe``), observe it as the handlers do (``observed``), plan at
the world's time (``World.now``), and carry the plan out with ``apply``: the state that act's
idempotent writes leave in a real cluster, with no API server. ``make_ready`` plays the kubelet, the
volume provisioner and the snapshot controller. Pure: every function returns a new world; the raw
dicts of a world are never changed in place. Time stands still unless a test moves ``World.clock``.

``apply`` does not raise on an action the cluster would refuse or ignore (a create of something that
exists, a delete of something gone or of a successor with another uid): act tolerates those too. It
records them in ``World.rejected`` instead, so that a test can assert a plan never wastes a write.
An action kind it does not know fails loudly: teach it here when the planner learns a new one.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from phalanx import names
from phalanx.models import ReplicatedStoreSpec
from phalanx.names import StoreRef
from phalanx.observe import Observed, observe
from phalanx.plan import (
    CreateMember,
    CreatePod,
    DeleteDrill,
    DeletePod,
    DeleteSnapshot,
    EnsureChild,
    ExpandVolume,
    PinVolume,
    Plan,
    RetireMember,
    Snapshot,
    StartDrill,
)

Raw = dict[str, Any]

STORE = StoreRef(name="orders", namespace="data", uid="5d1c0a57-0000-4000-8000-00000000cafe")
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""Time zero: timestamps are EPOCH plus a number of seconds."""
START = 3600
"""Seconds after EPOCH at which a new world's clock stands, so that objects can be made in its past."""


def stamp(seconds: int = 0) -> str:
    """An API timestamp (RFC 3339, whole seconds, Z) ``seconds`` after EPOCH."""
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def store_spec(replicas: int = 3, zones: list[str] | None = None, **wire: Any) -> ReplicatedStoreSpec:
    """A small valid spec; ``wire`` adds spec fields as users write them (camelCase)."""
    body: dict[str, Any] = {
        "replicas": replicas,
        "template": {"spec": {"containers": [{"name": "store", "image": "example/store:1.0"}]}},
        "storage": {"size": "1Gi"},
        **wire,
    }
    if zones is not None:
        body["zones"] = zones
    return ReplicatedStoreSpec.model_validate(body)


# ------------------------------------------------------------------------------------------------
# Builders of raw objects


def node(
    name: str,
    zone: str | None,
    *,
    ready: bool = True,
    since: int = 0,
    unschedulable: bool = False,
    taints: Iterable[Mapping[str, str]] = (),
) -> Raw:
    """A Node: its zone label, Ready condition (changed at ``since``), cordon flag and taints."""
    labels = {names.NODE_ZONE_LABEL: zone} if zone is not None else {}
    spec: Raw = {}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    condition = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp(since)}
    return {"metadata": {"name": name, "labels": labels}, "spec": spec, "status": {"conditions": [condition]}}


def pod(
    member: str,
    zone: str,
    *,
    store: str = STORE.name,
    uid: str | None = None,
    phase: str = "Running",
    ready: bool = False,
    ready_at: int = 0,
    node_name: str | None = None,
    terminating: bool = False,
    revision: str | None = None,
    created: int = 0,
    owner: str | None = STORE.uid,
) -> Raw:
    """A member's Pod, named after its member and labelled with store, member and zone, controlled
    by the store ``owner`` names (as build makes it; None: a pod someone else made)."""
    labels = {names.STORE_LABEL: store, names.MEMBER_LABEL: member, names.ZONE_LABEL: zone}
    if revision is not None:
        labels[names.REVISION_LABEL] = revision
    metadata: Raw = {
        "name": member,
        "uid": uid or f"pod-{member}",
        "labels": labels,
        "creationTimestamp": stamp(created),
    }
    if owner is not None:
        metadata["ownerReferences"] = [{"kind": "ReplicatedStore", "name": store, "uid": owner, "controller": True}]
    if terminating:
        metadata["deletionTimestamp"] = stamp(created + 1)
    status: Raw = {"phase": phase}
    if phase != "Pending" or ready:
        status["conditions"] = [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp(ready_at)}
        ]
    spec: Raw = {"nodeName": node_name} if node_name else {}
    return {"metadata": metadata, "spec": spec, "status": status}


def claim(
    member: str,
    zone: str,
    *,
    store: str = STORE.name,
    uid: str | None = None,
    phase: str = "Bound",
    volume: str | None = None,
    retired: bool = False,
    seeded_from: str | None = None,
    terminating: bool = False,
    created: int = 0,
    retained: bool = False,
    retired_at: int | None = None,
    replaces: str | None = None,
) -> Raw:
    """A member's PersistentVolumeClaim; a Bound or Lost one names a volume (``pv-<member>`` unless told);
    ``retained``: marked kept by the finalizer of a deleted Retain store; a ``retired`` one is dated
    ``retired_at`` (default: when it was created; -1: not dated, as an older Phalanx left it);
    ``replaces``: the member it was made to replace."""
    labels = {names.STORE_LABEL: store, names.MEMBER_LABEL: member, names.ZONE_LABEL: zone}
    if retired:
        labels[names.RETIRED_LABEL] = "true"
    metadata: Raw = {
        "name": member,
        "uid": uid or f"pvc-{member}",
        "labels": labels,
        "creationTimestamp": stamp(created),
    }
    annotations: dict[str, str] = {}
    if seeded_from:
        annotations[names.SEEDED_FROM_ANNOTATION] = seeded_from
    if retired and retired_at != -1:
        annotations[names.RETIRED_AT_ANNOTATION] = stamp(created if retired_at is None else retired_at)
    if replaces:
        annotations[names.REPLACES_ANNOTATION] = replaces
    if annotations:
        metadata["annotations"] = annotations
    if retained:
        metadata.setdefault("annotations", {})[names.RETAINED_ANNOTATION] = stamp(created)
    if terminating:
        metadata["deletionTimestamp"] = stamp(created + 1)
    spec: Raw = {}
    if volume or phase in ("Bound", "Lost"):  # a Lost claim still names the volume that vanished
        spec["volumeName"] = volume or f"pv-{member}"
    return {"metadata": metadata, "spec": spec, "status": {"phase": phase}}


def volume_snapshot(
    name: str,
    member: str,
    zone: str,
    *,
    store: str = STORE.name,
    uid: str | None = None,
    created: int = 0,
    store_uid: str = STORE.uid,
) -> Raw:
    """A VolumeSnapshot of a member's volume, just taken (not ready to use yet), labelled with the
    store's name and the uid of the store's incarnation that took it, as act labels it."""
    labels = {
        names.STORE_LABEL: store,
        names.STORE_UID_LABEL: store_uid,
        names.MEMBER_LABEL: member,
        names.ZONE_LABEL: zone,
    }
    metadata: Raw = {"name": name, "uid": uid or f"snap-{name}", "labels": labels, "creationTimestamp": stamp(created)}
    return {"metadata": metadata, "spec": {}, "status": {"readyToUse": False}}


def drill_claim(
    name: str,
    zone: str,
    snapshot: str,
    *,
    store: str = STORE.name,
    uid: str | None = None,
    phase: str = "Pending",
    created: int = 0,
    terminating: bool = False,
) -> Raw:
    """A restore drill's claim, as act makes it: labelled with the store and as a drill, restored from
    ``snapshot`` (a Bound one names its volume)."""
    labels = {names.STORE_LABEL: store, names.DRILL_LABEL: "true", names.ZONE_LABEL: zone}
    metadata: Raw = {
        "name": name,
        "uid": uid or f"pvc-{name}",
        "labels": labels,
        "annotations": {names.SEEDED_FROM_ANNOTATION: snapshot},
        "creationTimestamp": stamp(created),
    }
    if terminating:
        metadata["deletionTimestamp"] = stamp(created + 1)
    spec: Raw = {"dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot}}
    if phase in ("Bound", "Lost"):
        spec["volumeName"] = f"pv-{name}"
    return {"metadata": metadata, "spec": spec, "status": {"phase": phase}}


def drill_pod(
    name: str,
    zone: str,
    *,
    store: str = STORE.name,
    uid: str | None = None,
    phase: str = "Pending",
    exit_code: int | None = None,
    created: int = 0,
    owner: str | None = STORE.uid,
    terminating: bool = False,
) -> Raw:
    """A restore drill's verification pod, as act makes it (``phalanx.dev/drill-of``, not the store
    label); ``exit_code``: its container has exited with it."""
    labels = {names.DRILL_OF_LABEL: store, names.DRILL_LABEL: "true", names.ZONE_LABEL: zone}
    metadata: Raw = {"name": name, "uid": uid or f"pod-{name}", "labels": labels, "creationTimestamp": stamp(created)}
    if owner is not None:
        metadata["ownerReferences"] = [{"kind": "ReplicatedStore", "name": store, "uid": owner, "controller": True}]
    if terminating:
        metadata["deletionTimestamp"] = stamp(created + 1)
    status: Raw = {"phase": phase}
    if exit_code is not None:
        status["containerStatuses"] = [{"restartCount": 0, "state": {"terminated": {"exitCode": exit_code}}}]
    return {"metadata": metadata, "spec": {}, "status": status}


def final_snapshot(name: str, member: str, *, ready: bool, store_uid: str = STORE.uid) -> Raw:
    """A final VolumeSnapshot of a member's claim, as the finalizer takes it (deletionPolicy Snapshot)."""
    snap = volume_snapshot(name, member, "zone-a", store_uid=store_uid)
    snap["metadata"]["labels"][names.FINAL_LABEL] = "true"
    snap["spec"] = {"source": {"persistentVolumeClaimName": member}}
    snap["status"] = {"readyToUse": ready}
    return snap


# ------------------------------------------------------------------------------------------------
# The world


@dataclass(frozen=True)
class World:
    """One store's children and the cluster's nodes, at one moment."""

    store: StoreRef = STORE
    nodes: tuple[Raw, ...] = ()
    pods: tuple[Raw, ...] = ()
    claims: tuple[Raw, ...] = ()
    snapshots: tuple[Raw, ...] = ()
    children: frozenset[str] = frozenset()
    """The Services and PodDisruptionBudget that exist, as the handlers' indexes name them: ``kind/name``."""
    clock: int = START
    """Seconds since EPOCH: the world's present."""
    writes: int = 0
    """Every apply counts one: new objects get uids that a successor of the same name never shares."""
    rejected: tuple[str, ...] = field(default=())
    """Actions the cluster would have refused or ignored: a plan that wastes a write is visible here."""
    foreign: frozenset[str] = frozenset()
    """Uids of claims and snapshots that Phalanx did not create (everything else in the world it did)."""
    drill_pods: tuple[Raw, ...] = ()
    """Restore drills' verification pods (labelled ``phalanx.dev/drill-of``, watched apart)."""

    @property
    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.clock)

    def pod(self, member: str) -> Raw | None:
        return next((p for p in self.pods if p["metadata"]["name"] == member), None)

    def pods_per_member(self) -> Counter[str]:
        return Counter(p["metadata"]["labels"][names.MEMBER_LABEL] for p in self.pods)


def nodes_in(zones: Iterable[str], per_zone: int = 1) -> tuple[Raw, ...]:
    """Healthy, schedulable nodes: ``per_zone`` in every zone, named ``node-<zone>-<i>``."""
    return tuple(node(f"node-{zone}-{i}", zone) for zone in zones for i in range(per_zone))


def empty_world(zones: Iterable[str] = ("zone-a", "zone-b", "zone-c"), *, extra_nodes: Iterable[Raw] = ()) -> World:
    """A cluster with a healthy node in every zone and nothing of the store yet."""
    return World(nodes=nodes_in(zones) + tuple(extra_nodes))


def with_members(world: World, *members: tuple[int, str], ready: bool = True) -> World:
    """Members ``(serial, zone)``: a bound claim and a pod running on ``node-<zone>-0`` (ready unless told)."""
    pods, claims = list(world.pods), list(world.claims)
    for serial, zone in members:
        name = names.member_name(world.store.name, serial)
        pods.append(pod(name, zone, ready=ready, node_name=f"node-{zone}-0", created=serial))
        claims.append(claim(name, zone, created=serial))
    return replace(world, pods=tuple(pods), claims=tuple(claims))


def owned_record(world: World) -> dict[str, Any]:
    """``status.owned`` as act keeps it: every claim and snapshot of the world but the foreign ones."""

    def entries(objs: Iterable[Raw]) -> list[dict[str, str]]:
        return [
            {"name": o["metadata"]["name"], "uid": o["metadata"]["uid"]}
            for o in objs
            if o["metadata"]["uid"] not in world.foreign
        ]

    lineage = [  # this incarnation's own, not a predecessor's nor the final ones of a deletion
        s
        for s in world.snapshots
        if s["metadata"]["labels"].get(names.STORE_UID_LABEL) == world.store.uid
        and s["metadata"]["labels"].get(names.FINAL_LABEL) != "true"
    ]
    return {"claims": entries(world.claims), "snapshots": entries(lineage)}


def observed(
    world: World,
    status: Mapping[str, Any] | None = None,
    generation: int = 1,
    annotations: Mapping[str, str] | None = None,
) -> Observed:
    """The world as the planner sees it, observed exactly as the handlers do. ``status.owned`` is the
    world's record (act records every creation in status as it makes it; ``World.foreign`` it did not)."""
    status = {**(status or {}), "owned": owned_record(world)}
    return observe(
        world.store,
        generation,
        status,
        pods=world.pods,
        claims=world.claims,
        nodes=world.nodes,
        children=world.children,
        snapshots=world.snapshots,
        annotations=dict(annotations or {}),
        drill_pods=world.drill_pods,
    )


# ------------------------------------------------------------------------------------------------
# Carrying out a plan


def apply(world: World, plan: Plan) -> World:
    """The world after act has carried out every action of ``plan``, in order, as act does."""
    writes = world.writes + 1
    now = world.clock
    pods = {p["metadata"]["name"]: p for p in world.pods}
    claims = {c["metadata"]["name"]: c for c in world.claims}
    snapshots = {s["metadata"]["name"]: s for s in world.snapshots}
    drill_pods = {p["metadata"]["name"]: p for p in world.drill_pods}
    children = set(world.children)
    rejected = list(world.rejected)

    def create(objects: dict[str, Raw], name: str, what: str, made: Raw) -> None:
        if name in objects:
            rejected.append(f"create {what} {name}: exists")
        else:
            objects[name] = made

    def delete(objects: dict[str, Raw], name: str, uid: str, what: str) -> None:
        found = objects.get(name)
        if found is None or found["metadata"]["uid"] != uid:
            rejected.append(f"delete {what} {name} (uid {uid}): gone")
        else:
            del objects[name]

    revision = plan.status.update_revision  # act labels every pod it makes with the spec's revision

    def new_pod(member: str, zone: str) -> Raw:
        return pod(member, zone, uid=f"pod-{member}-{writes}", phase="Pending", created=now, revision=revision)

    for action in plan.actions:
        match action:
            case EnsureChild(child=child, name=name):
                key = f"{child}/{name}"
                if key in children:
                    rejected.append(f"create {key}: exists")
                children.add(key)
            case CreateMember(member=member, zone=zone, snapshot=snapshot, replaces=replaces):
                made = claim(
                    member,
                    zone,
                    uid=f"pvc-{member}-{writes}",
                    phase="Pending",
                    seeded_from=snapshot,
                    created=now,
                    replaces=replaces,
                )
                create(claims, member, "claim", made)
                create(pods, member, "pod", new_pod(member, zone))
            case CreatePod(member=member, zone=zone):
                create(pods, member, "pod", new_pod(member, zone))
                if member not in claims:
                    rejected.append(f"create pod {member}: its claim does not exist")
            case DeletePod(member=member, uid=uid):
                delete(pods, member, uid, "pod")
            case RetireMember(member=member, pod_uid=pod_uid, claim_uid=claim_uid, delete_volume=delete_volume):
                if claim_uid is not None:  # act marks the claim retired (by name) before anything else
                    if member in claims:
                        retired = copy.deepcopy(claims[member])
                        retired["metadata"]["labels"][names.RETIRED_LABEL] = "true"
                        if not delete_volume:  # dated, as act dates a volume that stays
                            retired["metadata"].setdefault("annotations", {})[names.RETIRED_AT_ANNOTATION] = stamp(now)
                        claims[member] = retired
                    else:
                        rejected.append(f"retire claim {member}: gone")
                if pod_uid is not None:
                    delete(pods, member, pod_uid, "pod")
                if delete_volume and claim_uid is not None:
                    delete(claims, member, claim_uid, "claim")
            case Snapshot(member=member, zone=zone, name=name):
                create(
                    snapshots, name, "snapshot", volume_snapshot(name, member, zone, uid=f"snap-{writes}", created=now)
                )
            case DeleteSnapshot(name=name, uid=uid):
                delete(snapshots, name, uid, "snapshot")
            case PinVolume():
                pass  # PersistentVolumes are not part of the world
            case ExpandVolume(member=member, size=size):
                grown = copy.deepcopy(claims[member])
                grown["spec"].setdefault("resources", {}).setdefault("requests", {})["storage"] = size
                claims[member] = grown
            case StartDrill(name=name, zone=zone, snapshot=snapshot, verify=verify):
                started = False  # carried out again only for a pod that went missing: the claim stays
                if name not in claims:
                    claims[name] = drill_claim(name, zone, snapshot, uid=f"pvc-{name}-{writes}", created=now)
                    started = True
                if verify and name not in drill_pods:
                    drill_pods[name] = drill_pod(name, zone, uid=f"pod-{name}-{writes}", created=now)
                    started = True
                if not started:
                    rejected.append(f"start drill {name}: exists")
            case DeleteDrill(name=name, pod_uid=pod_uid, claim_uid=claim_uid):
                if pod_uid is not None:
                    delete(drill_pods, name, pod_uid, "drill pod")
                if claim_uid is not None:
                    delete(claims, name, claim_uid, "drill claim")
            case _:
                raise TypeError(f"world.apply does not know {type(action).__name__}: teach it")
    return replace(
        world,
        pods=tuple(pods.values()),
        claims=tuple(claims.values()),
        snapshots=tuple(snapshots.values()),
        drill_pods=tuple(drill_pods.values()),
        children=frozenset(children),
        writes=writes,
        rejected=tuple(rejected),
    )


def make_ready(world: World) -> World:
    """Every claim bound, every snapshot ready, every pod running and ready on a node of its zone."""
    pods = []
    for raw in world.pods:
        if raw["metadata"].get("deletionTimestamp"):
            pods.append(raw)
            continue
        ready = copy.deepcopy(raw)
        zone = ready["metadata"]["labels"][names.ZONE_LABEL]
        ready["spec"]["nodeName"] = ready["spec"].get("nodeName") or f"node-{zone}-0"
        if not any(c["status"] == "True" for c in ready["status"].get("conditions") or []):
            ready["status"] = {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": stamp(world.clock)}],
            }
        pods.append(ready)
    claims = []
    for raw in world.claims:
        bound = copy.deepcopy(raw)
        if bound["status"]["phase"] == "Pending":
            bound["status"]["phase"] = "Bound"
            bound["spec"]["volumeName"] = f"pv-{raw['metadata']['name']}"
        claims.append(bound)
    snapshots = []
    for raw in world.snapshots:
        taken = copy.deepcopy(raw)
        taken["status"] = {"readyToUse": True, "creationTime": raw["metadata"]["creationTimestamp"]}
        snapshots.append(taken)
    return replace(world, pods=tuple(pods), claims=tuple(claims), snapshots=tuple(snapshots))


def make_unready(world: World, members: Iterable[str]) -> World:
    """The named members' pods keep running but fail their readiness probe from now on."""
    unready = set(members)
    pods = []
    for raw in world.pods:
        if raw["metadata"]["name"] in unready and not raw["metadata"].get("deletionTimestamp"):
            raw = copy.deepcopy(raw)
            raw["status"] = {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": stamp(world.clock)}],
            }
        pods.append(raw)
    return replace(world, pods=tuple(pods))


def zones_down(world: World, zones: Iterable[str]) -> World:
    """The nodes of ``zones`` stop reporting (NotReady from now on); every other node is Ready. Their
    pods keep their last reported status, as they do until the node controller marks them."""
    down = set(zones)
    nodes = []
    for raw in world.nodes:
        changed = copy.deepcopy(raw)
        ready = raw["metadata"]["labels"].get(names.NODE_ZONE_LABEL) not in down
        changed["status"] = {
            "conditions": [{"type": "Ready", "status": str(ready), "lastTransitionTime": stamp(world.clock)}]
        }
        nodes.append(changed)
    return replace(world, nodes=tuple(nodes))
