"""Act: the only module that writes to the API server.

Last step of observe → plan → act. It carries out a ``Plan``'s actions with manifests from ``build``,
and writes the store's status. Every write is idempotent, so a crash between two writes, or a plan
carried out twice, is harmless: names are deterministic and creations tolerate "already exists";
deletions carry a uid precondition so they never hit a successor of the same name; a retirement
marks the claim retired before deleting anything, so an interrupted one is finished by the next plan.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, assert_never

from phalanx import build, metrics
from phalanx import kube as k
from phalanx.kube import ApiError, Kube, Resource
from phalanx.models import OwnedStatus, ReplicatedStoreSpec
from phalanx.names import (
    FIELD_MANAGER,
    RECLAIM_WAS_ANNOTATION,
    RETAINED_ANNOTATION,
    RETAINED_CLAIM_ANNOTATION,
    RETIRED_AT_ANNOTATION,
    RETIRED_LABEL,
    StoreRef,
)
from phalanx.plan import (
    Action,
    CreateMember,
    CreatePod,
    DeleteDrill,
    DeletePod,
    DeleteSnapshot,
    DeleteVolume,
    EnsureChild,
    ExpandVolume,
    FinalAction,
    KeepVolume,
    PinVolume,
    Plan,
    RetireMember,
    Snapshot,
    StartDrill,
)

log = logging.getLogger("phalanx.act")

CRASH_AFTER = os.environ.get("PHALANX_TEST_CRASH_AFTER", "")
"""Test-only: the name of an action kind (``RetireMember``, ``CreateMember``...) after which the process
dies at once, as if killed, so that the tests can prove crash safety at an exact point. Unset in
production; nothing else reads it."""

OWN_STATUS_EXCLUDED = frozenset({"kopf"})
"""Status keys that others write (Kopf's bookkeeping): never compared, never patched."""
A = TypeVar("A", Action, FinalAction)


@dataclass
class Provenance:
    """The store's record of what Phalanx made (``status.owned``), which act extends with every claim
    and snapshot it creates, and writes (``write``) before building anything on it: a pod is only
    mounted on a claim whose uid is on record. An existing object under a name act wanted to create
    is taken as its own only when that record names its uid; otherwise the name is taken by someone
    else and the action fails (nothing is built on a stranger's object)."""

    claims: dict[str, str]
    snapshots: dict[str, str]
    write: Callable[[dict[str, Any]], None]
    changed: bool = False

    @classmethod
    def of(cls, owned: OwnedStatus | None, write: Callable[[dict[str, Any]], None]) -> Provenance:
        owned = owned or OwnedStatus()
        return cls({o.name: o.uid for o in owned.claims}, {o.name: o.uid for o in owned.snapshots}, write)

    def wire(self) -> dict[str, Any]:
        def entries(record: dict[str, str]) -> list[dict[str, str]]:
            return [{"name": name, "uid": uid} for name, uid in sorted(record.items())]

        return {"claims": entries(self.claims), "snapshots": entries(self.snapshots)}

    def add(self, record: dict[str, str], name: str, uid: str) -> None:
        record[name] = uid
        self.changed = True
        self.write(self.wire())


def name_taken(kind: str, name: str, by: str = "an object Phalanx did not create") -> ApiError:
    message = f"{kind} {name} already exists and is {by}: Phalanx neither adopts nor changes it"
    return ApiError(409, json.dumps({"reason": "AlreadyExists", "message": message}))


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((ref.get("uid") for ref in refs if ref.get("controller")), None)


def controller_name(obj: Mapping[str, Any]) -> str:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    ref = next((ref for ref in refs if ref.get("controller")), None)
    return f"controlled by {ref.get('kind')} {ref.get('name')}" if ref else "made by someone else"


@dataclass(frozen=True)
class Outcome:
    """What became of one action: ``error`` is None when it was carried out."""

    action: Action | FinalAction
    error: str | None = None
    code: int | None = None
    """The API server's status code when it refused."""

    @property
    def refused(self) -> bool:
        """Refused for what was asked (invalid, forbidden, a name taken), not for a passing reason
        (gone already, too many requests, the server's own trouble): asking again will not help."""
        return self.code is not None and 400 <= self.code < 500 and self.code not in (404, 429)


def merge_diff(
    current: Mapping[str, Any], new: Mapping[str, Any], keep: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``current`` into ``new``: changed keys, nested
    objects diffed key by key, and every key ``new`` no longer has set to null, at every depth (a
    merge patch keeps what it does not name: a new ``lastRecovery`` sent whole would keep the old
    one's ``readyAt``). Lists are replaced whole. ``keep``: top-level keys that others own."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = current.get(key)
        if before == value:
            continue
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[key] = merge_diff(before, value)
        else:
            patch[key] = value
    for key in current:
        if key not in new and key not in keep:
            patch[key] = None
    return patch


def status_patch(current: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that turns ``current`` into ``new``, or None when they already agree.

    Keys that ``new`` no longer has are nulled (at every depth) so that stale sections and fields
    disappear; Kopf's own key is left alone. Returning None is what makes a steady-state reconcile
    write nothing.
    """
    return merge_diff(current, new, OWN_STATUS_EXCLUDED) or None


def _carry_out(store: StoreRef, actions: Sequence[A], do: Callable[[A], None]) -> list[Outcome]:
    """Every action, in order; one failing does not stop the others (each is independent).
    Each is counted by kind and outcome; ``CRASH_AFTER`` (tests only) dies right after its kind."""
    outcomes = []
    for action in actions:
        kind = type(action).__name__
        try:
            do(action)
        except Exception as error:  # a refusal, or the connection broke: the rest still run, all reported
            log.warning("%s on %s failed: %s", kind, store, error)
            code = error.status if isinstance(error, ApiError) else None
            outcomes.append(Outcome(action, str(error) or type(error).__name__, code))
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
    def connect(cls, connections: int = 32, guard: k.WriteGuard | None = None) -> Actor:
        """The operator's writer. ``guard``: asked before every write (leader election's fence)."""
        manager = os.environ.get("PHALANX_TEST_FIELD_MANAGER") or FIELD_MANAGER  # tests tell two operators apart
        kube = Kube(k.load_default_client(connections), on_write=_count_write, field_manager=manager, write_guard=guard)
        return cls(kube, k.disruption_budgets(kube))

    def write_status(self, store: StoreRef, current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
        """Patch the status subresource when it differs; True when something was written."""
        patch = status_patch(current, new)
        if patch is None:
            return False
        self.kube.patch(k.STORES, store.name, {"status": patch}, store.namespace, sub="status")
        return True

    def write_owned(self, store: StoreRef, owned: dict[str, Any]) -> None:
        """Record what Phalanx made, at once: a crash right after must not leave it unowned."""
        self.kube.patch(k.STORES, store.name, {"status": {"owned": owned}}, store.namespace, sub="status")

    def execute(
        self, store: StoreRef, spec: ReplicatedStoreSpec, plan: Plan, revision: str, provenance: Provenance
    ) -> list[Outcome]:
        """Carry out a plan's actions, extending the record of what Phalanx made as it goes."""
        return _carry_out(store, plan.actions, lambda action: self._do(store, spec, plan, revision, provenance, action))

    def _create_recorded(
        self, res: Resource, manifest: dict[str, Any], namespace: str, record: dict[str, str], provenance: Provenance
    ) -> None:
        """Create a claim or snapshot and record its uid; an existing one must be on record already."""
        name = manifest["metadata"]["name"]
        made = self.kube.ensure(res, manifest, namespace)
        if made is not None:
            provenance.add(record, name, made["metadata"]["uid"])
            return
        existing = self.kube.get(res, name, namespace)
        if record.get(name) != existing["metadata"].get("uid"):
            raise name_taken(manifest["kind"], name)

    def _create_owned(self, store: StoreRef, res: Resource, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create a child the store controls; an existing one must be controlled by this store.
        Returns the existing object (None when just created)."""
        name = manifest["metadata"]["name"]
        if self.kube.ensure(res, manifest, store.namespace) is not None:
            return None
        existing = self.kube.get(res, name, store.namespace)
        if controller_uid(existing) != store.uid:
            raise name_taken(manifest["kind"], name, controller_name(existing))
        return existing

    def _do(
        self,
        store: StoreRef,
        spec: ReplicatedStoreSpec,
        plan: Plan,
        revision: str,
        provenance: Provenance,
        action: Action,
    ) -> None:
        ns = store.namespace
        match action:
            case CreateMember(member=member, zone=zone, snapshot=snapshot, replaces=replaces, avoid=avoid):
                claim = build.member_claim(store, spec, member, zone, snapshot, replaces)
                self._create_recorded(k.PVCS, claim, ns, provenance.claims, provenance)
                pod = build.member_pod(store, spec, member, zone, list(plan.peers), snapshot, revision, avoid)
                self._create_owned(store, k.PODS, pod)
            case CreatePod(member=member, zone=zone, seeded_from=seeded_from, avoid=avoid):
                pod = build.member_pod(store, spec, member, zone, list(plan.peers), seeded_from, revision, avoid)
                self._create_owned(store, k.PODS, pod)
            case DeletePod(member=member, uid=uid):
                self.kube.delete(k.PODS, member, ns, uid=uid)
            case RetireMember(member=member, pod_uid=pod_uid, claim_uid=claim_uid, delete_volume=delete_volume):
                if claim_uid is not None:  # first, so that an interrupted retirement is never taken for a loss
                    mark: dict[str, Any] = {"labels": {RETIRED_LABEL: "true"}}
                    if not delete_volume:  # dated: spec.retiredVolumes counts from it (a volume going needs none)
                        mark["annotations"] = {RETIRED_AT_ANNOTATION: _stamp()}
                    self.kube.patch(k.PVCS, member, {"metadata": mark}, ns)
                if pod_uid is not None:  # marked too: its claim may vanish from view before it does
                    self.kube.patch(k.PODS, member, {"metadata": {"labels": {RETIRED_LABEL: "true"}}}, ns)
                    self.kube.delete(k.PODS, member, ns, uid=pod_uid)
                if delete_volume and claim_uid is not None:
                    self._unpin_volume(ns, member)  # pinned while the policy was another: the disk goes too
                    self.kube.delete(k.PVCS, member, ns, uid=claim_uid)
            case EnsureChild(child=child):
                self._ensure_child(store, spec, child)
            case Snapshot(member=member, zone=zone, name=name, request=request):
                manifest = build.volume_snapshot(store, spec, member, zone, name, request=request)
                self._create_recorded(k.SNAPSHOTS, manifest, ns, provenance.snapshots, provenance)
            case DeleteSnapshot(name=name, uid=uid):
                self.kube.delete(k.SNAPSHOTS, name, ns, uid=uid)
            case PinVolume(volume=volume, was=was):
                patch = {
                    "metadata": {"annotations": {RECLAIM_WAS_ANNOTATION: was}},
                    "spec": {"persistentVolumeReclaimPolicy": "Retain"},
                }
                self.kube.patch(k.PVS, volume, patch)
            case ExpandVolume(member=member, size=size):
                self.kube.patch(k.PVCS, member, {"spec": {"resources": {"requests": {"storage": size}}}}, ns)
            case StartDrill(name=name, zone=zone, snapshot=snapshot, node=node, verify=verify):
                # The claim first and on record, as a member's: a pod is only built on a claim Phalanx made.
                claim = build.drill_claim(store, spec, name, zone, snapshot, None if verify else node)
                self._create_recorded(k.PVCS, claim, ns, provenance.claims, provenance)
                if verify:
                    self._create_owned(store, k.PODS, build.drill_pod(store, spec, name, zone, snapshot))
            case DeleteDrill(name=name, pod_uid=pod_uid, claim_uid=claim_uid):
                if pod_uid is not None:  # first: the claim is held (pvc-protection) while a pod uses it
                    self.kube.delete(k.PODS, name, ns, uid=pod_uid)
                if claim_uid is not None:
                    self.kube.delete(k.PVCS, name, ns, uid=claim_uid)
            case _:
                assert_never(action)

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
        if self._create_owned(store, resource, manifest) is not None:  # it exists and is ours: update it
            name = manifest["metadata"]["name"]
            self.kube.patch(resource, name, {"spec": manifest["spec"]}, store.namespace)

    # -------------------------------------------------------------------- deletion (the finalizer)

    def _volume_of(self, namespace: str, claim: str) -> dict[str, Any] | None:
        pvc = self.kube.find(k.PVCS, claim, namespace)
        volume = (pvc or {}).get("spec", {}).get("volumeName")
        return self.kube.find(k.PVS, volume) if volume else None

    def _pin_volume(self, namespace: str, claim: str, keep_for: str | None = None) -> None:
        """The bound PersistentVolume outlives its claim: reclaim policy Retain. Without it, deleting
        the namespace (which deletes the claims) would let the provisioner delete the data. The
        policy it had is remembered, for a deliberate deletion to restore. ``keep_for``: the uid of
        the claim it is retained for (a store re-created under the same name adopts that claim)."""
        pv = self._volume_of(namespace, claim)
        if pv is None:
            return
        annotations: dict[str, str] = {}
        if keep_for and (pv["metadata"].get("annotations") or {}).get(RETAINED_CLAIM_ANNOTATION) != keep_for:
            annotations[RETAINED_CLAIM_ANNOTATION] = keep_for
        policy = pv["spec"].get("persistentVolumeReclaimPolicy", "Delete")
        if policy != "Retain":
            annotations[RECLAIM_WAS_ANNOTATION] = policy
        if annotations:
            patch = {"metadata": {"annotations": annotations}, "spec": {"persistentVolumeReclaimPolicy": "Retain"}}
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
            case KeepVolume(member=member, uid=uid):
                self._pin_volume(ns, member, keep_for=uid)
                self.kube.patch(k.PVCS, member, {"metadata": {"annotations": {RETAINED_ANNOTATION: _stamp()}}}, ns)
            case DeleteVolume(member=member, uid=uid):
                self._unpin_volume(ns, member)
                self.kube.delete(k.PVCS, member, ns, uid=uid)
            case Snapshot(member=member, zone=zone, name=name):  # a final one: never pruned
                self.kube.ensure(k.SNAPSHOTS, build.volume_snapshot(store, spec, member, zone, name, final=True), ns)
            case _:
                assert_never(action)


def _stamp() -> str:
    """Now, as an annotation holds a time (RFC 3339, whole seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
