"""Snapshots: the lineage, taken on schedule or on request, backed off on failure, pruned by
count and age, and the freshest usable one picked to seed a member (I4).
"""

from __future__ import annotations

from datetime import datetime

from phalanx.models import (
    DrillResult,
    RecoverySource,
    ReplicatedStoreSpec,
    SnapshotStatus,
)
from phalanx.observe import MemberView, Observed, SnapshotView
from phalanx.plan.actions import (
    REQUEUE_CONVERGING,
    Action,
    DeleteSnapshot,
    Snapshot,
)
from phalanx.plan.health import (
    serving,
)


def usable_snapshots(spec: ReplicatedStoreSpec, observed: Observed, now: datetime) -> list[SnapshotView]:
    """Snapshots a member may be seeded from (I4): ready, of this store, younger than maxAge; newest first.
    Not one that a restore was seen to fail from: a member's, or the last restore drill's."""
    if spec.snapshots is None:
        return []
    max_age = spec.snapshots.effective_max_age().total_seconds()
    # A restore from it failed (the member it seeded was retired before its volume was ever bound).
    failed_restores = {c.seeded_from for c in observed.retired_claims if c.seeded_from and c.phase == "Pending"}
    drilled = observed.previous.last_drill
    if drilled is not None and drilled.result is DrillResult.FAILED and drilled.reason == "RestoreFailed":
        failed_restores.add(drilled.snapshot)  # the drill proved it does not restore: seed from another
    fit = [
        snap
        for snap in observed.snapshots
        if snap.ready
        and not snap.terminating
        and snap.created
        and (now - snap.created).total_seconds() < max_age
        and snap.name not in failed_restores
    ]
    return sorted(fit, key=lambda snap: snap.created or now, reverse=True)


def seed_for(spec: ReplicatedStoreSpec, observed: Observed, now: datetime) -> tuple[str | None, str]:
    """The snapshot a new member starts from, or None and why it starts empty."""
    if spec.recovery.source is RecoverySource.EMPTY:
        return None, "recovery.source is Empty"
    if spec.snapshots is None:
        return None, "no snapshots are configured"
    usable = usable_snapshots(spec, observed, now)
    if not usable:
        return None, f"no usable snapshot (none ready and younger than {spec.snapshots.effective_max_age()})"
    return usable[0].name, f"freshest usable snapshot {usable[0].name}"


def snapshot_name(store: str, now: datetime) -> str:
    """``<store>-<UTC timestamp>``: sortable, and the same for a plan repeated within the second."""
    return f"{store}-{now.strftime('%Y%m%d-%H%M%S')}"


def failure_count(observed: Observed) -> tuple[int, str | None]:
    """Failed snapshot attempts in a row, and the last one counted. Kept in status, not counted from
    the failed snapshots that exist: pruning deletes superseded failures, and the count must outlive
    them (else the backoff never grows past its second step)."""
    before = observed.previous.snapshots
    failures, last = (before.failures, before.last_failure) if before is not None else (0, None)
    live = [snap for snap in observed.snapshots if not snap.terminating]
    latest = live[-1] if live else None
    if latest is not None and latest.ready:
        return 0, None
    if latest is not None and latest.failed and latest.name != last:
        return failures + 1, latest.name
    return failures, last


def failure_backoff(spec: ReplicatedStoreSpec, observed: Observed) -> float:
    """Seconds before retrying after consecutive failed snapshots: 10 s doubling, capped at the interval."""
    assert spec.snapshots is not None
    failures, _ = failure_count(observed)
    interval = spec.snapshots.interval.total_seconds()
    return min(interval, 10.0 * 2 ** min(failures - 1, 30)) if failures else interval


def snapshot_source(observed: Observed, after_zone: str | None) -> MemberView | None:
    """A serving member to snapshot, from the zone after the last snapshot's (round-robin over zones).
    Serving, not only ready: a pod on a NotReady node may still say Ready, and its data may be stale."""
    ready = [m for m in observed.members if serving(m, observed)]
    zones = sorted({m.zone for m in ready})
    if not zones:
        return None
    later = [z for z in zones if after_zone is None or z > after_zone]
    zone = (later or zones)[0]
    return min((m for m in ready if m.zone == zone), key=lambda m: m.serial)


def take_snapshot(spec: ReplicatedStoreSpec, observed: Observed, now: datetime) -> tuple[list[Action], float | None]:
    """A snapshot when one is due (or asked for), one at a time; and when the next one is due."""
    if spec.snapshots is None:
        return [], None
    live = [snap for snap in observed.snapshots if not snap.terminating]
    latest = live[-1] if live else None
    if latest is not None and not latest.ready and not latest.failed:
        return [], REQUEUE_CONVERGING  # one in flight: wait for it
    request = observed.snapshot_request
    answered = request is None or any(snap.request == request for snap in observed.snapshots)
    due_in = 0.0
    if latest is not None and latest.created is not None:
        wait = failure_backoff(spec, observed) if latest.failed else spec.snapshots.interval.total_seconds()
        due_in = wait - (now - latest.created).total_seconds()
    if due_in > 0 and answered:
        return [], due_in
    source = snapshot_source(observed, latest.zone if latest else None)
    if source is None:
        return [], REQUEUE_CONVERGING
    why = f"on-demand request {request!r}" if not answered else f"every {spec.snapshots.interval}"
    name = snapshot_name(observed.store.name, now)
    action = Snapshot(source.name, source.zone, name, why, request=None if answered else request)
    return [action], spec.snapshots.interval.total_seconds()


def prune_snapshots(
    spec: ReplicatedStoreSpec, observed: Observed, now: datetime, restoring: frozenset[str] = frozenset()
) -> list[Action]:
    """Keep the newest ``keep`` ready snapshots younger than maxAge (always the newest ready one),
    the newest failure (for the record), and any snapshot a restore is reading from."""
    if spec.snapshots is None:
        return []
    in_use = {m.claim.seeded_from for m in observed.members if m.claim and m.claim.phase == "Pending"} | restoring
    max_age = spec.snapshots.effective_max_age().total_seconds()
    ready = [snap for snap in reversed(observed.snapshots) if snap.ready and not snap.terminating]
    failed = [snap for snap in reversed(observed.snapshots) if snap.failed and not snap.terminating]
    doomed = []
    for index, snap in enumerate(ready):
        too_many = index >= spec.snapshots.keep
        too_old = index > 0 and snap.created is not None and (now - snap.created).total_seconds() >= max_age
        if (too_many or too_old) and snap.name not in in_use:
            doomed.append((snap, "beyond keep" if too_many else "older than maxAge"))
    doomed += [(snap, "superseded failure") for snap in failed[1:]]
    return [DeleteSnapshot(snap.name, snap.uid, f"snapshot {snap.name}: {why}") for snap, why in doomed]


def snapshot_status(observed: Observed) -> SnapshotStatus | None:
    ready = [snap for snap in observed.snapshots if snap.ready and not snap.terminating]
    failures, last_failure = failure_count(observed)
    if not observed.snapshots and not failures:
        return None
    latest = ready[-1] if ready else None
    return SnapshotStatus(
        latest=latest.name if latest else None,
        latest_time=latest.created if latest else None,
        count=len(ready),
        failures=failures,
        last_failure=last_failure,
    )


def snapshots_fresh(spec: ReplicatedStoreSpec, observed: Observed, now: datetime) -> tuple[bool, str]:
    """Fresh while the newest ready snapshot is younger than two intervals."""
    assert spec.snapshots is not None
    interval = spec.snapshots.interval.total_seconds()
    ready = [snap for snap in observed.snapshots if snap.ready and snap.created]
    failure = next((snap for snap in reversed(observed.snapshots) if snap.failed), None)
    failing = f"; last failure: {failure.name}: {failure.error}" if failure else ""
    if not ready:
        return False, "no ready snapshot yet" + failing
    latest = ready[-1]
    assert latest.created is not None
    age = (now - latest.created).total_seconds()
    # The message names the snapshot's time, never its age: an age would change the status (a write)
    # on every pass of an otherwise steady store.
    taken = latest.created.strftime("%Y-%m-%dT%H:%M:%SZ")
    if age < 2 * interval:
        return True, f"latest snapshot {latest.name} taken at {taken} (every {spec.snapshots.interval})"
    return False, f"latest snapshot {latest.name} taken at {taken}, more than twice the interval ago" + failing
