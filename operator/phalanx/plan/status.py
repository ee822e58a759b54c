"""Status: what the store reports, in kstatus terms (Ready, Reconciling, Stalled) and its own
(Degraded, ZonesBalanced, SnapshotsFresh, VolumesMatchSpec, ForeignObjects).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from phalanx.models import (
    Condition,
    ConditionStatus,
    ConditionType,
    MemberState,
    MemberStatus,
    RecoveryRecord,
    ReplaceRequestStatus,
    ReplicatedStoreSpec,
    ReplicatedStoreStatus,
    RolloutStatus,
    StorePhase,
    ZoneStatus,
)
from phalanx.names import STORE_LABEL
from phalanx.observe import Observed
from phalanx.plan.drills import (
    drill_report,
    restore_verified,
)
from phalanx.plan.health import (
    member_state,
    stuck,
)
from phalanx.plan.placement import (
    remembered_zones,
    skew,
    zone_counts,
    zone_down_since,
    zone_returned_at,
)
from phalanx.plan.recovery import (
    recovery_progress,
)
from phalanx.plan.reliability import (
    DEFAULT_RATES,
    Rates,
    objective_condition,
    reliability,
)
from phalanx.plan.snapshots import (
    snapshot_status,
    snapshots_fresh,
)
from phalanx.plan.volumes import (
    retired_report,
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


@dataclass(frozen=True)
class Progress:
    """What this pass decided that status reports, beside what is observed."""

    busy: bool = False
    """Member work is under way (creations, retirements, healing)."""
    stalled: str | None = None
    """Why the spec is invalid (the store gets status only)."""
    paused: bool = False
    revision: str | None = None
    """The template revision of the spec."""
    last_serial: int | None = None
    """The highest serial this pass used."""
    notes: Sequence[str] = ()
    """Why something was not done."""
    records: Sequence[RecoveryRecord] = ()
    """Recoveries started by this pass."""
    blocked: tuple[str, str] | None = None
    """Why the store cannot converge by waiting: Stalled's reason and message."""
    storage: tuple[bool, str, str] | None = None
    """VolumesMatchSpec: value, reason, message."""
    rollout: RolloutStatus | None = None
    """The rollout in flight (status.rollout)."""
    budgeted: frozenset[str] = frozenset()
    """Members the rollout took out on purpose, within the budget: not a degradation."""
    request: ReplaceRequestStatus | None = None
    """The on-demand replacement answered (status.replaceRequest)."""
    rates: Rates = DEFAULT_RATES
    """How fast a member is rebuilt, for the predicted recovery time."""


@dataclass(frozen=True)
class Summary:
    """The facts every condition is read from, computed once per status."""

    members: list[MemberStatus]
    ready: list[MemberStatus]
    desired: int
    zones: list[ZoneStatus]
    balanced: bool
    broken: list[str]
    unready: list[str]
    current: str | None
    outdated: list[str]
    last_recovery: RecoveryRecord | None

    @property
    def all_ready(self) -> bool:
        return len(self.ready) == self.desired == len(self.members)

    @property
    def recovering(self) -> bool:
        return self.last_recovery is not None and self.last_recovery.ready_at is None


def summarise(
    spec: ReplicatedStoreSpec | None, observed: Observed, now: datetime, zones: Sequence[str], progress: Progress
) -> Summary:
    members = member_statuses(observed, now)
    ready = [m for m in members if m.state is MemberState.READY]
    per_zone = zone_counts([*zones, *remembered_zones(spec, observed, now)], observed.members)
    revisions = Counter(m.revision for m in members if m.revision)
    revision = progress.revision
    return Summary(
        members=members,
        ready=ready,
        desired=spec.replicas if spec else len(members),
        zones=[
            ZoneStatus(
                name=z,
                members=per_zone[z],
                ready=sum(1 for m in ready if m.zone == z),
                down_since=zone_down_since(observed, z, now),
                returned_at=zone_returned_at(observed, z, now),
            )
            for z in sorted(per_zone)
        ],
        balanced=skew(zones, observed.members) <= 1 and all(m.zone in zones for m in observed.members),
        broken=[
            m.name
            for m in members
            if m.state in (MemberState.UNAVAILABLE, MemberState.LOST) and m.name not in progress.budgeted
        ],
        unready=[m.name for m in members if m.state is not MemberState.READY],
        current=revisions.most_common(1)[0][0] if revisions else revision,
        outdated=[m.name for m in members if revision and m.revision and m.revision != revision],
        last_recovery=progress.records[-1] if progress.records else recovery_progress(observed),
    )


Setting = tuple[ConditionType, bool, str, str]
"""A condition as a setter returns it: type, value, reason, message."""


def phase_of(s: Summary, progress: Progress) -> StorePhase:
    if progress.stalled is not None:
        return StorePhase.INVALID
    if progress.paused:
        return StorePhase.PAUSED
    if s.recovering:
        return StorePhase.RECOVERING
    if s.broken:
        return StorePhase.DEGRADED
    if progress.rollout is not None:
        return StorePhase.UPDATING
    if s.all_ready and not progress.busy:
        return StorePhase.READY
    return StorePhase.PENDING  # creating, scaling, members starting: nothing lost


def stalled_by(progress: Progress) -> tuple[str, str] | None:
    """Why a valid store is Stalled (reason, message), or None: a paused store never is."""
    return progress.blocked if not progress.paused else None


def ready_condition(s: Summary, progress: Progress) -> Setting:
    if progress.stalled is not None:
        return ConditionType.READY, False, "InvalidSpec", progress.stalled
    blocked = stalled_by(progress)
    if blocked is not None:
        # kstatus: Ready=True means the spec was reached, and a store that cannot converge by waiting
        # has not reached it, even with every member serving (spec.zones naming no zone, say).
        return ConditionType.READY, False, blocked[0], f"{len(s.ready)}/{s.desired} members ready; stalled"
    rollout = progress.rollout
    if rollout is not None and rollout.halted is None and not progress.busy:
        # A rollout takes members out on purpose, within the budget: the store stays Ready while
        # only they are out.
        out = [name for name in s.unready if name not in progress.budgeted]
        if not out and len(s.members) >= s.desired:
            return (
                ConditionType.READY,
                True,
                "RollingOut",
                (
                    f"{len(s.ready)}/{s.desired} members ready; rolling out revision {rollout.revision} within the "
                    "disruption budget"
                ),
            )
    reason = "AllMembersReady" if s.all_ready else "MembersNotReady"
    return ConditionType.READY, s.all_ready and not progress.busy, reason, f"{len(s.ready)}/{s.desired} members ready"


def reconciling_condition(s: Summary, progress: Progress) -> Setting:
    """Reconciling, never True beside Stalled=True: kstatus readers (Flux, `kubectl wait`, kpt) take
    the first of the two that is True in the list, and Reconciling comes first; a stalled store still
    Reconciling would be waited on to the end of their timeout instead of reported Failed."""
    kind, value, reason, message = working(s, progress)
    blocked = stalled_by(progress)
    if value and blocked is not None:
        return kind, False, blocked[0], f"stalled: {message}"
    return kind, value, reason, message


def working(s: Summary, progress: Progress) -> Setting:
    """What Reconciling says of the work under way, before a stall is taken into account."""
    if progress.stalled is not None:
        return ConditionType.RECONCILING, False, "InvalidSpec", "nothing is done until the spec is fixed"
    if progress.paused:
        return ConditionType.RECONCILING, False, "Paused", "spec.paused is true: status only"
    if progress.rollout is not None:
        rollout = progress.rollout
        doing = rollout.step or "next step"
        waiting = f": waiting for {rollout.waiting_for}" if rollout.waiting_for else ""
        reason = "RolloutHalted" if rollout.halted else "RolloutPaused" if rollout.paused else "RollingOut"
        return (
            ConditionType.RECONCILING,
            True,
            reason,
            (f"revision {rollout.revision}: {rollout.replaced}/{rollout.total} members updated; {doing}{waiting}"),
        )
    converging = progress.busy or not s.all_ready
    if progress.notes:
        waiting = "; ".join(progress.notes)
    else:
        waiting = f"waiting for: {', '.join(s.unready)}" if s.unready else "converging"
    if converging:
        return ConditionType.RECONCILING, True, "Converging", waiting
    return ConditionType.RECONCILING, False, "Converged", f"{len(s.ready)}/{s.desired} members ready"


def stalled_condition(progress: Progress) -> Setting:
    if progress.stalled is not None:
        return ConditionType.STALLED, True, "InvalidSpec", progress.stalled
    blocked = stalled_by(progress)
    if blocked is not None:
        return ConditionType.STALLED, True, *blocked
    return ConditionType.STALLED, False, "Paused" if progress.paused else "Progressing", "no blocking problem"


def degraded_condition(s: Summary) -> Setting:
    if s.recovering and s.last_recovery is not None:
        why = f"recovering {s.last_recovery.member}: {s.last_recovery.replacement} is not ready yet"
        return ConditionType.DEGRADED, True, "Recovering", why
    if s.broken:
        return ConditionType.DEGRADED, True, "MembersUnavailable", f"unavailable: {', '.join(s.broken)}"
    return ConditionType.DEGRADED, False, "NoLoss", "no member is lost or unavailable"


def zones_balanced_condition(s: Summary) -> Setting:
    counts = ", ".join(f"{z.name}={z.members}" for z in s.zones) or "no zones"
    return ConditionType.ZONES_BALANCED, s.balanced, "Balanced" if s.balanced else "Unbalanced", counts


def build_status(
    spec: ReplicatedStoreSpec | None,
    observed: Observed,
    now: datetime,
    zones: Sequence[str],
    progress: Progress | None = None,
) -> ReplicatedStoreStatus:
    """Status in kstatus terms (Ready, Reconciling, Stalled) plus Degraded, SnapshotsFresh,
    RestoreVerified, ZonesBalanced, ForeignObjects and VolumesMatchSpec: each condition from its own small setter,
    over facts computed once (``summarise``); a condition keeps its transition time while it holds."""
    progress = progress or Progress()
    s = summarise(spec, observed, now, zones, progress)
    previous = {c.type: c for c in observed.previous.conditions}
    last_drill = drill_report(spec, observed, now)  # a paused or invalid store keeps its last one
    settings: list[Setting] = [
        ready_condition(s, progress),
        reconciling_condition(s, progress),
        stalled_condition(progress),
    ]
    if progress.stalled is None:
        settings.append(degraded_condition(s))
    if spec is not None and spec.snapshots is not None:
        fresh, why = snapshots_fresh(spec, observed, now)
        settings.append((ConditionType.SNAPSHOTS_FRESH, fresh, "Fresh" if fresh else "Stale", why))
        verified = restore_verified(spec, last_drill)
        if verified is not None:
            settings.append((ConditionType.RESTORE_VERIFIED, *verified))
    settings.append(zones_balanced_condition(s))
    settings.append((ConditionType.FOREIGN_OBJECTS, bool(observed.foreign), *foreign_report(observed)))
    if progress.storage is not None:
        settings.append((ConditionType.VOLUMES_MATCH_SPEC, *progress.storage))
    held = None
    if spec is not None and progress.stalled is None:
        held = reliability(spec, observed, now, s.members, zones, progress.records, s.last_recovery, progress.rates)
        within = objective_condition(spec, held.predicted) if held.predicted is not None else None
        if within is not None:
            settings.append((ConditionType.RECOVERY_WITHIN_OBJECTIVE, *within))
    healthy_zones = sum(1 for z in s.zones if z.members and z.ready == z.members)
    # Zones that should hold members: a store smaller than its zone count fills only that many.
    expected_zones = min(len(s.zones), s.desired) if s.desired else len(s.zones)
    revision = progress.revision
    return ReplicatedStoreStatus(
        observed_generation=observed.generation,
        conditions=[condition(previous, *setting, observed.generation, now) for setting in settings],
        phase=phase_of(s, progress),
        replicas=len(s.members),
        ready_replicas=len(s.ready),
        updated_replicas=sum(1 for m in s.members if revision and m.revision == revision),
        ready_display=f"{len(s.ready)}/{s.desired}",
        zones_display=f"{healthy_zones}/{expected_zones}",
        selector=f"{STORE_LABEL}={observed.store.name}",
        current_revision=s.current,
        update_revision=revision,
        zones=s.zones,
        members=s.members,
        last_serial=max(observed.last_serial, progress.last_serial or 0),
        snapshots=snapshot_status(observed),
        last_recovery=s.last_recovery,
        last_drill=last_drill,
        owned=observed.owned,
        retired_volumes=retired_report(spec, observed),
        rollout=progress.rollout,
        replace_request=progress.request,
        reliability=held if held is not None else observed.previous.reliability,
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
