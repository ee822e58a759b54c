"""Builders of the manifests of a store's children: member Pods and PVCs, Services, PDB, VolumeSnapshots.

Where it sits: observe → plan → **act**. The planner decides *what* should exist (which member, in which
zone, seeded from which snapshot, at which revision); `act` calls these builders with those decisions
and writes the result. They are pure functions from typed values to plain JSON-ready dicts: no I/O, no
kopf, no kubernetes client, and the spec passed in is never mutated (its pod template is a plain dict
that every member shares, so each builder works on a deep copy).

Every name and label comes from `phalanx.names`, so what is built here is exactly what `observe`
reads back. Ownership is deliberate: Pods, Services and the PodDisruptionBudget are owned by the
store and go with it; PVCs and VolumeSnapshots are data and are never owned, so that garbage
collection can never cascade into them — the store's finalizer applies the deletion policy instead.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

from phalanx import names
from phalanx.models import GROUP, KIND, VERSION, ReplicatedStoreSpec
from phalanx.names import StoreRef

__all__ = [
    "MANAGED_BY_LABEL",
    "NAME_LABEL",
    "PDB_API_VERSIONS",
    "Manifest",
    "client_service",
    "disruption_budget",
    "drill_claim",
    "drill_pod",
    "member_claim",
    "member_pod",
    "owner_reference",
    "peers_service",
    "template_revision",
    "volume_snapshot",
]

Manifest = dict[str, Any]
"""A Kubernetes object as the API server takes it: camelCase keys, JSON values."""

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
NAME_LABEL: Final = "app.kubernetes.io/name"
MANAGER: Final = "phalanx"

PDB_API_VERSIONS: Final = ("policy/v1", "policy/v1beta1")
"""policy/v1 where the cluster serves it (1.21+), policy/v1beta1 on older ones; `act` discovers which."""

SNAPSHOT_API_VERSION: Final = "snapshot.storage.k8s.io/v1"
REVISION_LENGTH: Final = 10
"""Hex digits of a template revision: short enough for a label, long enough never to collide in practice."""


def template_revision(spec: ReplicatedStoreSpec) -> str:
    """A short hash of the pod template: members whose revision differs from it are due for an update.

    Only the template counts (not storage, replicas or policies), because only the template reaches a
    running pod. The template is hashed as canonical JSON (sorted keys), so the same template written
    with its keys in another order is the same revision and starts no rollout.
    """
    canonical = json.dumps(spec.template.to_wire(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]


def owner_reference(store: StoreRef) -> dict[str, Any]:
    """The store as the controlling owner, so that its deletion takes the owned child with it."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": store.name,
        "uid": store.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


# --------------------------------------------------------------------------------------------------
# Members: a PVC and a Pod that share the member's name.


def member_claim(
    store: StoreRef,
    spec: ReplicatedStoreSpec,
    member: str,
    zone: str,
    snapshot: str | None,
    replaces: str | None = None,
) -> Manifest:
    """The member's PersistentVolumeClaim: empty, or restored from `snapshot` when the planner seeds it;
    ``replaces``: the lost member it stands in for (for the record).

    Not owned by the store: the data outlives a mistaken or cascading delete. The snapshot it came from
    is kept in an annotation, because a bound claim's dataSource says nothing once the snapshot is gone.
    """
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(spec.storage.size)}},
    }
    if spec.storage.storage_class_name is not None:
        claim["storageClassName"] = spec.storage.storage_class_name
    if snapshot is not None:
        claim["dataSource"] = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(
            store,
            member,
            labels=_member_labels(store, member, zone),
            annotations={
                names.SEEDED_FROM_ANNOTATION: snapshot or "",
                **({names.REPLACES_ANNOTATION: replaces} if replaces else {}),
            },
        ),
        "spec": claim,
    }


def member_pod(
    store: StoreRef,
    spec: ReplicatedStoreSpec,
    member: str,
    zone: str,
    peers: list[str],
    seeded_from: str | None,
    revision: str,
    avoid: tuple[str, ...] = (),
) -> Manifest:
    """The member's Pod: the store's template, plus the member's identity, zone, volume and environment.

    Labels: the template's over the recommended ``app.kubernetes.io/*`` ones (the template may name
    its application, say valkey), then Phalanx's ``phalanx.dev/*`` identity, which always wins. `peers` are member
    names; they reach the containers as DNS addresses under the headless peers Service, which is also
    why the pod's hostname and subdomain are set.
    """
    labels = {
        **_recommended_labels(store),
        **spec.template.metadata.labels,
        **_member_identity(store, member, zone),
        names.REVISION_LABEL: revision,
    }
    metadata = _metadata(store, member, labels=labels, annotations=dict(spec.template.metadata.annotations))
    env = _member_env(store, member, zone, peers, seeded_from)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**metadata, "ownerReferences": [owner_reference(store)]},
        "spec": _member_pod_spec(spec.template.spec, store, member, zone, env, avoid),
    }


def _member_pod_spec(
    template: Mapping[str, Any],
    store: StoreRef,
    member: str,
    zone: str,
    env: list[dict[str, str]],
    avoid: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A deep copy of the template's PodSpec with what makes it this member's."""
    pod = copy.deepcopy(dict(template))
    pod["hostname"] = member
    pod["subdomain"] = names.peers_service(store.name)
    pod["affinity"] = _pinned_to_zone(pod.get("affinity"), zone, avoid)
    pod["volumes"] = [
        *(volume for volume in pod.get("volumes", []) if volume.get("name") != names.DATA_VOLUME),
        {"name": names.DATA_VOLUME, "persistentVolumeClaim": {"claimName": member}},
    ]
    for key in ("containers", "initContainers"):
        if key in pod:
            pod[key] = [_with_env(container, env) for container in pod[key]]
    return pod


def _pinned_to_zone(affinity: Mapping[str, Any] | None, zone: str, avoid: tuple[str, ...] = ()) -> dict[str, Any]:
    """The template's affinity with the member's zone required in every node selector term (and the
    nodes to ``avoid`` excluded: nodes whose heartbeats stopped, which nobody has tainted yet).

    Required terms are ORed, so a term left without the zone would let the pod (and then its volume)
    land in another zone. Preferred terms, pod affinity and anti-affinity are kept as they are.
    """
    pinned = dict(affinity or {})
    node = dict(pinned.get("nodeAffinity") or {})
    required = dict(node.get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [_with_zone(term, zone, avoid) for term in terms]
    node["requiredDuringSchedulingIgnoredDuringExecution"] = required
    pinned["nodeAffinity"] = node
    return pinned


def _with_zone(term: Mapping[str, Any], zone: str, avoid: tuple[str, ...] = ()) -> dict[str, Any]:
    expressions = [{"key": names.NODE_ZONE_LABEL, "operator": "In", "values": [zone]}]
    if avoid:
        expressions.append({"key": HOSTNAME_LABEL, "operator": "NotIn", "values": sorted(avoid)})
    return {**term, "matchExpressions": [*term.get("matchExpressions", []), *expressions]}


HOSTNAME_LABEL = "kubernetes.io/hostname"


def _member_env(
    store: StoreRef, member: str, zone: str, peers: list[str], seeded_from: str | None
) -> list[dict[str, str]]:
    """What an engine's entrypoint needs to join its peers, and to tell "restored: catch up" from
    "empty: bootstrap" (PHALANX_SEEDED_FROM is empty for an empty volume)."""
    addresses = ",".join(names.peer_address(store.name, peer, store.namespace) for peer in peers)
    values = {
        names.ENV_STORE: store.name,
        names.ENV_MEMBER: member,
        names.ENV_ZONE: zone,
        names.ENV_PEERS: addresses,
        names.ENV_SEEDED_FROM: seeded_from or "",
    }
    return [{"name": name, "value": value} for name, value in values.items()]


def _with_env(container: Mapping[str, Any], env: list[dict[str, str]]) -> dict[str, Any]:
    """The container with Phalanx's variables first, so that its own variables may refer to them
    (``$(PHALANX_MEMBER)`` expands only variables defined earlier in the list)."""
    return {**container, "env": [*copy.deepcopy(env), *container.get("env", [])]}


# --------------------------------------------------------------------------------------------------
# Store-wide children: Services and the PodDisruptionBudget, owned by the store.


def peers_service(store: StoreRef, spec: ReplicatedStoreSpec) -> Manifest:
    """The headless Service that gives every member a DNS name (``<member>.<store>-peers``).

    Not-ready members are published too: members must find each other to become ready at all.
    """
    service: dict[str, Any] = {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": names.store_selector(store.name),
    }
    ports = _service_ports(spec)
    if ports:
        service["ports"] = ports
    return _owned(store, "v1", "Service", names.peers_service(store.name), service)


def client_service(store: StoreRef, spec: ReplicatedStoreSpec) -> Manifest | None:
    """The ClusterIP Service that clients connect to (ready members only), or None when the template
    declares no container ports: a ClusterIP Service without ports is refused by the API server."""
    ports = _service_ports(spec)
    if not ports:
        return None
    service = {"type": "ClusterIP", "selector": names.store_selector(store.name), "ports": ports}
    return _owned(store, "v1", "Service", names.client_service(store.name), service)


def disruption_budget(store: StoreRef, spec: ReplicatedStoreSpec, api_version: str) -> Manifest:
    """The PodDisruptionBudget that limits voluntary evictions (node drains) to the spec's budget.

    `api_version` is the one the cluster serves (see PDB_API_VERSIONS); the body is the same in both.
    """
    if api_version not in PDB_API_VERSIONS:
        raise ValueError(f"{api_version!r} is not a PodDisruptionBudget API version: use one of {PDB_API_VERSIONS}")
    budget = {
        "selector": {"matchLabels": names.store_selector(store.name)},
        "maxUnavailable": spec.disruption_budget.max_unavailable,
    }
    return _owned(store, api_version, "PodDisruptionBudget", names.disruption_budget(store.name), budget)


def _service_ports(spec: ReplicatedStoreSpec) -> list[dict[str, Any]]:
    """Every port the members' containers declare, once.

    A Service refuses two ports with the same name or the same number and protocol, which separate
    containers may well declare; unnamed ports need a name once a Service has more than one.
    """
    ports: dict[tuple[int, str], dict[str, Any]] = {}
    taken: set[str] = set()
    for number, protocol, declared_name in _container_ports(spec.template.spec):
        if (number, protocol) in ports:
            continue
        name = _port_name(declared_name, number, protocol, taken)
        taken.add(name)
        ports[(number, protocol)] = {"name": name, "port": number, "targetPort": number, "protocol": protocol}
    return list(ports.values())


def _container_ports(pod: Mapping[str, Any]) -> Iterator[tuple[int, str, str | None]]:
    """(number, protocol, name) of each container port. A port without a numeric containerPort is
    skipped: the API server refuses it on the pod with a clearer message than a Service could give."""
    for container in pod.get("containers", []):
        for port in container.get("ports", []):
            number = port.get("containerPort")
            if isinstance(number, int) and not isinstance(number, bool):
                yield number, port.get("protocol", "TCP"), port.get("name")


def _port_name(declared: str | None, number: int, protocol: str, taken: set[str]) -> str:
    """The declared name if still free, else ``port-<number>`` (``-<protocol>``, then a counter):
    at most 15 characters, as a Service port name must be."""
    fallbacks = (f"port-{number}-{index}" for index in itertools.count(2))
    candidates = itertools.chain([declared, f"port-{number}", f"port-{number}-{protocol.lower()}"], fallbacks)
    return next(name for name in candidates if name and name not in taken)


def child_fingerprint(child: Mapping[str, Any]) -> str:
    """A short digest of what Phalanx decides in a Service or PodDisruptionBudget (ports; the
    budget), the same for the manifest built here and the object the API server returns (which adds
    defaults): the planner updates a child whose digest differs from the one built for the spec."""
    spec = child.get("spec") or {}
    if child.get("kind") == "PodDisruptionBudget":
        essence: Any = {"maxUnavailable": spec.get("maxUnavailable")}
    else:
        essence = sorted(
            (p.get("name", ""), p.get("port"), str(p.get("targetPort", p.get("port"))), p.get("protocol", "TCP"))
            for p in spec.get("ports") or []
        )
    return hashlib.sha256(json.dumps(essence, sort_keys=True).encode()).hexdigest()[:10]


# --------------------------------------------------------------------------------------------------
# Snapshots: data, like PVCs, so never owned by the store.


def volume_snapshot(
    store: StoreRef,
    spec: ReplicatedStoreSpec | None,
    member: str,
    zone: str,
    name: str,
    *,
    request: str | None = None,
    final: bool = False,
) -> Manifest:
    """A CSI VolumeSnapshot of the member's PVC, labelled with the member and zone it was taken of (for
    the record: the freshest usable snapshot seeds a member, whichever zone it was taken in) and with
    the store's uid (a store re-created under the same name never reads a predecessor's lineage).
    ``request``: the on-demand request it answers; ``final``: taken as the store is deleted
    (deletionPolicy Snapshot), never pruned.

    Not owned by the store: the deletion policy (and pruning by count and age) decides its end.
    """
    source: dict[str, Any] = {"source": {"persistentVolumeClaimName": member}}
    snapshots = spec.snapshots if spec is not None else None
    if snapshots is not None and snapshots.volume_snapshot_class_name is not None:
        source["volumeSnapshotClassName"] = snapshots.volume_snapshot_class_name
    labels = {**_member_labels(store, member, zone), names.STORE_UID_LABEL: store.uid}
    if final:
        labels[names.FINAL_LABEL] = "true"
    annotations = {names.SNAPSHOT_REQUEST: request} if request is not None else None
    return {
        "apiVersion": SNAPSHOT_API_VERSION,
        "kind": "VolumeSnapshot",
        "metadata": _metadata(store, name, labels=labels, annotations=annotations),
        "spec": source,
    }


# --------------------------------------------------------------------------------------------------
# Restore drills: a throwaway claim restored from a snapshot, and the pod that checks it.

SELECTED_NODE_ANNOTATION: Final = "volume.kubernetes.io/selected-node"
"""What the scheduler writes on a WaitForFirstConsumer claim once it has placed the pod that uses it;
the provisioner waits for it before it makes the volume."""
DRILL_MOUNT_PATH: Final = "/data"


def drill_claim(
    store: StoreRef, spec: ReplicatedStoreSpec, name: str, zone: str, snapshot: str, node: str | None = None
) -> Manifest:
    """A restore drill's claim: the member's storage, restored from ``snapshot``, in ``zone``.

    Unlike a member's claim it holds no data of its own (a copy, deleted once judged), so the store
    owns it: a store deleted in the middle of a drill takes it along. ``node``: when no verification
    pod will use the claim, the node of the zone that Phalanx names for it as the scheduler would
    (volume.kubernetes.io/selected-node), so that a WaitForFirstConsumer class provisions it at all.
    """
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(spec.storage.size)}},
        "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot},
    }
    if spec.storage.storage_class_name is not None:
        claim["storageClassName"] = spec.storage.storage_class_name
    annotations = {names.SEEDED_FROM_ANNOTATION: snapshot}
    if node is not None:
        annotations[SELECTED_NODE_ANNOTATION] = node
    labels = {**_store_labels(store), names.DRILL_LABEL: "true", names.ZONE_LABEL: zone}
    metadata = _metadata(store, name, labels=labels, annotations=annotations)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {**metadata, "ownerReferences": [owner_reference(store)]},
        "spec": claim,
    }


def drill_pod(store: StoreRef, spec: ReplicatedStoreSpec, name: str, zone: str, snapshot: str) -> Manifest:
    """A restore drill's verification pod: the user's ``snapshots.drill.verify``, run once
    (restartPolicy Never: the containers' exit codes are the verdict) on the drill's claim, mounted
    read-only (a check must not change what it checks), pinned to the drill's zone like a member.

    It carries ``phalanx.dev/drill-of`` instead of the store label, so that the store's Services,
    PodDisruptionBudget and scale selector never count it as a member.
    """
    drill = spec.snapshots.drill if spec.snapshots is not None else None
    if drill is None or drill.verify is None:
        raise ValueError("a verification pod needs spec.snapshots.drill.verify")
    verify = drill.verify
    labels = {
        **_recommended_labels(store),
        **verify.metadata.labels,
        names.DRILL_OF_LABEL: store.name,
        names.DRILL_LABEL: "true",
        names.ZONE_LABEL: zone,
    }
    metadata = _metadata(store, name, labels=labels, annotations=dict(verify.metadata.annotations))
    env = [
        {"name": names.ENV_STORE, "value": store.name},
        {"name": names.ENV_ZONE, "value": zone},
        {"name": names.ENV_SNAPSHOT, "value": snapshot},
    ]
    pod = copy.deepcopy(dict(verify.spec))
    pod["restartPolicy"] = "Never"
    pod["affinity"] = _pinned_to_zone(pod.get("affinity"), zone)
    pod["volumes"] = [
        *(volume for volume in pod.get("volumes", []) if volume.get("name") != names.DATA_VOLUME),
        {"name": names.DATA_VOLUME, "persistentVolumeClaim": {"claimName": name, "readOnly": True}},
    ]
    pod["containers"] = [_read_only_data(_with_env(c, env), add=True) for c in pod.get("containers", [])]
    if "initContainers" in pod:
        pod["initContainers"] = [_read_only_data(_with_env(c, env), add=False) for c in pod["initContainers"]]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**metadata, "ownerReferences": [owner_reference(store)]},
        "spec": pod,
    }


def _read_only_data(container: Mapping[str, Any], add: bool) -> dict[str, Any]:
    """The container with every mount of the drill's volume read-only, and (``add``) the volume
    mounted at /data when it does not mount it itself."""
    mounts = [
        {**mount, "readOnly": True} if mount.get("name") == names.DATA_VOLUME else dict(mount)
        for mount in container.get("volumeMounts", [])
    ]
    if add and not any(mount.get("name") == names.DATA_VOLUME for mount in mounts):
        mounts.append({"name": names.DATA_VOLUME, "mountPath": DRILL_MOUNT_PATH, "readOnly": True})
    return {**container, "volumeMounts": mounts}


# --------------------------------------------------------------------------------------------------
# Metadata shared by every child.


def _recommended_labels(store: StoreRef) -> dict[str, str]:
    """Kubernetes' recommended labels, so that generic tools (dashboards, kubectl -l) group the children."""
    return {NAME_LABEL: store.name, MANAGED_BY_LABEL: MANAGER}


def _store_labels(store: StoreRef) -> dict[str, str]:
    """On every store-wide child: the recommended labels and the store (the label the watch cache selects by)."""
    return {**_recommended_labels(store), names.STORE_LABEL: store.name}


def _member_identity(store: StoreRef, member: str, zone: str) -> dict[str, str]:
    """What `observe` reads to tell which member of which store, in which zone, an object belongs to."""
    return {names.STORE_LABEL: store.name, names.MEMBER_LABEL: member, names.ZONE_LABEL: zone}


def _member_labels(store: StoreRef, member: str, zone: str) -> dict[str, str]:
    return {**_recommended_labels(store), **_member_identity(store, member, zone)}


def _metadata(
    store: StoreRef, name: str, *, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": store.namespace, "labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def _owned(store: StoreRef, api_version: str, kind: str, name: str, spec: dict[str, Any]) -> Manifest:
    """A store-wide child owned by the store: common labels, owner reference, the given spec."""
    metadata = _metadata(store, name, labels=_store_labels(store))
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {**metadata, "ownerReferences": [owner_reference(store)]},
        "spec": spec,
    }
