"""Volumes: pinned from the start, retired ones pruned by policy, and storage edits applied or reported."""

from __future__ import annotations

from phalanx.models import (
    DeletionPolicy,
    ReplicatedStoreSpec,
)
from phalanx.observe import Observed
from phalanx.plan.actions import (
    Action,
    ExpandVolume,
    PinVolume,
    RetireMember,
)
from phalanx.plan.budget import others_serve
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


def prune_retired_volumes(spec: ReplicatedStoreSpec, observed: Observed) -> list[Action]:
    """Volumes of members retired after a loss go (policy Delete) once every member is ready again (I3)."""
    if spec.deletion_policy is not DeletionPolicy.DELETE or not others_serve(spec, observed.members, observed):
        return []
    if len(observed.members) < spec.replicas:
        return []
    return [
        RetireMember(c.name, None, c.uid, delete_volume=True, why=f"retired volume {c.name}: its replacement is ready")
        for c in observed.retired_claims
        if not c.terminating
    ]


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
