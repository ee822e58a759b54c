"""Plan: the pure decision of what to do about one store, given its spec, its observed world and the time.

Second step of observe → plan → act. ``plan(spec, observed, now)`` returns a ``Plan``: the actions
to take, the status to write and when to look again. No I/O, no kopf or kubernetes imports; time is
an argument. Planning again on the world that a plan produced yields no duplicate action (I7),
because every decision is read off the observed world, never remembered.

The decisions, each a small named function, in the order ``plan`` takes them:

1. An invalid or paused spec gets status only (I6).
2. Missing Services and the PodDisruptionBudget are created.
3. Pods of retired members are deleted (an interrupted retirement completes).
4. Members whose pod finished for good get it deleted; members without a pod get one on their own
   volume (the fast path of self-healing: same volume, same zone, at once).
5. Missing members are created in the zones with the fewest members (skew ≤ 1).
6. Surplus members are retired from the zones with the most, newest first, one at a time and only
   while every other member is ready, so quorum is never broken on purpose (I2).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from phalanx.models import (
    Condition,
    ConditionStatus,
    ConditionType,
    DeletionPolicy,
    MemberState,
    MemberStatus,
    ReplicatedStoreSpec,
    ReplicatedStoreStatus,
    StorePhase,
    ZoneStatus,
)
from phalanx.names import client_service, disruption_budget, member_name, peers_service
from phalanx.observe import MemberView, Observed

# How soon to look again. Children's changes wake a store at once; these are the safety nets.
REQUEUE_BUSY = 2.0
REQUEUE_CONVERGING = 5.0
REQUEUE_STEADY = 60.0


# ------------------------------------------------------------------------------------------------
# Actions: values that say what to do and why; ``act`` carries them out.


@dataclass(frozen=True)
class CreateMember:
    """A new member: its PVC (restored from ``snapshot`` when given), then its pod."""

    member: str
    zone: str
    snapshot: str | None
    why: str
    reason: str = "MemberCreated"


@dataclass(frozen=True)
class CreatePod:
    """A member's pod is missing while its volume is fine: a new pod on the same volume."""

    member: str
    zone: str
    seeded_from: str | None
    why: str
    reason: str = "PodRecreated"


@dataclass(frozen=True)
class DeletePod:
    """A pod that must go (finished for good, or its member retired), guarded by its uid."""

    member: str
    uid: str
    why: str
    reason: str = "PodDeleted"


@dataclass(frozen=True)
class RetireMember:
    """A member leaves: its claim is marked retired first, then its pod goes, then (by policy) its volume."""

    member: str
    pod_uid: str | None
    claim_uid: str | None
    delete_volume: bool
    why: str
    reason: str = "MemberRetired"


ChildKind = Literal["peers-service", "client-service", "disruption-budget"]


@dataclass(frozen=True)
class EnsureChild:
    """A Service or the PodDisruptionBudget is missing: create it."""

    child: ChildKind
    name: str
    why: str
    reason: str = "ChildCreated"


Action = CreateMember | CreatePod | DeletePod | RetireMember | EnsureChild


@dataclass(frozen=True)
class Plan:
    """What to do now, what to report, and when to look again."""

    actions: tuple[Action, ...]
    status: ReplicatedStoreStatus
    requeue_after: float
    peers: tuple[str, ...] = ()
    """The member names after this plan: what new pods receive as PHALANX_PEERS."""
    notes: tuple[str, ...] = field(default=())
    """Why something was not done (for logs and tests)."""


# ------------------------------------------------------------------------------------------------
# Placement: pure arithmetic over zone counts.


def zone_counts(zones: Sequence[str], members: Iterable[MemberView]) -> Counter[str]:
    """Members per zone, with every zone of ``zones`` present (possibly at 0)."""
    counts: Counter[str] = Counter(dict.fromkeys(zones, 0))
    counts.update(m.zone for m in members)
    return counts


def place(zones: Sequence[str], counts: Mapping[str, int], how_many: int) -> list[str]:
    """Zones for ``how_many`` new members: each goes to a zone with the fewest (ties: by name)."""
    current = {zone: counts.get(zone, 0) for zone in zones}
    chosen = []
    for _ in range(how_many):
        zone = min(sorted(current), key=lambda z: current[z])
        current[zone] += 1
        chosen.append(zone)
    return chosen


def skew(zones: Sequence[str], members: Iterable[MemberView]) -> int:
    """The difference between the fullest and the emptiest of the store's zones."""
    counts = zone_counts(zones, members)
    values = [counts[zone] for zone in zones]
    return max(values) - min(values) if values else 0


def retirement_order(members: Sequence[MemberView]) -> list[MemberView]:
    """Who leaves first on scale down: unready before ready, then from the fullest zone, newest first."""
    counts = Counter(m.zone for m in members)
    return sorted(members, key=lambda m: (m.ready, -counts[m.zone], -m.serial))


# ------------------------------------------------------------------------------------------------
# Decisions


def desired_zones(spec: ReplicatedStoreSpec, observed: Observed) -> tuple[str, ...]:
    """``spec.zones`` as given, else the zones that have schedulable nodes."""
    return tuple(spec.zones) if spec.zones else observed.zones_with_nodes()


def ensure_children(spec: ReplicatedStoreSpec, observed: Observed, has_ports: bool) -> list[Action]:
    store = observed.store.name
    wanted: list[tuple[ChildKind, str]] = [
        ("peers-service", peers_service(store)),
        ("disruption-budget", disruption_budget(store)),
    ]
    if has_ports:
        wanted.insert(1, ("client-service", client_service(store)))
    return [
        EnsureChild(kind, name, f"{kind} {name} does not exist")
        for kind, name in wanted
        if f"{kind}/{name}" not in observed.children
    ]


def finish_retirements(observed: Observed) -> list[Action]:
    return [
        DeletePod(pod.name, pod.uid, f"member {pod.name} is retired; its pod is left over")
        for pod in observed.retired_pods
        if not pod.terminating
    ]


def heal_pods(observed: Observed) -> list[Action]:
    """At most one pod per member (I5): a finished pod is deleted first, a new one made when none is left."""
    actions: list[Action] = []
    for member in observed.members:
        pod, claim = member.pod, member.claim
        if pod is not None and pod.finished and not pod.terminating:
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


def scale(spec: ReplicatedStoreSpec, observed: Observed, zones: Sequence[str]) -> tuple[list[Action], int, list[str]]:
    """Create missing members or retire one surplus member. Returns actions, last serial, notes."""
    members = observed.members
    last_serial = observed.last_serial
    missing = spec.replicas - len(members)
    if missing > 0:
        if not zones:
            return [], last_serial, ["no zone has a schedulable node: cannot place new members"]
        actions: list[Action] = []
        for zone in place(zones, zone_counts(zones, members), missing):
            last_serial += 1
            name = member_name(observed.store.name, last_serial)
            actions.append(CreateMember(name, zone, None, f"{len(members)}/{spec.replicas} members; new one in {zone}"))
        return actions, last_serial, []
    if missing < 0:
        return retire_one(spec, members), last_serial, []
    return [], last_serial, []


def retire_one(spec: ReplicatedStoreSpec, members: Sequence[MemberView]) -> list[Action]:
    """One surplus member leaves, unless that would take a ready member while another is unready."""
    candidate = retirement_order(members)[0]
    others_ready = all(m.ready for m in members if m is not candidate)
    if candidate.ready and not others_ready:
        return []  # quorum first: wait until every other member is ready (I2)
    return [
        RetireMember(
            candidate.name,
            candidate.pod.uid if candidate.pod else None,
            candidate.claim.uid if candidate.claim else None,
            delete_volume=spec.deletion_policy is DeletionPolicy.DELETE,
            why=f"{len(members)} members for {spec.replicas} replicas: retiring the newest of the fullest zone",
        )
    ]


# ------------------------------------------------------------------------------------------------
# Status


def member_state(member: MemberView) -> MemberState:
    pod, claim = member.pod, member.claim
    if claim is None or claim.lost:
        return MemberState.LOST
    if pod is not None and pod.terminating:
        return MemberState.UNAVAILABLE
    if pod is None:
        return MemberState.RESTORING if claim.seeded_from and claim.phase == "Pending" else MemberState.PENDING
    if pod.ready:
        return MemberState.READY
    return MemberState.STARTING if pod.phase == "Pending" or pod.ready_since is None else MemberState.UNAVAILABLE


def _previous(status: Mapping[str, Any], key: str) -> dict[str, Mapping[str, Any]]:
    """The previous status' entries of a list-map (members, conditions), by name or type."""
    entries = status.get(key) or []
    field_name = "type" if key == "conditions" else "name"
    return {str(e.get(field_name)): e for e in entries if isinstance(e, Mapping)}


def member_statuses(observed: Observed, now: datetime) -> list[MemberStatus]:
    before = _previous(observed.status, "members")
    result = []
    for member in observed.members:
        state = member_state(member)
        prior = before.get(member.name, {})
        since = prior.get("since") if prior.get("state") == state.value else None
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
    previous: Mapping[str, Mapping[str, Any]],
    kind: ConditionType,
    value: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> Condition:
    """A condition that keeps its lastTransitionTime while its status does not change."""
    status = ConditionStatus.TRUE if value else ConditionStatus.FALSE
    prior = previous.get(kind.value, {})
    since = prior.get("lastTransitionTime") if prior.get("status") == status.value else None
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
) -> ReplicatedStoreStatus:
    """Status in kstatus terms: Ready, Reconciling, Stalled, plus Degraded and ZonesBalanced."""
    members = member_statuses(observed, now)
    ready = [m for m in members if m.state is MemberState.READY]
    desired = spec.replicas if spec else len(members)
    per_zone = zone_counts(zones, observed.members)
    zone_list = [
        ZoneStatus(name=z, members=per_zone[z], ready=sum(1 for m in ready if m.zone == z)) for z in sorted(per_zone)
    ]
    healthy_zones = sum(1 for z in zone_list if z.members and z.ready == z.members)
    balanced = skew(zones, observed.members) <= 1 and all(m.zone in zones for m in observed.members)
    unready = [m.name for m in members if m.state is not MemberState.READY]
    all_ready = len(ready) == desired == len(members)
    previous = _previous(observed.status, "conditions")
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
        elif all_ready and not busy:
            phase = StorePhase.READY
        elif len(members) < desired and not any(m.ready for m in observed.members):
            phase = StorePhase.PENDING
        else:
            phase = StorePhase.DEGRADED if unready else StorePhase.PENDING
        message = f"{len(ready)}/{desired} members ready"
        waiting = "; ".join(notes) if notes else (f"waiting for: {', '.join(unready)}" if unready else "converging")
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
            cond(ConditionType.STALLED, False, "Paused" if paused else "Progressing", "no blocking problem"),
            cond(
                ConditionType.DEGRADED,
                bool(unready) and len(members) > 0,
                "MembersUnavailable" if unready else "AllMembersReady",
                f"not ready: {', '.join(unready)}" if unready else message,
            ),
        ]
    conditions.append(
        cond(
            ConditionType.ZONES_BALANCED,
            balanced,
            "Balanced" if balanced else "Unbalanced",
            ", ".join(f"{z.name}={z.members}" for z in zone_list) or "no zones",
        )
    )
    return ReplicatedStoreStatus(
        observed_generation=gen,
        conditions=conditions,
        phase=phase,
        replicas=len(members),
        ready_replicas=len(ready),
        updated_replicas=sum(1 for m in members if revision and m.revision == revision),
        ready_display=f"{len(ready)}/{desired}",
        zones_display=f"{healthy_zones}/{len(zone_list)}",
        current_revision=revision,
        update_revision=revision,
        zones=zone_list,
        members=members,
        last_serial=max(observed.last_serial, last_serial or 0),
        snapshots=_keep(observed.status, "snapshots"),
    )


def _keep(status: Mapping[str, Any], key: str) -> Any:
    """A status section this planner does not own, carried over unchanged."""
    return status.get(key)


# ------------------------------------------------------------------------------------------------
# The plan


def plan(
    spec: ReplicatedStoreSpec | None,
    observed: Observed,
    now: datetime,
    *,
    invalid: str | None = None,
    revision: str | None = None,
    has_ports: bool = False,
) -> Plan:
    """Decide. ``spec`` is None (and ``invalid`` says why) when the spec did not validate."""
    if spec is None or invalid is not None:
        message = invalid or "the spec did not validate"
        status = build_status(None, observed, now, zones=(), busy=False, stalled=message)
        return Plan((), status, REQUEUE_STEADY, notes=(message,))
    zones = desired_zones(spec, observed)
    if spec.paused:
        status = build_status(spec, observed, now, zones=zones, busy=False, paused=True, revision=revision)
        return Plan((), status, REQUEUE_STEADY, notes=("paused",))

    actions: list[Action] = []
    actions += ensure_children(spec, observed, has_ports)
    actions += finish_retirements(observed)
    actions += heal_pods(observed)
    scaling, last_serial, notes = scale(spec, observed, zones)
    actions += scaling

    retiring = {a.member for a in actions if isinstance(a, RetireMember)}
    peers = tuple(
        [m.name for m in observed.members if m.name not in retiring]
        + [a.member for a in actions if isinstance(a, CreateMember)]
    )
    status = build_status(
        spec, observed, now, zones=zones, busy=bool(actions), revision=revision, last_serial=last_serial, notes=notes
    )
    if actions:
        requeue = REQUEUE_BUSY
    elif status.ready_replicas < spec.replicas or notes:
        requeue = REQUEUE_CONVERGING
    else:
        requeue = REQUEUE_STEADY
    return Plan(tuple(actions), status, requeue, peers=peers, notes=tuple(notes))


# ------------------------------------------------------------------------------------------------
# Deletion: the finalizer applies the deletion policy; data goes only when the policy says so (I3).


@dataclass(frozen=True)
class KeepVolume:
    """deletionPolicy Retain: mark the claim so that a store re-created under the same name adopts it."""

    member: str
    why: str
    reason: str = "VolumeRetained"


@dataclass(frozen=True)
class DeleteVolume:
    """deletionPolicy Delete (or Snapshot, once its final snapshot is ready): the claim goes."""

    member: str
    uid: str
    why: str
    reason: str = "VolumeDeleted"


@dataclass(frozen=True)
class TakeSnapshot:
    """A VolumeSnapshot of a member's volume (the final one, for deletionPolicy Snapshot)."""

    member: str
    zone: str
    name: str
    why: str
    reason: str = "SnapshotTaken"


FinalAction = DeletePod | KeepVolume | DeleteVolume | TakeSnapshot


def final_snapshot_name(member: str) -> str:
    return f"{member}-final"


def plan_deletion(
    policy: DeletionPolicy,
    observed: Observed,
    claims: Sequence[tuple[str, str, bool, bool]],
    snapshots_ready: Mapping[str, bool],
) -> tuple[list[FinalAction], bool]:
    """What the finalizer does, and whether it is done (the store may go).

    ``claims`` are every claim of the store, retired ones included: (member, uid, retired, retained).
    ``snapshots_ready`` maps the final snapshots that exist to their readiness.
    """
    actions: list[FinalAction] = [
        DeletePod(m.name, m.pod.uid, "the store is being deleted")
        for m in observed.members
        if m.pod is not None and not m.pod.terminating
    ]
    actions += finish_retirements(observed)  # type: ignore[arg-type]
    if policy is DeletionPolicy.RETAIN:
        actions += [
            KeepVolume(member, "deletionPolicy Retain: kept for a store re-created under the same name")
            for member, _, retired, retained in claims
            if not retired and not retained
        ]
        return actions, True
    if policy is DeletionPolicy.SNAPSHOT:
        live = {m.name: m for m in observed.members}
        waiting = False
        for member, _, retired, _ in claims:
            if retired or member not in live:
                continue
            snapshot = final_snapshot_name(member)
            if snapshot not in snapshots_ready:
                actions.append(
                    TakeSnapshot(member, live[member].zone, snapshot, "deletionPolicy Snapshot: final snapshot")
                )
                waiting = True
            elif not snapshots_ready[snapshot]:
                waiting = True
        if waiting:
            return actions, False  # volumes stay until every final snapshot is ready
    actions += [DeleteVolume(member, uid, f"deletionPolicy {policy.value}") for member, uid, _, _ in claims]
    return actions, True
