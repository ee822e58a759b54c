"""Recovery: when a member counts as lost, and its replacement from the freshest usable snapshot,
in its zone or (a lost zone under Redistribute) in the survivors; an interrupted recovery completes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from phalanx.models import (
    MemberState,
    RecoveryRecord,
    RecoverySource,
    ReplicatedStoreSpec,
    ZoneFailurePolicy,
)
from phalanx.names import member_name
from phalanx.observe import MemberView, Observed
from phalanx.plan.actions import (
    Action,
    CreateMember,
    RetireMember,
)
from phalanx.plan.health import (
    prior_since,
)
from phalanx.plan.placement import (
    grace_start,
    place,
    placeable,
    returning,
    zone_counts,
    zone_outages,
)
from phalanx.plan.snapshots import (
    seed_for,
    usable_snapshots,
)


def restore_deadline(spec: ReplicatedStoreSpec) -> float:
    """How long a restore may stay pending before it counts as failed: five member grace periods."""
    return 5 * spec.recovery.member_failure_grace.total_seconds()


def loss_of(spec: ReplicatedStoreSpec, observed: Observed, member: MemberView, now: datetime) -> str | None:
    """Why a member is lost (its data cannot come back), or None. Only its pod gone is not a loss."""
    claim, pod = member.claim, member.pod
    grace = spec.recovery.member_failure_grace.total_seconds()
    if claim is None:
        # A claim out of sight while its pod goes away is a retirement the watch has half shown;
        # otherwise it counts once it has been missing for the grace period (status holds since when).
        since = prior_since(observed, member.name, MemberState.LOST)
        if pod is None or pod.terminating or since is None or (now - since).total_seconds() < grace:
            return None
        return "VolumeDeleted: its PersistentVolumeClaim is gone"
    if claim.lost:
        return "VolumeLost: its PersistentVolume is gone"
    if (
        claim.seeded_from
        and claim.phase == "Pending"
        and claim.created is not None
        and not (pod is not None and pod.unschedulable)  # waiting for a node is not a failed restore
        and (now - claim.created).total_seconds() > restore_deadline(spec)
    ):
        return f"RestoreFailed: the restore from {claim.seeded_from} did not complete"
    failed = member_failed_since(observed, member, now)
    if failed is None or (now - grace_start(spec, observed, member.zone, failed, now)).total_seconds() < grace:
        return None
    node = pod.node if pod is not None else None
    if observed.node(node) is None:
        return f"NodeDeleted: node {node} is gone"
    return f"NodeLost: node {node} not ready for more than {spec.recovery.member_failure_grace}"


def member_failed_since(observed: Observed, member: MemberView, now: datetime) -> datetime | None:
    """Since when the member's node has been down: NotReady since, or (a deleted node) since the
    member was last seen Unavailable. None while its node is up, or it has no node."""
    pod = member.pod
    if pod is None or pod.node is None:
        return None
    node = observed.node(pod.node)
    if node is None:
        return prior_since(observed, member.name, MemberState.UNAVAILABLE) or now
    return None if node.ready else node.not_ready_since


def recover(
    spec: ReplicatedStoreSpec,
    observed: Observed,
    now: datetime,
    zones: Sequence[str],
    last_serial: int,
) -> tuple[list[Action], list[RecoveryRecord], int, list[str]]:
    """Replace lost members: the lost one retired first (so a crash never leaves two replacements),
    then a new member, in the same zone or, for a lost zone under Redistribute, in the survivors."""
    outages = zone_outages(spec, observed, now)
    survivors = placeable(zones, observed, outages)
    counts = zone_counts(survivors, observed.members)
    # Rebuild elsewhere only from a majority: when most members look lost at once, the likelier
    # fault is this side's view of the cluster, and replacing most of the store would be the outage.
    surviving_members = sum(1 for m in observed.members if m.zone not in outages)
    majority = surviving_members * 2 > len(observed.members)
    redistribute = spec.recovery.zone_failure is ZoneFailurePolicy.REDISTRIBUTE and majority
    actions: list[Action] = []
    records: list[RecoveryRecord] = []
    notes = [
        f"zone {zone} is down"
        + (f" beyond zoneFailureGrace: waiting for it ({why})" if confirmed and not redistribute else "")
        for zone, confirmed in outages.items()
        if any(m.zone == zone for m in observed.members)
        for why in ["zoneFailure Wait" if majority else "the surviving zones hold no majority of the members"]
    ]
    notes += [
        f"zone {zone} is back but for {', '.join(n.name for n in waited)}: their members are waited for "
        f"until zoneFailureGrace ({spec.recovery.zone_failure_grace}) after its return"
        for zone in sorted({m.zone for m in observed.members})
        for waited in [returning(spec, observed, zone, now)]
        if waited and any(m.pod is not None and m.pod.node in {n.name for n in waited} for m in observed.members)
    ]
    for member in observed.members:
        if member.zone in outages:
            if not (outages[member.zone] and redistribute and survivors):
                continue  # a zone outage is not N member losses: wait for zoneFailureGrace and the policy
            reason = f"ZoneLost: zone {member.zone} down beyond {spec.recovery.zone_failure_grace}"
            zone = place(survivors, counts, 1)[0]
        else:
            lost = loss_of(spec, observed, member, now)
            if lost is None:
                continue
            reason, zone = lost, member.zone
        successor = observed.successor(member.name)
        if successor is not None:  # a rollout was replacing it: that replacement is the recovery
            actions.append(retire_lost(member, f"member {member.name} lost ({reason}); {successor.name} replaces it"))
            continue
        counts[zone] = counts.get(zone, 0) + 1
        snapshot, source_why = seed_for(spec, observed, now)
        if reason.startswith("RestoreFailed"):
            snapshot, source_why = None, "the restore failed: starting empty"
        last_serial += 1
        replacement = member_name(observed.store.name, last_serial)
        actions.append(retire_lost(member, f"member {member.name} lost ({reason})"))
        actions.append(
            CreateMember(
                replacement,
                zone,
                snapshot,
                f"replaces {member.name} in {zone}, seeded from {source_why}",
                reason="MemberReplaced",
                replaces=member.name,
            )
        )
        records.append(
            RecoveryRecord(
                member=member.name,
                reason=reason,
                source=RecoverySource.SNAPSHOT if snapshot else RecoverySource.EMPTY,
                started_at=now,
                replacement=replacement,
                snapshot=snapshot,
            )
        )
        notes.append(f"{member.name} lost ({reason}); {replacement} seeded from {source_why}")
    return actions, records, last_serial, notes


def retire_lost(member: MemberView, why: str) -> RetireMember:
    """A lost member leaves first (so a crash never leaves two replacements); its volume stays until
    its replacement is ready (I3)."""
    return RetireMember(
        member.name,
        member.pod.uid if member.pod else None,
        member.claim.uid if member.claim else None,
        delete_volume=False,
        why=why,
        reason="MemberLost",
    )


def unfinished_recovery(
    spec: ReplicatedStoreSpec, observed: Observed, now: datetime, targets: Sequence[str]
) -> CreateMember | None:
    """The replacement that the last recovery recorded but did not create (the operator stopped
    between retiring the lost member and creating its replacement): same name, zone and seed."""
    record = observed.previous.last_recovery
    if record is None or record.ready_at is not None or not record.replacement:
        return None
    replacement, lost = record.replacement, record.member
    if observed.member(replacement) is not None or any(c.name == replacement for c in observed.retired_claims):
        return None
    if observed.member(lost) is not None:
        return None  # not retired yet: the loss is still recover()'s to act on
    lost_claim = next((c for c in observed.retired_claims if c.name == lost), None)
    # A lost volume that was deleted leaves no retired claim: its zone is in the last status.
    recorded = observed.previous_member(lost)
    zone = (lost_claim.zone if lost_claim else None) or (recorded.zone if recorded is not None else None)
    if not zone or not targets:
        return None
    if zone not in targets:  # its zone is down (a zone loss being redistributed): the emptiest survivor
        zone = place(targets, zone_counts(targets, observed.members), 1)[0]
    snapshot = record.snapshot
    if snapshot and snapshot not in {snap.name for snap in usable_snapshots(spec, observed, now)}:
        snapshot, _ = seed_for(spec, observed, now)
    why = f"completes the recovery of {lost} (interrupted), seeded from {snapshot or 'nothing: empty'}"
    return CreateMember(replacement, zone, snapshot, why, reason="MemberReplaced", replaces=lost)


def recovery_progress(observed: Observed) -> RecoveryRecord | None:
    """The last recovery, completed with when its replacement became ready."""
    record = observed.previous.last_recovery
    if record is None:
        return None
    if record.ready_at is not None or record.replacement is None:
        return record
    member = observed.member(record.replacement)
    if member is None or not member.pod_ready or member.pod is None or member.pod.ready_since is None:
        return record
    ready_at = max(member.pod.ready_since, record.started_at)
    seconds = round((ready_at - record.started_at).total_seconds(), 3)
    return record.model_copy(update={"ready_at": ready_at, "seconds": seconds})
