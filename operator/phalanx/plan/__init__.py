"""Plan: the pure decision of what to do about one store, given its spec, its observed world and the time.

Second step of observe → plan → act. ``plan(spec, observed, now)`` returns a ``Plan``: the actions
to take, the status to write and when to look again. No I/O, no kopf or kubernetes imports; time is
an argument. Planning again on the world that a plan produced yields no duplicate action (I7),
because every decision is read off the observed world, never remembered.

One concern per module, layered (``make layers`` enforces it; each imports only those below):

- ``deletion``: what the finalizer does under each deletion policy (I3);
- ``status`` and ``membership``: what the store reports; heal, scale, retire, rebalance;
- ``recovery``: loss, and replacement from the freshest usable snapshot;
- ``drills``: restore drills, proving the lineage restores (beside recovery: both restore snapshots);
- ``snapshots``, ``volumes``, ``children``: the lineage; pinning, pruning and resizing volumes; the
  Services and PodDisruptionBudget;
- ``budget`` and ``placement``: the one disruption budget; zones, skew, outages;
- ``health``: the one answer to "is this member healthy?";
- ``actions``: the vocabulary (the actions and the ``Plan``).

This module holds the orchestrator, ``plan``: linear steps, each with the one reason it comes where
it does, and ``next_deadline``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime

from phalanx.models import MemberState, ReplicatedStoreSpec
from phalanx.observe import Observed
from phalanx.plan.actions import (
    REQUEUE_BUSY,
    REQUEUE_CONVERGING,
    REQUEUE_STEADY,
    Action,
    ChildKind,
    CreateMember,
    CreatePod,
    DeleteDrill,
    DeletePod,
    DeleteSnapshot,
    DeleteVolume,
    EnsureChild,
    ExpandVolume,
    FinalAction,
    KeepVolume,
    PinVolume,
    Plan,
    RetireMember,
    Snapshot,
    StartDrill,
)
from phalanx.plan.budget import (
    others_serve,
)
from phalanx.plan.children import (
    ensure_children,
)
from phalanx.plan.deletion import (
    final_snapshot_name,
    plan_deletion,
)
from phalanx.plan.drills import (
    drill_report,
    drill_sources,
    plan_drills,
    restore_verified,
)
from phalanx.plan.health import (
    FIRST_POD_WINDOW,
    ON_THE_WAY,
    member_state,
    never_served,
    prior_since,
    serving,
    stuck,
)
from phalanx.plan.membership import (
    finish_retirements,
    heal_pods,
    rebalance,
    retire_one,
    retirement_order,
    scale,
)
from phalanx.plan.placement import (
    desired_zones,
    grace_start,
    observed_zones,
    place,
    placeable,
    returning,
    settled,
    skew,
    stragglers,
    zone_counts,
    zone_down_since,
    zone_outages,
    zone_returned_at,
)
from phalanx.plan.recovery import (
    loss_of,
    member_failed_since,
    recover,
    recovery_progress,
    restore_deadline,
    unfinished_recovery,
)
from phalanx.plan.reliability import (
    DEFAULT_RATES,
    Rates,
    blast_radius,
    objective_condition,
    predicted,
    reliability,
)
from phalanx.plan.rollout import (
    GATE_SPACING,
    Rollout,
    budget,
    read_gate,
    request_targets,
    roll,
    zone_order,
)
from phalanx.plan.snapshots import (
    failure_backoff,
    failure_count,
    prune_snapshots,
    seed_for,
    snapshot_name,
    snapshot_source,
    snapshot_status,
    snapshots_fresh,
    take_snapshot,
    usable_snapshots,
)
from phalanx.plan.status import (
    FOREIGN_LISTED,
    REFUSED_PASSES,
    Progress,
    blocked_by,
    build_status,
    condition,
    foreign_report,
    member_statuses,
)
from phalanx.plan.volumes import (
    delete_at_retirement,
    deletes_retired,
    pin_volumes,
    prune_retired_volumes,
    retired_clock,
    retired_report,
    storage_drift,
)

__all__ = [
    "DEFAULT_RATES",
    "FIRST_POD_WINDOW",
    "FOREIGN_LISTED",
    "GATE_SPACING",
    "ON_THE_WAY",
    "REFUSED_PASSES",
    "REQUEUE_BUSY",
    "REQUEUE_CONVERGING",
    "REQUEUE_STEADY",
    "Action",
    "ChildKind",
    "CreateMember",
    "CreatePod",
    "DeleteDrill",
    "DeletePod",
    "DeleteSnapshot",
    "DeleteVolume",
    "EnsureChild",
    "ExpandVolume",
    "FinalAction",
    "KeepVolume",
    "PinVolume",
    "Plan",
    "Progress",
    "Rates",
    "RetireMember",
    "Rollout",
    "Snapshot",
    "StartDrill",
    "blast_radius",
    "blocked_by",
    "budget",
    "build_status",
    "condition",
    "delete_at_retirement",
    "deletes_retired",
    "desired_zones",
    "drill_report",
    "drill_sources",
    "ensure_children",
    "failure_backoff",
    "failure_count",
    "final_snapshot_name",
    "finish_retirements",
    "foreign_report",
    "grace_start",
    "heal_pods",
    "loss_of",
    "member_failed_since",
    "member_state",
    "member_statuses",
    "never_served",
    "next_deadline",
    "objective_condition",
    "observed_zones",
    "others_serve",
    "pin_volumes",
    "place",
    "placeable",
    "plan",
    "plan_deletion",
    "plan_drills",
    "predicted",
    "prior_since",
    "prune_retired_volumes",
    "prune_snapshots",
    "read_gate",
    "rebalance",
    "recover",
    "recovery_progress",
    "reliability",
    "request_targets",
    "restore_deadline",
    "restore_verified",
    "retire_one",
    "retired_clock",
    "retired_report",
    "retirement_order",
    "returning",
    "roll",
    "scale",
    "seed_for",
    "serving",
    "settled",
    "skew",
    "snapshot_name",
    "snapshot_source",
    "snapshot_status",
    "snapshots_fresh",
    "storage_drift",
    "stragglers",
    "stuck",
    "take_snapshot",
    "unfinished_recovery",
    "usable_snapshots",
    "zone_counts",
    "zone_down_since",
    "zone_order",
    "zone_outages",
    "zone_returned_at",
]


def plan(
    spec: ReplicatedStoreSpec | None,
    observed: Observed,
    now: datetime,
    *,
    invalid: str | None = None,
    revision: str | None = None,
    has_ports: bool = False,
    child_digests: Mapping[str, str] | None = None,
    collisions: Mapping[str, str] | None = None,
    refused: str | None = None,
    expansion_refused: str | None = None,
    rates: Rates = DEFAULT_RATES,
) -> Plan:
    """Decide. ``spec`` is None (and ``invalid`` says why) when the spec did not validate.

    What the cluster told the handlers, and no observation shows, comes in as well: ``collisions``
    (``kind/name`` of a child whose name another owner's object holds -> who holds it), ``refused``
    (the API server has refused this store's writes pass after pass: its message), and
    ``expansion_refused`` (why the claims could not grow to ``storage.size``)."""
    if spec is None or invalid is not None:  # I6: an invalid spec gets status only, with the reason
        message = invalid or "the spec did not validate"
        status = build_status(None, observed, now, observed_zones(observed), Progress(stalled=message))
        return Plan((), status, REQUEUE_STEADY, notes=(message,))
    home_zones = desired_zones(spec, observed)
    if spec.paused:  # I6: paused is status only
        status = build_status(spec, observed, now, home_zones, Progress(paused=True, revision=revision))
        return Plan((), status, REQUEUE_STEADY, notes=("paused",))

    actions: list[Action] = []
    # Services first: members' peer DNS names resolve through them.
    actions += ensure_children(spec, observed, has_ports, child_digests, frozenset(collisions or {}))
    actions += finish_retirements(observed)  # an interrupted retirement completes before anything new
    outages = zone_outages(spec, observed, now)
    placeable_zones = placeable(home_zones, observed, outages)
    # Losses before scaling: a replacement keeps its lost member's zone, and takes the serial first.
    recovery, records, last_serial, notes = recover(spec, observed, now, home_zones, observed.last_serial)
    membership: list[Action] = list(recovery)
    if not recovery:
        scaling, last_serial, scale_notes = scale(
            spec, observed, placeable_zones, now, last_serial, home_zones=home_zones
        )
        notes += scale_notes
        membership += scaling
        home_outages = [z for z in outages if z in home_zones or any(m.zone == z for m in observed.members)]
        if not scaling and not notes and not home_outages:  # an outage elsewhere is no reason to wait
            moves, last_serial = rebalance(spec, observed, home_zones, placeable_zones, now, last_serial)
            membership += moves
    leaving = frozenset(a.member for a in membership if isinstance(a, RetireMember))
    actions += heal_pods(observed, skip=leaving)  # the fast path: same volume; none for a member leaving
    actions += membership
    # The rollout last among member changes: a step starts only when nothing else changes members.
    rollout = roll(spec, observed, now, revision, home_zones, last_serial, quiet=not membership)
    actions += rollout.actions
    last_serial = max(last_serial, rollout.last_serial)
    if not any(isinstance(a, (CreateMember, RetireMember)) for a in actions):  # I3: only once all settled
        actions += prune_retired_volumes(spec, observed, now)
    actions += pin_volumes(spec, observed)  # every pass: a volume bound since is pinned at once
    expansions, storage = storage_drift(spec, observed, expansion_refused)
    actions += expansions
    # Snapshots last: a restore this plan starts keeps its source from being pruned.
    snapshot_actions, snapshot_due = take_snapshot(spec, observed, now)
    actions += snapshot_actions
    # Drills after snapshots, once nothing else changes members (no load is added to a recovery or a
    # rollout); what they restore from is kept from pruning too.
    calm = rollout.status is None and not any(
        isinstance(a, (CreateMember, CreatePod, DeletePod, RetireMember)) for a in actions
    )
    drill_actions, drill_due = plan_drills(spec, observed, now, placeable_zones, calm)
    restoring = frozenset(a.snapshot for a in actions if isinstance(a, CreateMember) and a.snapshot)
    actions += prune_snapshots(spec, observed, now, restoring | drill_sources(observed, drill_actions))
    actions += drill_actions

    actions = steer_clear(observed, actions)
    retiring = {a.member for a in actions if isinstance(a, RetireMember)}
    peers = tuple(
        [m.name for m in observed.members if m.name not in retiring]
        + [a.member for a in actions if isinstance(a, CreateMember)]
    )
    member_work = [
        a
        for a in actions
        if not isinstance(a, (Snapshot, DeleteSnapshot, PinVolume, ExpandVolume, StartDrill, DeleteDrill))
        and a not in rollout.actions
        and not (isinstance(a, CreatePod) and a.member in rollout.budgeted)
    ]
    progress = Progress(
        busy=bool(member_work),
        revision=revision,
        last_serial=last_serial,
        notes=notes,
        records=records,
        blocked=rollout.halted or blocked_by(spec, observed, now, collisions or {}, refused),
        storage=storage,
        rollout=rollout.status,
        budgeted=rollout.budgeted,
        request=rollout.request,
        rates=rates,
    )
    status = build_status(spec, observed, now, home_zones, progress)
    if actions:
        requeue = REQUEUE_BUSY
    elif status.ready_replicas < spec.replicas or notes:
        requeue = REQUEUE_CONVERGING
    else:
        requeue = REQUEUE_STEADY
    requeue = min(requeue, max(snapshot_due, 0.5)) if snapshot_due is not None else requeue
    requeue = min(requeue, max(drill_due, 0.5)) if drill_due is not None else requeue
    requeue = min(requeue, next_deadline(spec, observed, now))
    requeue = min(requeue, rollout.requeue) if rollout.requeue is not None else requeue
    return Plan(tuple(actions), status, requeue, peers=peers, notes=tuple(notes), recoveries=tuple(records))


def next_deadline(spec: ReplicatedStoreSpec, observed: Observed, now: datetime) -> float:
    """Seconds until a grace period runs out (a node's, a zone's, a restore's, a new member's
    progress deadline): look again then."""
    moments = []
    member_grace = spec.recovery.member_failure_grace.total_seconds()
    zone_grace = spec.recovery.zone_failure_grace.total_seconds()
    for node in observed.nodes:
        if node.not_ready_since is not None:
            moments.append(zone_grace - (now - node.not_ready_since).total_seconds())
    for zone in {m.zone for m in observed.members}:
        if not observed.zone_nodes(zone):
            since = zone_down_since(observed, zone, now) or now
            moments.append(zone_grace - (now - since).total_seconds())
        returned = zone_returned_at(observed, zone, now)
        if returned is not None:  # its stragglers' wait ends, and it has settled for members to move back
            moments += [zone_grace - (now - returned).total_seconds(), member_grace - (now - returned).total_seconds()]
    for member in observed.members:
        failed = member_failed_since(observed, member, now)
        if failed is not None:
            moments.append(member_grace - (now - grace_start(spec, observed, member.zone, failed, now)).total_seconds())
        claim = member.claim
        if claim and claim.seeded_from and claim.phase == "Pending" and claim.created:
            moments.append(restore_deadline(spec) - (now - claim.created).total_seconds())
        if claim is None:
            since = prior_since(observed, member.name, MemberState.LOST) or now
            moments.append(member_grace - (now - since).total_seconds())
        elif claim.created is not None and never_served(member):  # when it will count as stuck
            progress = spec.updates.progress_deadline.total_seconds()
            moments.append(progress - (now - claim.created).total_seconds())
    retired = retired_report(spec, observed)
    if retired is not None and retired.next_deletion is not None:
        moments.append((retired.next_deletion - now).total_seconds())
    future = [m for m in moments if m > 0]
    return min(future) + 0.1 if future else REQUEUE_STEADY


def steer_clear(observed: Observed, actions: list[Action]) -> list[Action]:
    """New pods keep off the nodes of their zone whose heartbeats stopped: the node controller has
    not tainted them yet, and the scheduler would otherwise choose them for the very replacement."""
    silent: dict[str | None, list[str]] = {}
    for node in observed.nodes:
        if node.silent:
            silent.setdefault(node.zone, []).append(node.name)
    if not silent:
        return actions
    return [
        dataclasses.replace(a, avoid=tuple(silent.get(a.zone, ()))) if isinstance(a, CreateMember | CreatePod) else a
        for a in actions
    ]
