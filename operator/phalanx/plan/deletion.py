"""Deletion: the finalizer applies the deletion policy; data goes only when the policy says so (I3)."""

from __future__ import annotations

from phalanx.models import (
    DeletionPolicy,
)
from phalanx.observe import Observed
from phalanx.plan.actions import (
    DeletePod,
    DeleteVolume,
    FinalAction,
    KeepVolume,
    Snapshot,
)
from phalanx.plan.membership import (
    finish_retirements,
)


def final_snapshot_name(member: str, store_uid: str) -> str:
    """``<member>-final-<store uid prefix>``: a store re-created under the same name adopts the same
    member names, and must never mistake the final snapshot of its predecessor for its own."""
    return f"{member}-final-{store_uid[:8]}"


def plan_deletion(policy: DeletionPolicy, observed: Observed) -> tuple[list[FinalAction], bool]:
    """What the finalizer does, and whether it is done (the store may go).

    Every claim of the store counts, retired ones included, terminating ones too (a namespace being
    deleted takes the claims, and Retain must still pin their volumes); the final snapshots are the
    ones observed (``Observed.final_snapshots``), made of the member claims they are named after.
    """
    views = [m.claim for m in observed.members if m.claim is not None] + list(observed.retired_claims)
    claims = [(c.name, c.uid, c.retired, c.retained) for c in views]
    snapshots_ready = observed.final_snapshots
    actions: list[FinalAction] = [
        DeletePod(m.name, m.pod.uid, "the store is being deleted")
        for m in observed.members
        if m.pod is not None and not m.pod.terminating
    ]
    actions += finish_retirements(observed)
    if policy is DeletionPolicy.RETAIN:
        actions += [  # retired members' volumes too: Retain keeps every volume
            KeepVolume(
                member, "deletionPolicy Retain: kept (a store re-created under the same name adopts it)", uid=uid
            )
            for member, uid, _, retained in claims
            if not retained
        ]
        return actions, True
    if policy is DeletionPolicy.SNAPSHOT:
        # Pinned first: should the final snapshots never come (the namespace is being deleted and
        # refuses them), the claims may go but the volumes stay.
        actions += [
            KeepVolume(member, "deletionPolicy Snapshot: kept until its final snapshot is ready")
            for member, _, _, retained in claims
            if not retained
        ]
        live = {m.name: m for m in observed.members}
        waiting = False
        for member, _, retired, _ in claims:
            claim = live[member].claim if member in live else None
            if retired or claim is None or claim.lost or claim.phase != "Bound":
                continue  # nothing to snapshot: no data was ever, or is any longer, on it
            snapshot = final_snapshot_name(member, observed.store.uid)
            if snapshot not in snapshots_ready:
                actions.append(
                    Snapshot(
                        member,
                        live[member].zone,
                        snapshot,
                        "deletionPolicy Snapshot: final snapshot",
                        reason="SnapshotTaken",
                        final=True,
                    )
                )
                waiting = True
            elif not snapshots_ready[snapshot]:
                waiting = True
        if waiting:
            return actions, False  # volumes stay until every final snapshot is ready
    actions += [DeleteVolume(member, uid, f"deletionPolicy {policy.value}") for member, uid, _, _ in claims]
    return actions, True
