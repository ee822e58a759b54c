"""Status: what the store reports, in kstatus terms (Ready, Reconciling, Stalled) and its own
(Degraded, ZonesBalanced, SnapshotsFresh, VolumesMatchSpec, ForeignObjects).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from phalanx.models import (
    Condition,
    ConditionStatus,
    ConditionType,
    MemberState,
    MemberStatus,
    RecoveryRecord,
    ReplicatedStoreSpec,
    ReplicatedStoreStatus,
    StorePhase,
    ZoneStatus,
)
from phalanx.observe import Observed
from phalanx.plan.health import (
    member_state,
    stuck,
)
from phalanx.plan.placement import (
    skew,
    zone_counts,
    zone_down_since,
)
from phalanx.plan.recovery import (
    recovery_progress,
)
from phalanx.plan.snapshots import (
    snapshot_status,
    snapshots_fresh,
)


def member_statuses(observed: Observed, now: datetime) -> list[MemberStatus]:
    result = []
    for member in observed.members:
        state = member_state(member, observed)
        prior = observed.previous_member(member.name)
        since = prior.since if prior is not None and prior.state is state else None
        node = member.pod.node if member.pod else None
        result.append(
            MemberStatus(
                name=member.name,
                zone=member.zone,
                state=state,
                node=node,
                volume=member.claim.volume if member.claim else None,
                revision=member.pod.revision if member.pod else None,
                seeded_from=member.claim.seeded_from if member.claim else None,
                since=since or now,
            )
        )
    return result


def condition(
    previous: Mapping[str, Condition],
    kind: ConditionType,
    value: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> Condition:
    """A condition that keeps its lastTransitionTime while its status does not change."""
    status = ConditionStatus.TRUE if value else ConditionStatus.FALSE
    prior = previous.get(kind.value)
    since = prior.last_transition_time if prior is not None and prior.status is status else None
    return Condition.model_validate(
        {
            "type": kind.value,
            "status": status.value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since or now,
            "observedGeneration": generation,
        }
    )


REFUSED_PASSES = 2
"""Consecutive passes whose writes the API server refused before the store is reported Stalled."""


def blocked_by(
    spec: ReplicatedStoreSpec, observed: Observed, now: datetime, collisions: Mapping[str, str], refused: str | None
) -> tuple[str, str] | None:
    """Why the store cannot converge by waiting, as Stalled's (reason, message); None when it can.
    kstatus readers (``kubectl wait``, Flux, Argo CD) stop waiting on Stalled, so it is reported only
    for what a person must fix."""
    if collisions:
        taken = "; ".join(f"{who} holds the name this store needs for its {what}" for what, who in collisions.items())
        return "NameCollision", f"{taken}: rename the store, or remove the other object"
    if refused is not None:
        return "Refused", f"the API server refused this store's writes {REFUSED_PASSES} passes in a row: {refused}"
    if spec.zones and not any(observed.zone_nodes(zone) for zone in spec.zones):
        zones = ", ".join(spec.zones)
        return "NoSuchZone", f"spec.zones names no zone with a node ({zones}): nothing is moved until it does"
    deadline = spec.updates.progress_deadline.total_seconds()
    late = [m for m in observed.members if stuck(m, observed, deadline, now)]
    if late:
        described = [
            f"{m.name} ({member_state(m, observed).value}"
            + (f": {m.pod.waiting}" if m.pod is not None and m.pod.waiting else "")
            + (f"; its claim is {m.claim.phase}" if m.claim is not None and m.claim.phase != "Bound" else "")
            + ")"
            for m in late
        ]
        return "ProgressDeadlineExceeded", (
            f"not serving after updates.progressDeadline ({spec.updates.progress_deadline}): {', '.join(described)}; "
            "such members are the first to go when the store shrinks"
        )
    return None


def build_status(
    spec: ReplicatedStoreSpec | None,
    observed: Observed,
    now: datetime,
    *,
    zones: Sequence[str],
    busy: bool,
    stalled: str | None = None,
    paused: bool = False,
    revision: str | None = None,
    last_serial: int | None = None,
    notes: Sequence[str] = (),
    records: Sequence[RecoveryRecord] = (),
    blocked: tuple[str, str] | None = None,
    storage: tuple[bool, str, str] | None = None,
) -> ReplicatedStoreStatus:
    """Status in kstatus terms: Ready, Reconciling, Stalled, plus Degraded, ZonesBalanced and SnapshotsFresh."""
    members = member_statuses(observed, now)
    ready = [m for m in members if m.state is MemberState.READY]
    desired = spec.replicas if spec else len(members)
    per_zone = zone_counts(zones, observed.members)
    zone_list = [
        ZoneStatus(
            name=z,
            members=per_zone[z],
            ready=sum(1 for m in ready if m.zone == z),
            down_since=zone_down_since(observed, z, now),
        )
        for z in sorted(per_zone)
    ]
    healthy_zones = sum(1 for z in zone_list if z.members and z.ready == z.members)
    # Zones that should hold members: a store smaller than its zone count fills only that many.
    expected_zones = min(len(zone_list), desired) if desired else len(zone_list)
    balanced = skew(zones, observed.members) <= 1 and all(m.zone in zones for m in observed.members)
    unready = [m.name for m in members if m.state is not MemberState.READY]
    revisions = Counter(m.revision for m in members if m.revision)
    current = revisions.most_common(1)[0][0] if revisions else revision
    outdated = [m.name for m in members if revision and m.revision and m.revision != revision]
    broken = [m.name for m in members if m.state in (MemberState.UNAVAILABLE, MemberState.LOST)]
    last_recovery = records[-1] if records else recovery_progress(observed)
    recovering = last_recovery is not None and last_recovery.ready_at is None
    all_ready = len(ready) == desired == len(members)
    previous = {c.type: c for c in observed.previous.conditions}
    gen = observed.generation

    def cond(kind: ConditionType, value: bool, reason: str, message: str) -> Condition:
        return condition(previous, kind, value, reason, message, gen, now)

    if stalled is not None:
        phase = StorePhase.INVALID
        conditions = [
            cond(ConditionType.READY, False, "InvalidSpec", stalled),
            cond(ConditionType.RECONCILING, False, "InvalidSpec", "nothing is done until the spec is fixed"),
            cond(ConditionType.STALLED, True, "InvalidSpec", stalled),
        ]
    else:
        progress = busy or not all_ready
        if paused:
            phase = StorePhase.PAUSED
        elif recovering:
            phase = StorePhase.RECOVERING
        elif broken:
            phase = StorePhase.DEGRADED
        elif all_ready and not busy:
            phase = StorePhase.READY
        else:
            phase = StorePhase.PENDING  # creating, scaling, members starting: nothing lost
        degraded = bool(broken) or recovering
        if recovering and last_recovery is not None:
            degraded_why = f"recovering {last_recovery.member}: {last_recovery.replacement} is not ready yet"
        else:
            degraded_why = f"unavailable: {', '.join(broken)}" if broken else "no member is lost or unavailable"
        message = f"{len(ready)}/{desired} members ready"
        waiting = "; ".join(notes) if notes else (f"waiting for: {', '.join(unready)}" if unready else "converging")
        if outdated and not progress:
            # Honest until rolling replacement exists: the store serves, on an older template.
            progress = True
            waiting = (
                f"{len(outdated)} member(s) run template revision {current}, not {revision}: rolling "
                "replacement is not implemented yet; deleting a member's pod recreates it on its own "
                "volume with the new template"
            )
        conditions = [
            cond(
                ConditionType.READY,
                all_ready and not busy,
                "AllMembersReady" if all_ready else "MembersNotReady",
                message,
            ),
            cond(
                ConditionType.RECONCILING,
                progress and not paused,
                "Paused" if paused else ("Converging" if progress else "Converged"),
                "spec.paused is true: status only" if paused else (waiting if progress else message),
            ),
            cond(ConditionType.STALLED, True, *blocked)
            if blocked is not None and not paused
            else cond(ConditionType.STALLED, False, "Paused" if paused else "Progressing", "no blocking problem"),
            cond(
                ConditionType.DEGRADED,
                degraded,
                "Recovering" if recovering else ("MembersUnavailable" if broken else "NoLoss"),
                degraded_why,
            ),
        ]
    if spec is not None and spec.snapshots is not None:
        fresh, why = snapshots_fresh(spec, observed, now)
        conditions.append(cond(ConditionType.SNAPSHOTS_FRESH, fresh, "Fresh" if fresh else "Stale", why))
    conditions.append(
        cond(
            ConditionType.ZONES_BALANCED,
            balanced,
            "Balanced" if balanced else "Unbalanced",
            ", ".join(f"{z.name}={z.members}" for z in zone_list) or "no zones",
        )
    )
    conditions.append(cond(ConditionType.FOREIGN_OBJECTS, bool(observed.foreign), *foreign_report(observed)))
    if storage is not None:
        conditions.append(cond(ConditionType.VOLUMES_MATCH_SPEC, *storage))
    return ReplicatedStoreStatus(
        observed_generation=gen,
        conditions=conditions,
        phase=phase,
        replicas=len(members),
        ready_replicas=len(ready),
        updated_replicas=sum(1 for m in members if revision and m.revision == revision),
        ready_display=f"{len(ready)}/{desired}",
        zones_display=f"{healthy_zones}/{expected_zones}",
        current_revision=current,
        update_revision=revision,
        zones=zone_list,
        members=members,
        last_serial=max(observed.last_serial, last_serial or 0),
        snapshots=snapshot_status(observed),
        last_recovery=last_recovery,
        owned=observed.owned,
    )


FOREIGN_LISTED = 5
"""How many foreign objects a condition message names (the rest are counted)."""


def foreign_report(observed: Observed) -> tuple[str, str]:
    """The ForeignObjects condition's reason and message: which objects carry the store's labels
    without being Phalanx's (a copied manifest, a hand-made pod, a forged snapshot)."""
    if not observed.foreign:
        return "None", "every object labelled as this store's was made by Phalanx"
    named = ", ".join(observed.foreign[:FOREIGN_LISTED])
    more = len(observed.foreign) - FOREIGN_LISTED
    return "Ignored", (
        f"ignoring {len(observed.foreign)} object(s) labelled phalanx.dev/store={observed.store.name} that Phalanx "
        f"did not create: {named}{f' and {more} more' if more > 0 else ''}; they are never deleted, adopted or "
        "restored from: remove the labels or the objects"
    )
