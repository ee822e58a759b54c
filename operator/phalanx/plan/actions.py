"""Actions: values that say what to do and why, and the Plan that carries them; ``act`` carries them out.

The vocabulary every planning module speaks; it imports nothing of the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from phalanx.models import (
    RecoveryRecord,
    ReplicatedStoreStatus,
)

REQUEUE_BUSY = 2.0


REQUEUE_CONVERGING = 5.0


REQUEUE_STEADY = 60.0


@dataclass(frozen=True)
class CreateMember:
    """A new member: its PVC (restored from ``snapshot`` when given), then its pod."""

    member: str
    zone: str
    snapshot: str | None
    why: str
    reason: str = "MemberCreated"
    replaces: str | None = None
    """The lost member this one replaces (recovery), if any."""
    avoid: tuple[str, ...] = ()
    """Nodes of its zone whose heartbeats stopped: the node controller has not tainted them yet, so
    the scheduler would still choose them."""


@dataclass(frozen=True)
class CreatePod:
    """A member's pod is missing while its volume is fine: a new pod on the same volume."""

    member: str
    zone: str
    seeded_from: str | None
    why: str
    reason: str = "PodRecreated"
    avoid: tuple[str, ...] = ()
    """As ``CreateMember.avoid``."""


@dataclass(frozen=True)
class DeletePod:
    """A pod that must go (finished for good, or its member retired), guarded by its uid."""

    member: str
    uid: str
    why: str
    reason: str = "PodDeleted"


@dataclass(frozen=True)
class RetireMember:
    """A member leaves: its claim is marked retired first, then its pod goes, then (by policy) its volume."""

    member: str
    pod_uid: str | None
    claim_uid: str | None
    delete_volume: bool
    why: str
    reason: str = "MemberRetired"


ChildKind = Literal["peers-service", "client-service", "disruption-budget"]


@dataclass(frozen=True)
class EnsureChild:
    """A Service or the PodDisruptionBudget is missing: create it."""

    child: ChildKind
    name: str
    why: str
    reason: str = "ChildCreated"


@dataclass(frozen=True)
class Snapshot:
    """A VolumeSnapshot of a ready member's volume: the next point of the lineage."""

    member: str
    zone: str
    name: str
    why: str
    request: str | None = None
    reason: str = "SnapshotStarted"
    final: bool = False
    """Taken as the store is deleted (deletionPolicy Snapshot): outlives the store, never pruned."""


@dataclass(frozen=True)
class DeleteSnapshot:
    """Retention: a snapshot beyond ``keep`` or older than ``maxAge``, or a superseded failure."""

    name: str
    uid: str
    why: str
    reason: str = "SnapshotPruned"


@dataclass(frozen=True)
class PinVolume:
    """A Retain or Snapshot store's volume gets reclaim policy Retain as soon as it is bound, so that
    nothing (a namespace deleted, a claim deleted by hand) can take the data before the deletion
    policy has been applied; ``was`` is remembered for a deliberate deletion to give back."""

    member: str
    volume: str
    was: str
    why: str
    reason: str = "VolumePinned"


@dataclass(frozen=True)
class ExpandVolume:
    """``storage.size`` was raised: the member's claim asks for the new size (the class expands it)."""

    member: str
    size: str
    why: str
    reason: str = "VolumeExpanding"


@dataclass(frozen=True)
class StartDrill:
    """A restore drill: a throwaway claim ``name`` restored from ``snapshot`` in ``zone`` (recorded as
    Phalanx's), and, with ``verify``, the pod that checks it. Carried out again when its claim exists
    but its pod does not (the operator stopped between the two): the claim is then left as it is.
    ``node``: without a pod to consume the claim, the node of the zone asked to provision it (a
    WaitForFirstConsumer class provisions nothing for a claim no pod uses)."""

    name: str
    zone: str
    snapshot: str
    why: str
    verify: bool = False
    node: str | None = None
    reason: str = "DrillStarted"


@dataclass(frozen=True)
class DeleteDrill:
    """A drill that ended (its verdict in status) or was abandoned: its pod and claim go, each guarded
    by its uid, the claim only as Phalanx recorded it. Never a member's."""

    name: str
    pod_uid: str | None
    claim_uid: str | None
    why: str
    reason: str = "DrillCleanedUp"


Action = (
    CreateMember
    | CreatePod
    | DeletePod
    | RetireMember
    | EnsureChild
    | Snapshot
    | DeleteSnapshot
    | PinVolume
    | ExpandVolume
    | StartDrill
    | DeleteDrill
)


@dataclass(frozen=True)
class Plan:
    """What to do now, what to report, and when to look again."""

    actions: tuple[Action, ...]
    status: ReplicatedStoreStatus
    requeue_after: float
    peers: tuple[str, ...] = ()
    """The member names after this plan: what new pods receive as PHALANX_PEERS."""
    notes: tuple[str, ...] = field(default=())
    """Why something was not done (for logs and tests)."""
    recoveries: tuple[RecoveryRecord, ...] = ()
    """Recoveries started by this plan (each also in the actions)."""


@dataclass(frozen=True)
class KeepVolume:
    """deletionPolicy Retain: pin the volume and mark the claim so that a store re-created under the
    same name adopts it (``uid``: the claim's, written on its volume as the proof)."""

    member: str
    why: str
    reason: str = "VolumeRetained"
    uid: str | None = None


@dataclass(frozen=True)
class DeleteVolume:
    """deletionPolicy Delete (or Snapshot, once its final snapshot is ready): the claim goes."""

    member: str
    uid: str
    why: str
    reason: str = "VolumeDeleted"


FinalAction = DeletePod | KeepVolume | DeleteVolume | Snapshot
