"""Reliability as three numbers, over a window (the last 24 hours): how often members fail (losses),
how much of the store one failure takes (blast radius), and how long recovery takes (recovery times,
and the time a rebuild would take now).

Everything here is a fold of the last status and what this pass saw, with no clock-derived value
(an age, a countdown): a steady store's reliability does not change, so it costs no write. It changes
when a member is lost, a recovery completes, the share of the store that is out grows past the worst
of the window, or an entry leaves the window.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from phalanx.models import (
    BlastRadius,
    LossEvent,
    MemberState,
    MemberStatus,
    PredictedRecovery,
    RecoveryRecord,
    RecoverySource,
    RecoverySummary,
    RecoveryTime,
    ReliabilityStatus,
    ReplicatedStoreSpec,
)
from phalanx.observe import Observed
from phalanx.plan.snapshots import usable_snapshots
from phalanx.units import Quantity

WINDOW = timedelta(hours=24)
KEPT = 20
"""Entries of each list kept in status: bounded whatever the store lives through."""


@dataclass(frozen=True)
class Rates:
    """How fast a member's volume is rebuilt, for the prediction (settings: PHALANX_RESTORE_RATE,
    PHALANX_CATCHUP_RATE, in bytes per second)."""

    restore: float = 200 * 2**20
    """Restoring a snapshot into a new volume."""
    catch_up: float = 50 * 2**20
    """Copying from peers (the whole volume for an empty member)."""


DEFAULT_RATES = Rates()


OUT = frozenset({MemberState.UNAVAILABLE, MemberState.LOST})
"""A member taken by a failure: one that served and does not (a member still on its way is not out)."""


def blast_radius(members: Sequence[MemberStatus], desired: int, zones: Sequence[str]) -> BlastRadius:
    """The share of the store a failure takes now: members out over the desired replicas; zones of the
    store whose members are all out over its zones. Members on their way (a new store, a scale-up, a
    replacement restoring) are not a failure."""
    out = [m for m in members if m.state in OUT]
    members_share = round(100 * len(out) / desired) if desired else 0
    dark = [
        z for z in zones if any(m.zone == z for m in members) and all(m.state in OUT for m in members if m.zone == z)
    ]
    zones_share = round(100 * len(dark) / len(zones)) if zones else 0
    return BlastRadius(members=min(members_share, 100), zones=zones_share)


def predicted(spec: ReplicatedStoreSpec, observed: Observed, now: datetime, rates: Rates) -> PredictedRecovery:
    """The time to rebuild one member now: restoring the newest usable snapshot (when there is one) or
    copying the whole volume from peers."""
    size = float(Quantity(str(spec.storage.size)).bytes)
    snapshot = usable_snapshots(spec, observed, now) if spec.snapshots is not None else []
    return PredictedRecovery(
        from_snapshot_seconds=round(size / rates.restore, 1) if snapshot else None,
        from_empty_seconds=round(size / rates.catch_up, 1),
    )


def reliability(
    spec: ReplicatedStoreSpec,
    observed: Observed,
    now: datetime,
    members: Sequence[MemberStatus],
    zones: Sequence[str],
    started: Sequence[RecoveryRecord],
    completed: RecoveryRecord | None,
    rates: Rates,
) -> ReliabilityStatus:
    """This pass's reliability: the last one, with the losses ``started`` now, the recovery
    ``completed`` now (if any), the blast radius seen now, and entries older than the window gone."""
    before = observed.previous.reliability or ReliabilityStatus()
    since = now - WINDOW
    zone_of = {m.name: m.zone for m in members} | {m.name: m.zone for m in observed.previous.members}
    losses = [e for e in before.losses if e.at >= since]
    losses += [
        LossEvent(member=r.member, zone=zone_of.get(r.member, ""), at=r.started_at, reason=r.reason.split(":")[0])
        for r in started
        if not any(e.member == r.member for e in losses)
    ]
    recoveries = [r for r in before.recoveries if r.at >= since]
    if (
        completed is not None
        and completed.ready_at is not None
        and completed.ready_at >= since  # a recovery that left the window is not news again
        and completed.seconds is not None
        and completed.replacement is not None
        and not any(r.member == completed.replacement for r in recoveries)
    ):
        recoveries.append(
            RecoveryTime(
                member=completed.replacement, source=completed.source, seconds=completed.seconds, at=completed.ready_at
            )
        )
    current = blast_radius(members, spec.replicas, zones)
    worst = (
        before.worst if before.worst is not None and before.worst.at is not None and before.worst.at >= since else None
    )
    if (current.members, current.zones) > ((worst.members, worst.zones) if worst else (0, 0)):
        worst = current.model_copy(update={"at": now})
    summary = []
    for source in RecoverySource:
        times = [r.seconds for r in recoveries if r.source is source]
        if times:
            summary.append(
                RecoverySummary(
                    source=source,
                    count=len(times),
                    median_seconds=round(statistics.median(times), 1),
                    max_seconds=round(max(times), 1),
                )
            )
    return ReliabilityStatus(
        losses=losses[-KEPT:],
        losses_in_window=len(losses),
        now=current,
        worst=worst,
        recoveries=recoveries[-KEPT:],
        summary=summary,
        predicted=predicted(spec, observed, now, rates),
    )


def objective_condition(spec: ReplicatedStoreSpec, prediction: PredictedRecovery) -> tuple[bool, str, str] | None:
    """RecoveryWithinObjective, when ``recovery.objective`` is set: False once rebuilding a member from
    empty (what happens when no usable snapshot exists) is predicted to outlast it."""
    objective = spec.recovery.objective
    if objective is None:
        return None
    budget = objective.total_seconds()
    empty = prediction.from_empty_seconds
    if empty <= budget:
        return (
            True,
            "WithinObjective",
            (f"a member is rebuilt from empty in about {empty:g}s, within recovery.objective ({objective})"),
        )
    snapshot = prediction.from_snapshot_seconds
    keeps = (
        f"; from the newest snapshot it takes about {snapshot:g}s plus the changes since"
        if snapshot is not None
        else "; no usable snapshot would shorten it"
    )
    return (
        False,
        "ObjectiveExceeded",
        (
            f"rebuilding a member from empty would take about {empty:g}s, beyond recovery.objective "
            f"({objective}){keeps}: keep snapshots fresh, or raise the objective"
        ),
    )
