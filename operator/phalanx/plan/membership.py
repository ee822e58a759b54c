"""Membership: heal pods, scale up and down, retire one member at a time, rebalance over zones.

Every voluntary disruption asks the one disruption budget (``budget``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from phalanx.models import (
    MemberState,
    ReplicatedStoreSpec,
)
from phalanx.names import member_name
from phalanx.observe import MemberView, Observed
from phalanx.plan.actions import (
    Action,
    CreateMember,
    CreatePod,
    DeletePod,
    RetireMember,
)
from phalanx.plan.budget import others_serve
from phalanx.plan.health import (
    ON_THE_WAY,
    member_state,
    serving,
    stuck,
)
from phalanx.plan.placement import (
    place,
    settled,
    skew,
    zone_counts,
)
from phalanx.plan.recovery import (
    unfinished_recovery,
)
from phalanx.plan.snapshots import (
    seed_for,
)
from phalanx.plan.volumes import (
    delete_at_retirement,
)


def finish_retirements(observed: Observed) -> list[DeletePod]:
    return [
        DeletePod(pod.name, pod.uid, f"member {pod.name} is retired; its pod is left over")
        for pod in observed.retired_pods
        if not pod.terminating
    ]


def heal_pods(observed: Observed, skip: frozenset[str] = frozenset()) -> list[Action]:
    """At most one pod per member (I5): a finished pod is deleted first, a new one made when none is left."""
    actions: list[Action] = []
    for member in observed.members:
        if member.name in skip:
            continue
        pod, claim = member.pod, member.claim
        if pod is not None and pod.finished and not pod.terminating and claim is not None:
            actions.append(DeletePod(member.name, pod.uid, f"pod {pod.name} finished ({pod.phase}); replacing it"))
        elif pod is None and claim is not None and not claim.lost and not claim.terminating:
            actions.append(
                CreatePod(
                    member.name,
                    member.zone,
                    claim.seeded_from,
                    f"member {member.name} has no pod; its volume is intact",
                )
            )
    return actions


def scale(
    spec: ReplicatedStoreSpec,
    observed: Observed,
    placeable_zones: Sequence[str],
    now: datetime,
    last_serial: int,
    home_zones: Sequence[str] | None = None,
) -> tuple[list[Action], int, list[str]]:
    """Create missing members (seeded from the freshest snapshot) in ``placeable_zones`` (the store's
    zones where a member can land now), or retire one surplus member (strays outside ``home_zones``,
    the store's zones, first)."""
    # A member whose replacement is on its way (a rollout's Replace step) is leaving: not counted.
    members = tuple(m for m in observed.members if observed.successor(m.name) is None)
    missing = spec.replicas - len(members)
    if missing > 0:
        if not placeable_zones:
            return [], last_serial, ["no zone has a schedulable node: cannot place new members"]
        actions: list[Action] = []
        unfinished = unfinished_recovery(spec, observed, now, placeable_zones)
        if unfinished is not None:  # interrupted after the lost member was retired: finish that recovery
            actions.append(unfinished)
            missing -= 1
        snapshot, _ = seed_for(spec, observed, now)
        counts = zone_counts(placeable_zones, members)
        if unfinished is not None:
            counts[unfinished.zone] = counts.get(unfinished.zone, 0) + 1
        for zone in place(placeable_zones, counts, missing):
            last_serial += 1
            name = member_name(observed.store.name, last_serial)
            why = f"{len(members)}/{spec.replicas} members; new one in {zone}"
            actions.append(CreateMember(name, zone, snapshot, why + (f", seeded from {snapshot}" if snapshot else "")))
        return actions, last_serial, []
    if missing < 0:
        return retire_one(spec, members, observed, home_zones, now), last_serial, []
    return [], last_serial, []


def retirement_order(
    members: Sequence[MemberView],
    observed: Observed | None = None,
    zones: Sequence[str] | None = None,
    deadline: float | None = None,
    now: datetime | None = None,
) -> list[MemberView]:
    """Who leaves first on scale down: broken and stuck members (``stuck``: nothing is lost with one
    that never served), then serving ones outside the store's zones, then from the fullest zone,
    newest first; members still starting come last (a newcomer is never retired for being new)."""
    counts = Counter(m.zone for m in members)
    home = set(zones) if zones is not None else {m.zone for m in members}

    def rank(member: MemberView) -> int:
        state = member_state(member, observed)
        if state is MemberState.READY:
            return 1
        return 2 if state in ON_THE_WAY and not stuck(member, observed, deadline, now) else 0

    return sorted(members, key=lambda m: (rank(m), m.zone in home, -counts[m.zone], -m.serial))


def retire_one(
    spec: ReplicatedStoreSpec,
    members: Sequence[MemberView],
    observed: Observed | None = None,
    zones: Sequence[str] | None = None,
    now: datetime | None = None,
) -> list[Action]:
    """One surplus member leaves, unless that would take a serving member while another is not (a
    stuck member, which never served, neither counts nor blocks)."""
    deadline = spec.updates.progress_deadline.total_seconds()
    candidate = retirement_order(members, observed, zones, deadline, now)[0]
    others = others_serve(spec, members, observed, candidate, now)
    if serving(candidate, observed) and not others:
        return []  # quorum first: wait until every other member serves (I2)
    return [
        RetireMember(
            candidate.name,
            candidate.pod.uid if candidate.pod else None,
            candidate.claim.uid if candidate.claim else None,
            # A broken member leaving while others do not serve keeps its volume, retired, until
            # the store is whole again (I3): it may hold what they lack.
            delete_volume=delete_at_retirement(spec) and others,
            why=f"{len(members)} members for {spec.replicas} replicas: retiring the newest of the fullest zone",
        )
    ]


def rebalance(
    spec: ReplicatedStoreSpec,
    observed: Observed,
    home_zones: Sequence[str],
    placeable_zones: Sequence[str],
    now: datetime,
    last_serial: int,
) -> tuple[list[Action], int]:
    """Move one member towards the emptiest zone, as budgeted voluntary disruption: a new member there
    first; the surplus is then retired (strays, then the fullest zone), only once everyone serves (I1, I2).
    Nothing moves while the emptiest zone cannot take a member (down, cordoned, still coming back or
    back for less than a memberFailureGrace): that is an outage's business, not balance's."""
    if len(observed.members) != spec.replicas or not others_serve(spec, observed.members, observed, None, now):
        return [], last_serial
    stray = [m for m in observed.members if m.zone not in home_zones]
    if skew(home_zones, observed.members) <= 1 and not stray:
        return [], last_serial
    target = place(home_zones, zone_counts(home_zones, observed.members), 1)[0]
    if target not in placeable_zones or not settled(spec, observed, target, now):
        return [], last_serial  # a zone still coming back (or just back) gets nothing moved into it yet
    snapshot, source_why = seed_for(spec, observed, now)
    last_serial += 1
    name = member_name(observed.store.name, last_serial)
    why = f"zones unbalanced: a new member in {target} (seeded from {source_why}); the fullest zone gives one up next"
    return [CreateMember(name, target, snapshot, why, reason="Rebalancing")], last_serial
