"""The names Phalanx gives and reads: labels, annotations, child object names, member environment.

Every other module takes its names from here, so that what ``build`` writes is exactly what
``observe`` reads back. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from phalanx.models import RESERVED_LABEL_PREFIX

PREFIX: Final = RESERVED_LABEL_PREFIX  # "phalanx.dev/"

STORE_LABEL: Final = PREFIX + "store"
"""On every child: the store's name. The watch cache selects children by it (and groups them by it)."""
MEMBER_LABEL: Final = PREFIX + "member"
"""On a member's Pod and PVC: the member's name (``<store>-<serial>``)."""
ZONE_LABEL: Final = PREFIX + "zone"
"""On a member's Pod and PVC: the member's zone, part of its identity."""
REVISION_LABEL: Final = PREFIX + "revision"
"""On a member's Pod: the template revision it was built from."""
RETIRED_LABEL: Final = PREFIX + "retired"
"""On a PVC kept after its member was retired (scale down, replacement): never adopted again."""
SEEDED_FROM_ANNOTATION: Final = PREFIX + "seeded-from"
"""On a member's PVC: the VolumeSnapshot it was restored from, or empty."""
RETAINED_ANNOTATION: Final = PREFIX + "retained-at"
"""On a PVC kept when its store was deleted with deletionPolicy Retain: when. A store re-created
under the same name adopts these volumes."""

RECLAIM_WAS_ANNOTATION: Final = PREFIX + "reclaim-policy-was"
"""On a PersistentVolume Phalanx pinned (reclaimPolicy Retain) while applying a deletion policy: the
policy it had, restored before the volume is deliberately deleted, so that the disk goes with it."""
RETAINED_CLAIM_ANNOTATION: Final = PREFIX + "retained-claim"
"""On a PersistentVolume Phalanx kept for a deleted store (deletionPolicy Retain): the uid of the claim
it kept it for. A store re-created under the same name adopts that claim on this proof, which a
namespace user cannot forge (PersistentVolumes are cluster-scoped); an annotation on the claim alone
would not do."""
SNAPSHOT_REQUEST: Final = PREFIX + "snapshot-request"
"""On a store: set (or change) to any value to ask for a snapshot now; the snapshot taken carries
the same annotation, so each value is answered once."""
STORE_UID_LABEL: Final = PREFIX + "store-uid"
"""On a store's VolumeSnapshots: which incarnation of the store took them. A store re-created under
the same name never seeds its members from a predecessor's snapshots."""
FINAL_LABEL: Final = PREFIX + "final"
"""On the final VolumeSnapshots of a store deleted with deletionPolicy Snapshot: never pruned."""
REPLACES_ANNOTATION: Final = PREFIX + "replaces"
"""On a replacement member's PVC: the lost member it replaces. A retired volume's clock
(spec.retiredVolumes) runs from when its replacement became Ready."""
RETIRED_AT_ANNOTATION: Final = PREFIX + "retired-at"
"""On a retired member's PVC: when it was retired (RFC 3339), set with the retired label."""

ROLLOUT_PAUSED_ANNOTATION: Final = PREFIX + "rollout-paused"
"""On a store: "true" holds the next rollout step, like spec.updates.paused, without editing the spec
(a GitOps tool would revert the edit)."""
REPLACE_ANNOTATION: Final = PREFIX + "replace"
"""On a store: asks for members to be replaced through the rollout's Replace path: `all`,
`zone/<zone>` or `member/<name>`, optionally followed by `#<anything>` to ask again for the same
target. Each value is answered once."""

DRILL_LABEL: Final = PREFIX + "drill"
"""On a restore drill's claim and pod: "true". A drill's objects are throwaway copies, never members:
observe keeps them out of members and retired volumes, and only Phalanx's own (on record) are deleted."""
DRILL_OF_LABEL: Final = PREFIX + "drill-of"
"""On a restore drill's pod, instead of the store label: the store it drills. A pod labelled
``phalanx.dev/store`` would be selected by the store's Services and PodDisruptionBudget (and counted by
an autoscaler through status.selector); the watch cache groups drill pods by this label instead."""

FINALIZER: Final = PREFIX + "finalizer"
"""Holds a store until its deletion policy has been applied to its volumes."""
FIELD_MANAGER: Final = "phalanx"

NODE_ZONE_LABEL: Final = "topology.kubernetes.io/zone"
DATA_VOLUME: Final = "data"
"""The name of the pod volume that holds the member's PVC; containers mount it by this name."""

ENV_STORE: Final = "PHALANX_STORE"
ENV_MEMBER: Final = "PHALANX_MEMBER"
ENV_ZONE: Final = "PHALANX_ZONE"
ENV_PEERS: Final = "PHALANX_PEERS"
ENV_SEEDED_FROM: Final = "PHALANX_SEEDED_FROM"
ENV_SNAPSHOT: Final = "PHALANX_SNAPSHOT"
"""In a restore drill's verification pod: the VolumeSnapshot its volume was restored from."""

_MEMBER_RE: Final = re.compile(r"^(?P<store>.+)-(?P<serial>[1-9][0-9]*)$")
"""Serials are canonical (no leading zero) and start at 1: "orders-01" is nobody's name."""
_DRILL_SUFFIX: Final = r"-drill-[0-9]{8}-[0-9]{6}"


def member_name(store: str, serial: int) -> str:
    """``<store>-<serial>``: the member's Pod and PVC share it; serials are never reused."""
    return f"{store}-{serial}"


def serial_of(store: str, member: str) -> int | None:
    """The serial in a member name of this store, or None for a name that is not one."""
    match = _MEMBER_RE.match(member)
    if match is None or match.group("store") != store:
        return None
    return int(match.group("serial"))


def drill_name(store: str, now: datetime) -> str:
    """``<store>-drill-<UTC timestamp>``: the claim and pod of one restore drill. Never a member's name
    (a serial has no dash), sortable, and the same for a plan repeated within the second."""
    return f"{store}-drill-{now.strftime('%Y%m%d-%H%M%S')}"


def is_drill_name(store: str, name: str) -> bool:
    """Whether ``name`` is one this store's drills are given (``drill_name``), exactly."""
    return re.fullmatch(re.escape(store) + _DRILL_SUFFIX, name) is not None


def peers_service(store: str) -> str:
    """The headless Service giving each member a stable DNS name: ``<member>.<store>-peers``."""
    return f"{store}-peers"


def client_service(store: str) -> str:
    """The Service clients connect to (ready members only)."""
    return store


def disruption_budget(store: str) -> str:
    return store


def peer_address(store: str, member: str, namespace: str) -> str:
    return f"{member}.{peers_service(store)}.{namespace}.svc"


def store_selector(store: str) -> dict[str, str]:
    return {STORE_LABEL: store}


@dataclass(frozen=True, slots=True)
class StoreRef:
    """Which store: enough to name, label and own its children."""

    name: str
    namespace: str
    uid: str
