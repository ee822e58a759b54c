"""Restore drills: a snapshot that has never been restored is a hope, not a backup.

Every ``snapshots.drill.interval`` (counted from the end of the last drill), while the store is
healthy, the newest usable snapshot (the one a lost member would be seeded from: I4) is restored into
a throwaway claim in the next of the store's zones, checked by the user's pod when ``verify`` is set,
and judged: the claim bound (and the pod exited 0) within ``timeout``, or not.

Level-triggered like the rest of the planner: a drill in flight is its claim and pod as observed, one
at a time; its verdict is read off them. The verdict goes into status (``lastDrill``, the condition
RestoreVerified) in the same pass that deletes the drill's objects, and status is written before act:
a crash in between leaves the verdict recorded and a drill that the next pass deletes again (it knows
the drill by its name in ``lastDrill``). Leftovers without a verdict (an older drill, a pod whose
claim is gone, a drill whose spec was removed) are abandoned: deleted, nothing recorded.

Drills never name a member: every action here carries a drill's name, and a drill's objects are
Phalanx's own by provenance (observe proves it), so a member's volume is never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from phalanx.models import (
    DrillRecord,
    DrillResult,
    DrillSpec,
    ReplicatedStoreSpec,
)
from phalanx.names import drill_name
from phalanx.observe import DrillView, Observed
from phalanx.plan.actions import (
    Action,
    DeleteDrill,
    StartDrill,
)
from phalanx.plan.health import (
    serving,
)
from phalanx.plan.snapshots import (
    usable_snapshots,
)


def drill_spec(spec: ReplicatedStoreSpec | None) -> DrillSpec | None:
    """``spec.snapshots.drill``, when drills are asked for."""
    return spec.snapshots.drill if spec is not None and spec.snapshots is not None else None


def current_drill(observed: Observed) -> DrillView | None:
    """The drill in flight: the newest whose claim stands and whose verdict is not recorded yet.
    Any other drill that exists is a leftover (see ``plan_drills``)."""
    judged = observed.previous.last_drill.name if observed.previous.last_drill is not None else None
    live = [d for d in observed.drills if d.claim is not None and not d.claim.terminating and d.name != judged]
    return live[-1] if live else None


def verdict(spec: DrillSpec, drill: DrillView, now: datetime) -> tuple[DrillResult, str, str] | None:
    """The drill's result, reason and message once it has one; None while it is still running."""
    claim, pod = drill.claim, drill.pod
    if claim is None:
        return None  # nothing left to judge: abandoned (plan_drills)
    source = drill.snapshot or "its snapshot"
    where = f"{source} restored into {drill.name} in {drill.zone or 'its zone'}"
    if claim.lost:
        return DrillResult.FAILED, "RestoreFailed", f"{where}: its volume was lost"
    bound = claim.phase == "Bound"
    if bound and spec.verify is None:
        return DrillResult.SUCCEEDED, "Restored", f"{where}: the claim bound"
    if bound and pod is not None and pod.phase == "Succeeded":
        return DrillResult.SUCCEEDED, "Verified", f"{where}: the verification pod exited 0"
    if pod is not None and pod.phase == "Failed":
        codes = ", ".join(str(code) for code in drill.exit_codes if code != 0)
        exited = f"exited {codes}" if codes else f"failed ({drill.pod_reason or 'no exit code'})"
        return DrillResult.FAILED, "VerifyFailed", f"{where}: the verification pod {exited}"
    started = drill.started or now
    if (now - started).total_seconds() < spec.timeout.total_seconds():
        return None
    late = f"{where}: not done within the timeout ({spec.timeout})"
    if spec.verify is not None and pod is None:
        return DrillResult.FAILED, "VerifyNotStarted", f"{late}: its verification pod was never created"
    if not bound:
        waiting = f" (its pod: {pod.waiting})" if pod is not None and pod.waiting else ""
        return DrillResult.FAILED, "RestoreFailed", f"{late}: the claim is still {claim.phase}{waiting}"
    assert pod is not None
    return DrillResult.FAILED, "VerifyTimedOut", f"{late}: the verification pod is still {pod.phase}"


def drill_report(spec: ReplicatedStoreSpec | None, observed: Observed, now: datetime) -> DrillRecord | None:
    """``status.lastDrill``: the verdict of the drill in flight when it has one now, else the last
    one recorded (a verdict, once written, is never recomputed: the drill's objects are going)."""
    previous = observed.previous.last_drill
    drill = drill_spec(spec)
    current = current_drill(observed)
    if drill is None or current is None:
        return previous
    judged = verdict(drill, current, now)
    if judged is None:
        return previous
    result, reason, message = judged
    started = current.started or now
    succeeded = result is DrillResult.SUCCEEDED
    return DrillRecord(
        name=current.name,
        snapshot=current.snapshot or "",
        zone=current.zone or "",
        started_at=started,
        finished_at=now,
        seconds=max(0.0, (now - started).total_seconds()),
        result=result,
        reason=reason,
        message=message,
        last_succeeded_at=now if succeeded else previous.last_succeeded_at if previous is not None else None,
    )


def restore_verified(spec: ReplicatedStoreSpec, record: DrillRecord | None) -> tuple[bool, str, str] | None:
    """The condition RestoreVerified (value, reason, message), once a drill has ended; None before,
    or without drills. Its message names the drill and when it ended, never an age: it changes only
    with a new verdict (no status write per pass)."""
    if drill_spec(spec) is None or record is None:
        return None
    ended = record.finished_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    succeeded = record.result is DrillResult.SUCCEEDED
    reason = "DrillSucceeded" if succeeded else "DrillFailed"
    return succeeded, reason, f"drill {record.name} ({record.reason}), ended {ended}: {record.message}"


def healthy(spec: ReplicatedStoreSpec, observed: Observed) -> bool:
    """Every member there and serving: a drill adds load (a restore, a pod), never during a recovery."""
    return len(observed.members) == spec.replicas and all(serving(m, observed) for m in observed.members)


def next_zone(zones: Sequence[str], after: str | None) -> str | None:
    """The zone after ``after`` (round-robin by name), so that drills prove restores in every zone."""
    ordered = sorted(set(zones))
    if not ordered:
        return None
    later = [z for z in ordered if after is None or z > after]
    return (later or ordered)[0]


def plan_drills(
    spec: ReplicatedStoreSpec, observed: Observed, now: datetime, zones: Sequence[str], calm: bool
) -> tuple[list[Action], float | None]:
    """What to do about drills, and when to look again (None: nothing to wait for).

    ``zones``: where new members could go now (drills rotate over them); ``calm``: nothing else
    changes members in this pass and no rollout is in flight. Ended and abandoned drills are deleted;
    a drill in flight whose pod is missing (the operator stopped between its claim and its pod) gets
    its pod; a new drill starts when one is due, none exists, the store is healthy and calm, and a
    usable snapshot exists."""
    drill = drill_spec(spec)
    record = drill_report(spec, observed, now)
    current = current_drill(observed) if drill is not None else None
    actions: list[Action] = []
    requeue: float | None = None
    for found in observed.drills:
        if found is current and (record is None or record.name != found.name):
            assert drill is not None and current is not None
            left = drill.timeout.total_seconds() - (now - (current.started or now)).total_seconds()
            requeue = max(left, 0.0) + 0.1  # the verdict at the timeout at the latest
            if drill.verify is not None and current.pod is None and current.zone and current.snapshot:
                why = f"restore drill {current.name}: its verification pod is missing"
                actions.append(StartDrill(current.name, current.zone, current.snapshot, why, verify=True))
            continue
        if record is not None and record.name == found.name:
            why = f"restore drill {found.name} ended: {record.result.value} ({record.reason})"
        elif drill is None:
            why = f"restore drill {found.name} abandoned: spec.snapshots.drill is not set"
        elif found.claim is None or found.claim.terminating:
            why = f"restore drill {found.name} abandoned: its claim is gone"
        else:
            why = f"restore drill {found.name} abandoned: a newer drill exists"
        pod_uid = found.pod.uid if found.pod is not None and not found.pod.terminating else None
        claim_uid = found.claim.uid if found.claim is not None and not found.claim.terminating else None
        if pod_uid or claim_uid:
            actions.append(DeleteDrill(found.name, pod_uid, claim_uid, why))
    if drill is None or observed.drills:
        return actions, requeue  # one drill at a time: the next only once this one's objects are gone
    interval = drill.interval.total_seconds()
    due_in = interval - (now - record.finished_at).total_seconds() if record is not None else 0.0
    if due_in > 0:
        return actions, due_in
    if not calm or not healthy(spec, observed):
        return actions, None  # a member's change wakes the store again
    usable = usable_snapshots(spec, observed, now)
    zone = next_zone(zones, record.zone if record is not None else None)
    if not usable or zone is None:
        return actions, None  # a snapshot made ready, a node back: either wakes the store
    node = None
    if drill.verify is None:  # no pod will consume the claim: a node of the zone is named to provision it
        node = next((n.name for n in observed.nodes if n.zone == zone and n.schedulable), None)
    snapshot = usable[0].name
    why = f"restore drill every {drill.interval}: {snapshot} into a throwaway claim in {zone}"
    name = drill_name(observed.store.name, now)
    actions.append(StartDrill(name, zone, snapshot, why, verify=drill.verify is not None, node=node))
    return actions, drill.timeout.total_seconds() + 0.1


def drill_sources(observed: Observed, actions: Sequence[Action]) -> frozenset[str]:
    """Snapshots that drills are restoring from, or are about to: retention must not prune them
    mid-restore (a restore from a deleted snapshot fails, and the drill would blame the lineage)."""
    restoring = {d.snapshot for d in observed.drills if d.snapshot and d.claim is not None and d.claim.phase != "Bound"}
    return frozenset(restoring | {a.snapshot for a in actions if isinstance(a, StartDrill)})
