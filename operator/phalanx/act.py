"""Act: the only module that writes to the API server.

Last step of observe → plan → act. It carries out a ``Plan``'s actions with manifests from ``build``,
and writes the store's status. Every write is idempotent, so a crash between two writes, or a plan
carried out twice, is harmless: names are deterministic and creations tolerate "already exists";
deletions carry a uid precondition so they never hit a successor of the same name; a retirement
marks the claim retired before deleting anything, so an interrupted one is finished by the next plan.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from phalanx import build, metrics
from phalanx import kube as k
from phalanx.kube import ApiError, Kube, Resource
from phalanx.models import ReplicatedStoreSpec
from phalanx.names import (
    FIELD_MANAGER,
    FINAL_LABEL,
    RECLAIM_WAS_ANNOTATION,
    REPLACES_ANNOTATION,
    RETAINED_ANNOTATION,
    RETIRED_LABEL,
    SNAPSHOT_REQUEST,
    STORE_UID_LABEL,
    StoreRef,
)
from phalanx.plan import (
    Action,
    CreateMember,
    CreatePod,
    DeletePod,
    DeleteSnapshot,
    DeleteVolume,
    EnsureChild,
    FinalAction,
    KeepVolume,
    Plan,
    RetireMember,
    Snapshot,
    TakeSnapshot,
    final_snapshot_name,
)

log = logging.getLogger("phalanx.act")

CRASH_AFTER = os.environ.get("PHALANX_TEST_CRASH_AFTER", "")
"""Test-only: the name of an action kind (``RetireMember``, ``CreateMember``...) after which the process
dies at once, as if killed, so that the tests can prove crash safety at an exact point. Unset in
production; nothing else reads it."""

OWN_STATUS_EXCLUDED = frozenset({"kopf"})
A = TypeVar("A", Action, FinalAction)
"""Status keys that others write (Kopf's bookkeeping): never compared, never patched."""


@dataclass(frozen=True)
class Outcome:
    """What became of one action: ``error`` is None when it was carried out."""

    action: Action | FinalAction
    error: str | None = None


def status_patch(current: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that turns ``current`` into ``new``, or None when they already agree.

    Keys that ``new`` no longer has are nulled so that stale sections disappear; Kopf's own key is
    left alone. Returning None is what makes a steady-state reconcile write nothing.
    """
    patch: dict[str, Any] = {k: v for k, v in new.items() if current.get(k) != v}
    for key in current:
        if key not in new and key not in OWN_STATUS_EXCLUDED:
            patch[key] = None
    return patch or None


def _carry_out(store: StoreRef, actions: Sequence[A], do: Callable[[A], None]) -> list[Outcome]:
    """Every action, in order; one failing does not stop the others (each is independent).
    Each is counted by kind and outcome; ``CRASH_AFTER`` (tests only) dies right after its kind."""
    outcomes = []
    for action in actions:
        kind = type(action).__name__
        try:
            do(action)
        except ApiError as error:
            log.warning("%s on %s failed: %s", kind, store, error)
            outcomes.append(Outcome(action, str(error)))
            metrics.of(metrics.ACTIONS, store.namespace, store.name, kind, "error").inc()
            continue
        outcomes.append(Outcome(action))
        metrics.of(metrics.ACTIONS, store.namespace, store.name, kind, "ok").inc()
        if kind == CRASH_AFTER:
            log.error("test-only crash after %s", CRASH_AFTER)
            os._exit(137)
    return outcomes


def _count_write(verb: str, path: str, code: int) -> None:
    metrics.API_REQUESTS.labels(verb, k.resource_of(path), k.namespace_of(path), str(code)).inc()


class Actor:
    """Writes through one client; knows which PodDisruptionBudget version the cluster serves."""

    def __init__(self, kube: Kube, pdb: Resource) -> None:
        self.kube = kube
        self.pdb = pdb

    @classmethod
    def connect(cls, connections: int = 32) -> Actor:
        kube = Kube(k.load_default_client(connections), on_write=_count_write, field_manager=FIELD_MANAGER)
        pdb = k.PDB_V1 if k.served(kube, "policy/v1") else k.PDB_V1BETA1
        return cls(kube, pdb)

    def write_status(self, store: StoreRef, current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
        """Patch the status subresource when it differs; True when something was written."""
        patch = status_patch(current, new)
        if patch is None:
            return False
        self.kube.patch(k.STORES, store.name, {"status": patch}, store.namespace, sub="status")
        return True

    def execute(self, store: StoreRef, spec: ReplicatedStoreSpec, plan: Plan, revision: str) -> list[Outcome]:
        """Carry out a plan's actions."""
        return _carry_out(store, plan.actions, lambda action: self._do(store, spec, plan, revision, action))

    def _do(self, store: StoreRef, spec: ReplicatedStoreSpec, plan: Plan, revision: str, action: Action) -> None:
        ns = store.namespace
        match action:
            case CreateMember(member=member, zone=zone, snapshot=snapshot, replaces=replaces):
                claim = build.member_claim(store, spec, member, zone, snapshot)
                if replaces:
                    claim["metadata"].setdefault("annotations", {})[REPLACES_ANNOTATION] = replaces
                self.kube.ensure(k.PVCS, claim, ns)
                pod = build.member_pod(store, spec, member, zone, list(plan.peers), snapshot, revision)
                self.kube.ensure(k.PODS, pod, ns)
            case CreatePod(member=member, zone=zone, seeded_from=seeded_from):
                pod = build.member_pod(store, spec, member, zone, list(plan.peers), seeded_from, revision)
                self.kube.ensure(k.PODS, pod, ns)
            case DeletePod(member=member, uid=uid):
                self.kube.delete(k.PODS, member, ns, uid=uid)
            case RetireMember(member=member, pod_uid=pod_uid, claim_uid=claim_uid, delete_volume=delete_volume):
                if claim_uid is not None:  # first, so that an interrupted retirement is never taken for a loss
                    self.kube.patch(k.PVCS, member, {"metadata": {"labels": {RETIRED_LABEL: "true"}}}, ns)
                if pod_uid is not None:  # marked too: its claim may vanish from view before it does
                    self.kube.patch(k.PODS, member, {"metadata": {"labels": {RETIRED_LABEL: "true"}}}, ns)
                    self.kube.delete(k.PODS, member, ns, uid=pod_uid)
                if delete_volume and claim_uid is not None:
                    self.kube.delete(k.PVCS, member, ns, uid=claim_uid)
            case EnsureChild(child=child):
                self._ensure_child(store, spec, child)
            case Snapshot(member=member, zone=zone, name=name, request=request):
                manifest = build.volume_snapshot(store, spec, member, zone, name)
                manifest["metadata"]["labels"][STORE_UID_LABEL] = store.uid
                if request is not None:
                    manifest["metadata"].setdefault("annotations", {})[SNAPSHOT_REQUEST] = request
                self.kube.ensure(k.SNAPSHOTS, manifest, ns)
            case DeleteSnapshot(name=name, uid=uid):
                self.kube.delete(k.SNAPSHOTS, name, ns, uid=uid)

    def _ensure_child(self, store: StoreRef, spec: ReplicatedStoreSpec, child: str) -> None:
        """Create the child, or bring the existing one's spec to what the store's spec builds."""
        manifest: dict[str, Any] | None
        resource = k.SERVICES
        if child == "peers-service":
            manifest = build.peers_service(store, spec)
        elif child == "client-service":
            manifest = build.client_service(store, spec)
        else:
            resource = self.pdb
            manifest = build.disruption_budget(store, spec, f"{self.pdb.group}/{self.pdb.version}")
        if manifest is None:
            return
        if self.kube.ensure(resource, manifest, store.namespace) is None:  # it exists: update it
            name = manifest["metadata"]["name"]
            self.kube.patch(resource, name, {"spec": manifest["spec"]}, store.namespace)

    # -------------------------------------------------------------------- deletion (the finalizer)

    def final_snapshots(self, store: StoreRef, members: list[str]) -> dict[str, bool]:
        """The final snapshots that exist, and whether each is ready to use."""
        found = {}
        for member in members:
            name = final_snapshot_name(member, store.uid)
            snapshot = self.kube.find(k.SNAPSHOTS, name, store.namespace)
            if snapshot is not None:
                found[name] = bool((snapshot.get("status") or {}).get("readyToUse"))
        return found

    def _volume_of(self, namespace: str, claim: str) -> dict[str, Any] | None:
        pvc = self.kube.find(k.PVCS, claim, namespace)
        volume = (pvc or {}).get("spec", {}).get("volumeName")
        return self.kube.find(k.PVS, volume) if volume else None

    def _pin_volume(self, namespace: str, claim: str) -> None:
        """The bound PersistentVolume outlives its claim: reclaim policy Retain. Without it, deleting
        the namespace (which deletes the claims) would let the provisioner delete the data. The
        policy it had is remembered, for a deliberate deletion to restore."""
        pv = self._volume_of(namespace, claim)
        if pv is None or pv["spec"].get("persistentVolumeReclaimPolicy") == "Retain":
            return
        was = pv["spec"].get("persistentVolumeReclaimPolicy", "Delete")
        patch = {
            "metadata": {"annotations": {RECLAIM_WAS_ANNOTATION: was}},
            "spec": {"persistentVolumeReclaimPolicy": "Retain"},
        }
        self.kube.patch(k.PVS, pv["metadata"]["name"], patch)

    def _unpin_volume(self, namespace: str, claim: str) -> None:
        """Give back the reclaim policy Phalanx took away, so the disk goes with the claim."""
        pv = self._volume_of(namespace, claim)
        was = ((pv or {}).get("metadata", {}).get("annotations") or {}).get(RECLAIM_WAS_ANNOTATION)
        if pv is not None and was:
            patch = {
                "metadata": {"annotations": {RECLAIM_WAS_ANNOTATION: None}},
                "spec": {"persistentVolumeReclaimPolicy": was},
            }
            self.kube.patch(k.PVS, pv["metadata"]["name"], patch)

    def finalize(self, store: StoreRef, spec: ReplicatedStoreSpec | None, actions: list[FinalAction]) -> list[Outcome]:
        """Carry out what the deletion policy asks."""
        return _carry_out(store, actions, lambda action: self._final(store, spec, action))

    def _final(self, store: StoreRef, spec: ReplicatedStoreSpec | None, action: FinalAction) -> None:
        ns = store.namespace
        match action:
            case DeletePod(member=member, uid=uid):
                self.kube.delete(k.PODS, member, ns, uid=uid)
            case KeepVolume(member=member):
                self._pin_volume(ns, member)
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                self.kube.patch(k.PVCS, member, {"metadata": {"annotations": {RETAINED_ANNOTATION: stamp}}}, ns)
            case DeleteVolume(member=member, uid=uid):
                self._unpin_volume(ns, member)
                self.kube.delete(k.PVCS, member, ns, uid=uid)
            case TakeSnapshot(member=member, zone=zone, name=name) if spec is not None:
                manifest = build.volume_snapshot(store, spec, member, zone, name)
                manifest["metadata"]["labels"][FINAL_LABEL] = "true"  # outlives the store: never pruned
                self.kube.ensure(k.SNAPSHOTS, manifest, ns)
