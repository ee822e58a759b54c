"""Observe: one immutable, typed view of a store's world, built from what the watch cache holds.

First step of observe → plan → act. The pass hands over plain dicts (pods, PVCs, snapshots, volumes,
Services, PodDisruptionBudgets) that the cache collected from watch events; this module turns them into
frozen values with query methods, so that the planner never digs through raw dicts and never calls
the API. Pure: no I/O, no kopf or kubernetes imports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from phalanx import names
from phalanx.models import (
    MAX_REPLICAS,
    Condition,
    MemberStatus,
    OwnedObject,
    OwnedStatus,
    ReplicatedStoreStatus,
    ZoneStatus,
)
from phalanx.names import StoreRef

Raw = Mapping[str, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNKNOWN_ZONE = "unknown"
"""The zone of a member whose own labels lost it (a user's edit): reported, never written as null."""

# Taints under which a node takes no new member pods (and, for NoExecute, keeps none).
_BLOCKING_TAINT_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _written_time(value: str | None) -> datetime | None:
    """A time in an annotation, which anyone who may edit the object can write: None unless it parses
    as an aware RFC 3339 time (a careless edit leaves the object undated, it does not stop observe)."""
    try:
        parsed = _time(value)
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _condition(obj: Raw, kind: str) -> Raw | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def _unscheduled_message(pod: Raw) -> str | None:
    scheduled = _condition(pod, "PodScheduled") or {}
    if scheduled.get("status") != "False":
        return None
    return str(scheduled.get("message") or scheduled.get("reason") or "") or None


@dataclass(frozen=True)
class PodView:
    """A member's pod, as far as Phalanx cares."""

    name: str
    uid: str
    node: str | None
    phase: str
    ready: bool
    ready_since: datetime | None
    terminating: bool
    revision: str | None
    created: datetime | None
    unschedulable: bool = False
    """The scheduler found no node for it (yet): nothing downstream, a restore included, has begun."""
    waiting: str | None = None
    """Why it is not scheduled, in the scheduler's words (when it is not)."""
    restarts: int = 0
    """Restarts of its containers, all told: the rollout's health gate fails a reading after one."""

    @classmethod
    def of(cls, pod: Raw) -> PodView:
        meta, status = pod["metadata"], pod.get("status") or {}
        ready = _condition(pod, "Ready")
        is_ready = bool(ready and ready.get("status") == "True")
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            node=(pod.get("spec") or {}).get("nodeName"),
            phase=status.get("phase") or "Pending",
            ready=is_ready,
            ready_since=_time(ready.get("lastTransitionTime")) if ready and is_ready else None,
            terminating=bool(meta.get("deletionTimestamp")),
            revision=(meta.get("labels") or {}).get(names.REVISION_LABEL),
            created=_time(meta.get("creationTimestamp")),
            unschedulable=(_condition(pod, "PodScheduled") or {}).get("reason") == "Unschedulable",
            waiting=_unscheduled_message(pod),
            restarts=sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or []),
        )

    @property
    def finished(self) -> bool:
        """Its containers exited for good: the pod will never become ready again."""
        return self.phase in ("Succeeded", "Failed")


@dataclass(frozen=True)
class ClaimView:
    """A member's PersistentVolumeClaim: the member's data."""

    name: str
    uid: str
    phase: str
    volume: str | None
    zone: str | None
    retired: bool
    seeded_from: str | None
    terminating: bool
    created: datetime | None = None
    size: str | None = None
    """The storage it requests (as written)."""
    storage_class: str | None = None
    reclaim_policy: str | None = None
    """Its bound PersistentVolume's reclaim policy (None: not bound, or the volume is not in view)."""
    retained: bool = False
    """Marked kept by the finalizer of a store deleted with deletionPolicy Retain."""
    retired_at: datetime | None = None
    """When it was retired (None: not retired, or retired by a version that did not record it)."""
    replaces: str | None = None
    """The member it was made to replace."""

    @classmethod
    def of(cls, pvc: Raw, volume: Raw | None = None) -> ClaimView:
        meta = pvc["metadata"]
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        spec = pvc.get("spec") or {}
        return cls(
            size=((spec.get("resources") or {}).get("requests") or {}).get("storage"),
            storage_class=spec.get("storageClassName"),
            reclaim_policy=((volume or {}).get("spec") or {}).get("persistentVolumeReclaimPolicy"),
            retained=names.RETAINED_ANNOTATION in annotations,
            retired_at=_written_time(annotations.get(names.RETIRED_AT_ANNOTATION)),
            replaces=annotations.get(names.REPLACES_ANNOTATION) or None,
            name=meta["name"],
            uid=meta.get("uid", ""),
            phase=(pvc.get("status") or {}).get("phase") or "Pending",
            volume=(pvc.get("spec") or {}).get("volumeName") or None,
            zone=labels.get(names.ZONE_LABEL),
            retired=labels.get(names.RETIRED_LABEL) == "true",
            seeded_from=annotations.get(names.SEEDED_FROM_ANNOTATION) or None,
            terminating=bool(meta.get("deletionTimestamp")),
            created=_time(meta.get("creationTimestamp")),
        )

    @property
    def lost(self) -> bool:
        return self.phase == "Lost"


@dataclass(frozen=True)
class NodeView:
    """A node: its zone and whether new member pods can land on it."""

    name: str
    zone: str | None
    ready: bool
    schedulable: bool
    not_ready_since: datetime | None = None
    """When its Ready condition left True (None while ready)."""
    silent: bool = False
    """NotReady by its heartbeats (its Lease stopped being renewed), before the node controller says
    so; ``not_ready_since`` is then its last renewal (see ``phalanx.heartbeats``)."""

    @classmethod
    def of(cls, node: Raw) -> NodeView:
        meta, spec = node["metadata"], node.get("spec") or {}
        ready = _condition(node, "Ready")
        is_ready = bool(ready and ready.get("status") == "True")
        blocked = any(t.get("effect") in _BLOCKING_TAINT_EFFECTS for t in spec.get("taints") or [])
        return cls(
            name=meta["name"],
            zone=(meta.get("labels") or {}).get(names.NODE_ZONE_LABEL),
            ready=is_ready,
            schedulable=is_ready and not spec.get("unschedulable") and not blocked,
            not_ready_since=None if is_ready else _time((ready or {}).get("lastTransitionTime")),
        )


@dataclass(frozen=True)
class SnapshotView:
    """One of the store's VolumeSnapshots: a point in its lineage."""

    name: str
    uid: str
    member: str | None
    zone: str | None
    ready: bool
    error: str | None
    created: datetime | None
    terminating: bool
    request: str | None
    """The on-demand request it answers (the store's snapshot-request annotation), if any."""

    @classmethod
    def of(cls, snapshot: Raw) -> SnapshotView:
        meta, status = snapshot["metadata"], snapshot.get("status") or {}
        labels = meta.get("labels") or {}
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            member=labels.get(names.MEMBER_LABEL),
            zone=labels.get(names.ZONE_LABEL),
            ready=bool(status.get("readyToUse")),
            error=(status.get("error") or {}).get("message"),
            created=_time(status.get("creationTime")) or _time(meta.get("creationTimestamp")),
            terminating=bool(meta.get("deletionTimestamp")),
            request=(meta.get("annotations") or {}).get(names.SNAPSHOT_REQUEST),
        )

    @property
    def failed(self) -> bool:
        return self.error is not None and not self.ready


@dataclass(frozen=True)
class DrillView:
    """One restore drill of the store: its throwaway claim and verification pod (either may be gone
    already). Never a member: nothing that decides about members reads it."""

    name: str
    claim: ClaimView | None
    pod: PodView | None
    exit_codes: tuple[int, ...] = ()
    """Exit codes of the verification pod's containers that have terminated."""
    pod_reason: str | None = None
    """Why the pod failed, in the kubelet's word (Evicted, ...), when it says."""

    @classmethod
    def of(cls, name: str, claim: Raw | None, pod: Raw | None) -> DrillView:
        statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
        codes = tuple(
            int(terminated["exitCode"])
            for c in statuses
            if (terminated := (c.get("state") or {}).get("terminated")) and terminated.get("exitCode") is not None
        )
        return cls(
            name=name,
            claim=ClaimView.of(claim) if claim is not None else None,
            pod=PodView.of(pod) if pod is not None else None,
            exit_codes=codes,
            pod_reason=((pod or {}).get("status") or {}).get("reason") or None,
        )

    @property
    def zone(self) -> str | None:
        return self.claim.zone if self.claim is not None else None

    @property
    def snapshot(self) -> str | None:
        """The snapshot it restores (its claim says so)."""
        return self.claim.seeded_from if self.claim is not None else None

    @property
    def started(self) -> datetime | None:
        """When it began: its claim's creation (its pod's, when the claim is gone)."""
        if self.claim is not None and self.claim.created is not None:
            return self.claim.created
        return self.pod.created if self.pod is not None else None

    @property
    def leaving(self) -> bool:
        """Whatever of it exists is being deleted already."""
        return all(part is None or part.terminating for part in (self.claim, self.pod))


@dataclass(frozen=True)
class MemberView:
    """One member: a serial, a zone, and whatever of its pod and claim exists."""

    name: str
    serial: int
    zone: str
    pod: PodView | None
    claim: ClaimView | None

    @property
    def pod_ready(self) -> bool:
        """Its pod says Ready and is not going away: the pod's word only. Whether the member serves
        (its node up too) is ``plan.health.serving``; its reported state, ``plan.health.member_state``;
        whether its data is gone, ``plan.recovery.loss_of``."""
        return self.pod is not None and self.pod.ready and not self.pod.terminating


@dataclass(frozen=True)
class Observed:
    """Everything the planner may know about one store, at one moment."""

    store: StoreRef
    generation: int
    members: tuple[MemberView, ...]
    """Live members (their claim not retired), by serial."""
    retired_pods: tuple[PodView, ...]
    """Pods whose member was retired: left over from an interrupted retirement."""
    nodes: tuple[NodeView, ...]
    last_serial: int
    """The highest serial ever used, from children and status: the next member gets a higher one."""
    children: frozenset[str]
    """Which of the store's Services and PodDisruptionBudget exist (``kind/name``)."""
    status: Raw
    """The store's current status, as stored (the planner keeps what did not change)."""
    snapshots: tuple[SnapshotView, ...] = ()
    """The store's lineage (final snapshots of a deleted store excluded), oldest first."""
    retired_claims: tuple[ClaimView, ...] = ()
    """Volumes of retired members, kept until the deletion policy lets them go."""
    snapshot_request: str | None = None
    """The token of an on-demand snapshot asked for through the store's annotation."""
    rollout_paused: bool = False
    """The store's annotation phalanx.dev/rollout-paused is "true"."""
    replace_request: str | None = None
    """The value of the store's annotation phalanx.dev/replace (an on-demand replacement)."""
    child_digests: Mapping[str, str] = field(default_factory=dict)
    """``kind/name`` of a child -> the digest of what Phalanx decides in it, as it is now."""
    owned: OwnedStatus = field(default_factory=OwnedStatus)
    """The record of what Phalanx created for the store (claims, snapshots) that still exists."""
    foreign: tuple[str, ...] = ()
    """Objects that carry the store's labels but that Phalanx did not make (``Kind name``): kept out
    of every decision, reported."""
    final_snapshots: Mapping[str, bool] = field(default_factory=dict)
    """This store's final snapshots (deletionPolicy Snapshot), each of the member claim it is named
    after, by name -> ready to use: what the finalizer waits for before any volume goes."""
    previous: ReplicatedStoreStatus = field(default_factory=ReplicatedStoreStatus)
    """The status as last written, typed: what the planner remembers (states' since, transitions,
    the last recovery, snapshot failures, zones down since)."""
    drills: tuple[DrillView, ...] = ()
    """The store's restore drills that exist (Phalanx's own: claims on record, pods it controls), by
    name, so oldest first."""

    def previous_member(self, name: str) -> MemberStatus | None:
        return next((m for m in self.previous.members if m.name == name), None)

    def previous_condition(self, kind: str) -> Condition | None:
        return next((c for c in self.previous.conditions if c.type == kind), None)

    def previous_zone(self, name: str) -> ZoneStatus | None:
        return next((z for z in self.previous.zones if z.name == name), None)

    def zones_with_nodes(self) -> tuple[str, ...]:
        """Zones that have at least one schedulable node, sorted."""
        return tuple(sorted({n.zone for n in self.nodes if n.schedulable and n.zone}))

    def node(self, name: str | None) -> NodeView | None:
        return next((n for n in self.nodes if n.name == name), None) if name else None

    def member(self, name: str) -> MemberView | None:
        return next((m for m in self.members if m.name == name), None)

    def successor(self, name: str) -> MemberView | None:
        """The member made to replace ``name`` (its claim says so), if it exists."""
        return next((m for m in self.members if m.claim is not None and m.claim.replaces == name), None)

    def zone_nodes(self, zone: str) -> tuple[NodeView, ...]:
        return tuple(n for n in self.nodes if n.zone == zone)


def parse_status(raw: Raw) -> ReplicatedStoreStatus:
    """The stored status, typed. A field that does not parse (written by another version, say) is
    left out rather than losing the rest: what the planner remembers must survive a stranger field."""
    try:
        return ReplicatedStoreStatus.model_validate(dict(raw))
    except ValueError:
        kept = {}
        for key, value in raw.items():
            try:
                ReplicatedStoreStatus.model_validate({key: value})
            except ValueError:
                continue
            kept[key] = value
        return ReplicatedStoreStatus.model_validate(kept)


def _owner_uid(meta: Raw) -> str | None:
    """The uid of the object's controlling owner, if any."""
    return next((o.get("uid") for o in meta.get("ownerReferences") or [] if o.get("controller")), None)


def observe(
    store: StoreRef,
    generation: int,
    status: Raw,
    pods: Iterable[Raw],
    claims: Iterable[Raw],
    nodes: Iterable[Raw | NodeView],
    children: Iterable[str] = (),
    snapshots: Iterable[Raw] = (),
    annotations: Mapping[str, str] | None = None,
    volumes: Mapping[str, Raw] | None = None,
    drill_pods: Iterable[Raw] = (),
) -> Observed:
    """Join the store's pods and claims into members; pods and claims of other stores are ignored.
    ``children`` are ``kind/name``, optionally ``#digest`` of what Phalanx decides in them; ``nodes``
    may come as views already (the watch cache keeps them so: a pass does not parse every node).

    Provenance decides what belongs to the store, never labels alone: a claim or snapshot only when
    its uid is in ``status.owned`` (Phalanx records every one it creates), a pod only when the store
    is its controlling owner, each only under the name its member label gives. Everything else that
    carries the store's label is foreign. A claim that Phalanx retained when a store of the same name
    was deleted is adopted on its volume's word (``phalanx.dev/retained-claim``: PersistentVolumes are
    beyond a namespace user's reach). A store last written by a Phalanx that kept no record
    (``lastSerial`` set, ``owned`` absent) adopts what it sees once, and records it. ``volumes``:
    PersistentVolumes by name (for the reclaim policy of each claim's volume).

    Restore drills (``phalanx.dev/drill``) are kept apart from members and retired volumes whatever
    else their labels say: a drill's claim counts only on record and under a drill's name, its pod
    (``drill_pods``, labelled ``phalanx.dev/drill-of`` instead of the store label) only when the
    store controls it; other such objects are foreign."""
    listed_children = list(children)
    record = status.get("owned")
    trusting = record is None and int(status.get("lastSerial") or 0) > 0
    owned_claims = {str(o.get("uid")) for o in (record or {}).get("claims") or []}
    owned_snapshots = {str(o.get("uid")) for o in (record or {}).get("snapshots") or []}
    foreign: list[str] = []
    taken: list[int] = []

    def ours(kind: str, obj: Raw, proven: bool) -> str | None:
        """The member an object of this store belongs to, or None (recorded as foreign when it claims one)."""
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        if labels.get(names.STORE_LABEL) != store.name:
            return None
        member = labels.get(names.MEMBER_LABEL)
        if member and member == meta.get("name") and names.serial_of(store.name, member) is not None and proven:
            return str(member)
        foreign.append(f"{kind} {meta.get('name')}")
        taken.append(names.serial_of(store.name, str(meta.get("name"))) or 0)  # its name is not free
        return None

    drill_parts: dict[str, list[Raw | None]] = {}

    def drill(kind: str, obj: Raw, proven: bool, slot: int) -> None:
        """A drill's claim (slot 0) or pod (slot 1), or a foreign object that looks like one."""
        name = str(obj["metadata"].get("name"))
        if proven and names.is_drill_name(store.name, name):
            drill_parts.setdefault(name, [None, None])[slot] = obj
        else:
            foreign.append(f"{kind} {name}")

    for pod in drill_pods:
        labels = pod["metadata"].get("labels") or {}
        if labels.get(names.DRILL_OF_LABEL) == store.name:
            drill("Pod", pod, _owner_uid(pod["metadata"]) == store.uid, 1)
    pod_views: dict[str, PodView] = {}
    retired_pods = []
    for pod in pods:
        member = ours("Pod", pod, _owner_uid(pod["metadata"]) == store.uid)
        if member is None:
            continue
        if (pod["metadata"].get("labels") or {}).get(names.RETIRED_LABEL) == "true":
            retired_pods.append(PodView.of(pod))  # its member is gone, whatever its claim says
        else:
            pod_views[member] = PodView.of(pod)
    claim_views: dict[str, ClaimView] = {}
    zones: dict[str, str] = {}
    for pvc in claims:
        labels = pvc["metadata"].get("labels") or {}
        if labels.get(names.DRILL_LABEL) == "true" and labels.get(names.STORE_LABEL) == store.name:
            drill("PersistentVolumeClaim", pvc, pvc["metadata"].get("uid") in owned_claims, 0)
            continue
        volume = (volumes or {}).get(str((pvc.get("spec") or {}).get("volumeName") or ""))
        uid = pvc["metadata"].get("uid")
        kept = ((volume or {}).get("metadata", {}).get("annotations") or {}).get(names.RETAINED_CLAIM_ANNOTATION)
        member = ours("PersistentVolumeClaim", pvc, trusting or uid in owned_claims or (bool(uid) and kept == uid))
        if member is not None:
            claim_views[member] = ClaimView.of(pvc, volume)
            zones[member] = (pvc["metadata"].get("labels") or {}).get(names.ZONE_LABEL) or ""
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        member = labels.get(names.MEMBER_LABEL)
        if member in pod_views and not zones.get(member):
            zones[member] = labels.get(names.ZONE_LABEL) or ""

    serials = {m: names.serial_of(store.name, m) for m in set(pod_views) | set(claim_views)}
    members = []
    retired_claims = []
    for member, serial in serials.items():
        if serial is None:  # ``ours`` admits canonical names only; this keeps the type checker told
            continue
        claim = claim_views.get(member)
        if claim is not None and claim.retired:
            retired_claims.append(claim)
            if member in pod_views:
                retired_pods.append(pod_views[member])
            continue
        zone = zones.get(member) or UNKNOWN_ZONE  # a label someone emptied is no zone to report as null
        members.append(MemberView(member, serial, zone, pod_views.get(member), claim))
    members.sort(key=lambda m: m.serial)
    known = [s for s in serials.values() if s is not None]
    recorded = max([int(status.get("lastSerial") or 0), *known])
    # A stranger holding the next names is skipped over, but never further than a store can grow:
    # a name like orders-99999999999 must not push every later member past a label's length.
    last_serial = max([recorded, *(t for t in taken if t <= recorded + MAX_REPLICAS)])
    lineage = []
    finals = {}
    for snap in snapshots:
        labels = snap["metadata"].get("labels") or {}
        if labels.get(names.STORE_LABEL) != store.name:
            continue
        if labels.get(names.FINAL_LABEL) == "true":
            source = ((snap.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")
            if labels.get(names.STORE_UID_LABEL) == store.uid and source and source == labels.get(names.MEMBER_LABEL):
                finals[str(snap["metadata"]["name"])] = bool((snap.get("status") or {}).get("readyToUse"))
            continue
        if labels.get(names.STORE_UID_LABEL) != store.uid and snap["metadata"].get("uid") not in owned_snapshots:
            continue  # a predecessor's lineage (a store re-created under the same name): not ours, not foreign
        if trusting or snap["metadata"].get("uid") in owned_snapshots:
            lineage.append(SnapshotView.of(snap))
        else:
            foreign.append(f"VolumeSnapshot {snap['metadata'].get('name')}")
    drills = tuple(DrillView.of(name, *parts) for name, parts in sorted(drill_parts.items()))
    seen_claims = {c.uid: c.name for c in claim_views.values()}
    seen_claims.update({d.claim.uid: d.name for d in drills if d.claim is not None})
    seen_snapshots = {s.uid: s.name for s in lineage}
    return Observed(
        store=store,
        generation=generation,
        members=tuple(members),
        retired_pods=tuple(sorted(retired_pods, key=lambda p: p.name)),
        nodes=tuple(sorted((n if isinstance(n, NodeView) else NodeView.of(n) for n in nodes), key=lambda n: n.name)),
        last_serial=last_serial,
        children=frozenset(child.partition("#")[0] for child in listed_children),
        child_digests={key: digest for key, _, digest in (c.partition("#") for c in listed_children) if digest},
        status=status,
        snapshots=tuple(sorted(lineage, key=lambda v: (v.created or _EPOCH, v.name))),
        retired_claims=tuple(sorted(retired_claims, key=lambda c: c.name)),
        snapshot_request=(annotations or {}).get(names.SNAPSHOT_REQUEST) or None,
        rollout_paused=str((annotations or {}).get(names.ROLLOUT_PAUSED_ANNOTATION, "")).strip().lower() == "true",
        replace_request=str((annotations or {}).get(names.REPLACE_ANNOTATION) or "").strip() or None,
        owned=OwnedStatus(
            claims=[OwnedObject(name=n, uid=u) for u, n in sorted(seen_claims.items(), key=lambda i: i[1])],
            snapshots=[OwnedObject(name=n, uid=u) for u, n in sorted(seen_snapshots.items(), key=lambda i: i[1])],
        ),
        foreign=tuple(sorted(foreign)),
        final_snapshots=finals,
        previous=parse_status(status),
        drills=drills,
    )
