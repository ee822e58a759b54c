"""Volumes: pinned from the start, retired ones pruned by spec.retiredVolumes (I3), and storage
edits applied or reported."""

from __future__ import annotations

from datetime import datetime

from phalanx.models import (
    DeletionPolicy,
    ReplicatedStoreSpec,
    RetiredVolumePolicy,
    RetiredVolumesStatus,
)
from phalanx.observe import ClaimView, Observed
from phalanx.plan.actions import (
    Action,
    ExpandVolume,
    PinVolume,
    RetireMember,
)
from phalanx.plan.health import serving
from phalanx.units import Quantity


def pin_volumes(spec: ReplicatedStoreSpec, observed: Observed) -> list[Action]:
    """Unless the policy deletes data, every bound volume of the store (retired ones too) is pinned."""
    if spec.deletion_policy is DeletionPolicy.DELETE:
        return []
    claims = [m.claim for m in observed.members if m.claim is not None] + list(observed.retired_claims)
    return [
        PinVolume(
            c.name,
            c.volume,
            c.reclaim_policy,
            f"deletionPolicy {spec.deletion_policy.value}: {c.volume} outlives its claim",
        )
        for c in claims
        if c.volume and c.reclaim_policy is not None and c.reclaim_policy != "Retain" and not c.terminating
    ]


def deletes_retired(spec: ReplicatedStoreSpec) -> bool:
    """Whether spec.retiredVolumes (or, unset, deletionPolicy) deletes retired members' volumes."""
    return spec.retired_volumes.effective_policy(spec.deletion_policy) is RetiredVolumePolicy.DELETE


def delete_at_retirement(spec: ReplicatedStoreSpec) -> bool:
    """Whether a member retired while every other serves (scale down, a move) takes its volume at
    once: the policy deletes retired volumes, with no delay to wait out."""
    return deletes_retired(spec) and spec.retired_volumes.delete_after.total_seconds() == 0


def kept(observed: Observed) -> list[ClaimView]:
    """Retired members' volumes that the policy may still act on: not going, not kept by a finalizer."""
    return [c for c in observed.retired_claims if not c.terminating and not c.retained]


def whole(spec: ReplicatedStoreSpec, observed: Observed) -> bool:
    """Every member there and Ready: the only state in which a retired volume may go (I3)."""
    return len(observed.members) >= spec.replicas and all(serving(m, observed) for m in observed.members)


def retired_clock(observed: Observed, retired: ClaimView) -> datetime | None:
    """From when a retired volume's deleteAfter counts: its retirement or, later, when the member
    that replaced it became Ready. None while its replacement is not Ready, or its retirement was
    not dated."""
    if retired.retired_at is None:
        return None
    successor = observed.successor(retired.name)
    if successor is None:
        return retired.retired_at
    if not serving(successor, observed) or successor.pod is None or successor.pod.ready_since is None:
        return None
    return max(retired.retired_at, successor.pod.ready_since)


def prune_retired_volumes(spec: ReplicatedStoreSpec, observed: Observed, now: datetime) -> list[Action]:
    """Retired members' volumes go by spec.retiredVolumes: under policy Delete, once the store is
    whole and the volume's replacement has been Ready for deleteAfter (I3). A retirement that was not
    dated (an older Phalanx retired it) is dated now, so that its wait starts."""
    if not deletes_retired(spec):
        return []
    after = spec.retired_volumes.delete_after
    actions: list[Action] = []
    leaving = {p.name for p in observed.retired_pods}  # its retirement is still being finished: one thing at a time
    for claim in kept(observed):
        if claim.retired_at is None and claim.name not in leaving:
            why = f"retired volume {claim.name}: dating its retirement, so that deleteAfter ({after}) can count"
            actions.append(RetireMember(claim.name, None, claim.uid, delete_volume=False, why=why))
    if not whole(spec, observed):
        return actions
    for claim in kept(observed):
        start = retired_clock(observed, claim)
        if start is not None and now - start >= after:
            why = f"retired volume {claim.name}: the store is whole and its replacement Ready for {after} or more"
            actions.append(RetireMember(claim.name, None, claim.uid, delete_volume=True, why=why))
    return actions


def retired_report(spec: ReplicatedStoreSpec | None, observed: Observed) -> RetiredVolumesStatus | None:
    """Retired volumes still kept: how many, how many bytes they request, and when the next one goes
    (as far as the store stays whole)."""
    claims = kept(observed)
    if not claims:
        return None
    size = 0
    for claim in claims:
        try:
            size += Quantity(claim.size).bytes if claim.size else 0
        except ValueError:
            continue
    due = None
    if spec is not None and deletes_retired(spec):
        starts = [s for s in (retired_clock(observed, c) for c in claims) if s is not None]
        due = min(starts) + spec.retired_volumes.delete_after if starts else None
    return RetiredVolumesStatus(count=len(claims), bytes=size, next_deletion=due)


def storage_drift(
    spec: ReplicatedStoreSpec, observed: Observed, refused: str | None
) -> tuple[list[Action], tuple[bool, str, str]]:
    """Claims that differ from ``spec.storage``: a size raised is asked of every claim (the class
    expands the volume, if it allows); what cannot change (a smaller size, another class) is reported,
    as the VolumesMatchSpec condition's (value, reason, message). New members get the spec as it is."""
    want = spec.storage.size
    bigger, smaller, other_class = [], [], []
    for member in observed.members:
        claim = member.claim
        if claim is None or claim.terminating or claim.size is None:
            continue
        try:
            have = Quantity(claim.size)
        except ValueError:
            continue
        if have < want:
            bigger.append(member.name)
        elif want < have:
            smaller.append(f"{member.name} ({claim.size})")
        wanted_class = spec.storage.storage_class_name
        if wanted_class is not None and claim.storage_class is not None and claim.storage_class != wanted_class:
            other_class.append(f"{member.name} ({claim.storage_class})")
    if other_class:
        return [], (
            False,
            "ClassDiffers",
            (
                f"spec.storage.storageClassName is {spec.storage.storage_class_name}, but {', '.join(other_class)} "
                "cannot change class: new members get the new class; replace the others to move them"
            ),
        )
    if smaller:
        return [], (
            False,
            "CannotShrink",
            (
                f"spec.storage.size is {want}, smaller than {', '.join(smaller)}: a volume cannot shrink; "
                "new members get the new size"
            ),
        )
    if bigger and refused is not None:
        return [], (
            False,
            "ExpansionRefused",
            f"spec.storage.size {want}: expanding {', '.join(bigger)} was refused: {refused}",
        )
    expand: list[Action] = [ExpandVolume(n, str(want), f"spec.storage.size raised to {want}") for n in bigger]
    if bigger:
        return expand, (False, "Expanding", f"spec.storage.size {want}: asking {', '.join(bigger)} to expand")
    return [], (True, "Matching", f"every member's volume has spec.storage's size ({want}) and class")
