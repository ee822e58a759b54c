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
    RecoveryRecord,
    RecoverySource,
    ReplicatedStoreSpec,
    ReplicatedStoreStatus,
    SnapshotStatus,
    StorePhase,
    ZoneFailurePolicy,
    ZoneStatus,
)
from phalanx.names import client_service, disruption_budget, member_name, peers_service
from phalanx.observe import MemberView, Observed, SnapshotView
from phalanx.units import Quantity

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
    replaces: str | None = None
    """The lost member this one replaces (recovery), if any."""


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


@dataclass(frozen=True)
class Snapshot:
    """A VolumeSnapshot of a ready member's volume: the next point of the lineage."""

    member: str
    zone: str
    name: str
    why: str
    request: str | None = None
    reason: str = "SnapshotStarted"


@dataclass(frozen=True)
class DeleteSnapshot:
    """Retention: a snapshot beyond ``keep`` or older than ``maxAge``, or a superseded failure."""

    name: str
    uid: str
    why: str
    reason: str = "SnapshotPruned"


@dataclass(frozen=True)
class PinVolume:
    """A Retain or Snapshot store's volume gets reclaim policy Retain as soon as it is bound, so that
    nothing (a namespace deleted, a claim deleted by hand) can take the data before the deletion
    policy has been applied; ``was`` is remembered for a deliberate deletion to give back."""

    member: str
    volume: str
    was: str
    why: str
    reason: str = "VolumePinned"


@dataclass(frozen=True)
class ExpandVolume:
    """``storage.size`` was raised: the member's claim asks for the new size (the class expands it)."""

    member: str
    size: str
    why: str
    reason: str = "VolumeExpanding"


Action = (
    CreateMember
    | CreatePod
    | DeletePod
    | RetireMember
    | EnsureChild
    | Snapshot
    | DeleteSnapshot
    | PinVolume
    | ExpandVolume
)


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
    recoveries: tuple[RecoveryRecord, ...] = ()
    """Recoveries started by this plan (each also in the actions)."""


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


FIRST_POD_WINDOW = 60.0
"""Seconds between a member's claim and pod creation within which the pod is the member's first."""


def never_served(member: MemberView) -> bool:
    """Whether the member can hold nothing of its own yet: its volume was never bound, or its first
    pod (made with its claim) has never been ready. A member whose pod was replaced may have served:
    it never counts as this."""
    claim, pod = member.claim, member.pod
    if claim is None:
        return False
    if claim.phase != "Bound":
        return pod is None or not pod.ready
    if pod is None or pod.ready or pod.ready_since is not None or pod.created is None or claim.created is None:
        return False
    return (pod.created - claim.created).total_seconds() < FIRST_POD_WINDOW


def stuck(member: MemberView, observed: Observed | None, deadline: float | None, now: datetime | None) -> bool:
    """A member that never served and has been on its way (Pending, Restoring, Starting) for longer
    than ``updates.progressDeadline`` since it was created: it will not come by waiting (a storage
    class that does not exist, an image that cannot be pulled, a node that will never fit it)."""
    if deadline is None or now is None or member_state(member, observed) not in _ON_THE_WAY:
        return False
    if not never_served(member):
        return False
    born = member.claim.created if member.claim is not None else None
    born = born or (member.pod.created if member.pod is not None else None)
    return born is not None and (now - born).total_seconds() > deadline


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
        return 2 if state in _ON_THE_WAY and not stuck(member, observed, deadline, now) else 0

    return sorted(members, key=lambda m: (rank(m), m.zone in home, -counts[m.zone], -m.serial))


# ------------------------------------------------------------------------------------------------
# Decisions


def desired_zones(spec: ReplicatedStoreSpec, observed: Observed) -> tuple[str, ...]:
    """The store's zones: ``spec.zones`` as given, else the zones with schedulable nodes plus those
    that hold its members and still have nodes. So a zone whose nodes are cordoned or down stays
    home to its members (no churn, an outage is handled as one), while a new store ignores it.
    Placing a new member needs a schedulable node (see ``placeable``)."""
    if spec.zones:
        return tuple(spec.zones)
    homes = {m.zone for m in observed.members if observed.zone_nodes(m.zone)}
    return tuple(sorted(set(observed.zones_with_nodes()) | homes))


def observed_zones(observed: Observed) -> tuple[str, ...]:
    """The store's zones as last reported and as its members hold them: what status keeps reporting
    while no valid spec says which zones are the store's (an invalid spec changes nothing observed)."""
    reported = {str(z.get("name")) for z in observed.status.get("zones") or [] if isinstance(z, Mapping)}
    return tuple(sorted(reported | {m.zone for m in observed.members}))


def placeable(zones: Sequence[str], observed: Observed, outages: Mapping[str, bool]) -> list[str]:
    """The store's zones where a new member can land now: a schedulable node, and no outage."""
    schedulable = set(observed.zones_with_nodes())
    return [z for z in zones if z in schedulable and z not in outages]


def ensure_children(
    spec: ReplicatedStoreSpec,
    observed: Observed,
    has_ports: bool,
    digests: Mapping[str, str] | None = None,
    taken: frozenset[str] = frozenset(),
) -> list[Action]:
    """Create a missing Service or PodDisruptionBudget; update one whose ports or budget differ from
    what the spec builds (``digests``: ``kind/name`` -> the digest of the built child). A name that
    another owner's object holds (``taken``) is left alone: that is a collision to report, not fix."""
    store = observed.store.name
    wanted: list[tuple[ChildKind, str]] = [
        ("peers-service", peers_service(store)),
        ("disruption-budget", disruption_budget(store)),
    ]
    if has_ports:
        wanted.insert(1, ("client-service", client_service(store)))
    actions: list[Action] = []
    for kind, name in wanted:
        key = f"{kind}/{name}"
        if key in taken:
            continue
        if key not in observed.children:
            actions.append(EnsureChild(kind, name, f"{kind} {name} does not exist"))
            continue
        want, have = (digests or {}).get(key), observed.child_digests.get(key)
        if want and have and want != have:
            actions.append(EnsureChild(kind, name, f"{kind} {name} differs from the spec", reason="ChildUpdated"))
    return actions


def finish_retirements(observed: Observed) -> list[Action]:
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
    zones: Sequence[str],
    now: datetime,
    last_serial: int,
    home: Sequence[str] | None = None,
) -> tuple[list[Action], int, list[str]]:
    """Create missing members (seeded from the freshest snapshot) in ``zones`` (where they can be
    placed), or retire one surplus member (strays outside ``home``, the store's zones, first)."""
    members = observed.members
    missing = spec.replicas - len(members)
    if missing > 0:
        if not zones:
            return [], last_serial, ["no zone has a schedulable node: cannot place new members"]
        actions: list[Action] = []
        unfinished = unfinished_recovery(spec, observed, now, zones)
        if unfinished is not None:  # interrupted after the lost member was retired: finish that recovery
            actions.append(unfinished)
            missing -= 1
        snapshot, _ = seed_for(spec, observed, now)
        counts = zone_counts(zones, members)
        if unfinished is not None:
            counts[unfinished.zone] = counts.get(unfinished.zone, 0) + 1
        for zone in place(zones, counts, missing):
            last_serial += 1
            name = member_name(observed.store.name, last_serial)
            why = f"{len(members)}/{spec.replicas} members; new one in {zone}"
            actions.append(CreateMember(name, zone, snapshot, why + (f", seeded from {snapshot}" if snapshot else "")))
        return actions, last_serial, []
    if missing < 0:
        return retire_one(spec, members, observed, home, now), last_serial, []
    return [], last_serial, []


def unfinished_recovery(
    spec: ReplicatedStoreSpec, observed: Observed, now: datetime, targets: Sequence[str]
) -> CreateMember | None:
    """The replacement that the last recovery recorded but did not create (the operator stopped
    between retiring the lost member and creating its replacement): same name, zone and seed."""
    raw = observed.status.get("lastRecovery")
    if not raw or raw.get("readyAt") or not raw.get("replacement"):
        return None
    replacement, lost = str(raw["replacement"]), str(raw["member"])
    if observed.member(replacement) is not None or any(c.name == replacement for c in observed.retired_claims):
        return None
    if observed.member(lost) is not None:
        return None  # not retired yet: the loss is still recover()'s to act on
    lost_claim = next((c for c in observed.retired_claims if c.name == lost), None)
    # A lost volume that was deleted leaves no retired claim: its zone is in the last status.
    zone = (lost_claim.zone if lost_claim else None) or _previous(observed.status, "members").get(lost, {}).get("zone")
    if not zone or not targets:
        return None
    zone = str(zone)
    if zone not in targets:  # its zone is down (a zone loss being redistributed): the emptiest survivor
        zone = place(targets, zone_counts(targets, observed.members), 1)[0]
    snapshot = raw.get("snapshot")
    if snapshot and snapshot not in {snap.name for snap in usable_snapshots(spec, observed, now)}:
        snapshot, _ = seed_for(spec, observed, now)
    why = f"completes the recovery of {lost} (interrupted), seeded from {snapshot or 'nothing: empty'}"
    return CreateMember(replacement, zone, snapshot, why, reason="MemberReplaced", replaces=lost)


def serving(member: MemberView, observed: Observed | None) -> bool:
    """Ready as far as the store can tell: its pod says so and its node is up."""
    return member_state(member, observed) is MemberState.READY


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
    others_serving = all(
        serving(m, observed) or stuck(m, observed, deadline, now) for m in members if m is not candidate
    )
    if serving(candidate, observed) and not others_serving:
        return []  # quorum first: wait until every other member serves (I2)
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
# Snapshot lineage


def usable_snapshots(spec: ReplicatedStoreSpec, observed: Observed, now: datetime) -> list[SnapshotView]:
    """Snapshots a member may be seeded from (I4): ready, of this store, younger than maxAge; newest first."""
    if spec.snapshots is None:
        return []
    max_age = spec.snapshots.effective_max_age().total_seconds()
    # A restore from it failed (the member it seeded was retired before its volume was ever bound).
    failed_restores = {c.seeded_from for c in observed.retired_claims if c.seeded_from and c.phase == "Pending"}
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
    before = observed.status.get("snapshots") or {}
    failures, last = int(before.get("failures") or 0), before.get("lastFailure")
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


# ------------------------------------------------------------------------------------------------
# Loss and recovery


def zone_down_since(observed: Observed, zone: str, now: datetime) -> datetime | None:
    """Since when a zone has had no ready node, or None while it has one. For a zone whose Node
    objects are all gone (a node pool being replaced) that is when status last saw it otherwise,
    never "now minus forever": the grace counts from the moment the zone was last seen healthy."""
    nodes = observed.zone_nodes(zone)
    if any(n.ready for n in nodes):
        return None
    if nodes:
        return max((n.not_ready_since or now) for n in nodes)
    prior = _previous(observed.status, "zones").get(zone, {}).get("downSince")
    return datetime.fromisoformat(str(prior).replace("Z", "+00:00")) if prior else now


def zone_outages(spec: ReplicatedStoreSpec, observed: Observed, now: datetime) -> dict[str, bool]:
    """Zones whose every node is down (or gone, for a zone that holds members), mapped to whether
    that lasted beyond zoneFailureGrace."""
    zones = {m.zone for m in observed.members} | {n.zone for n in observed.nodes if n.zone}
    grace = spec.recovery.zone_failure_grace.total_seconds()
    result = {}
    for zone in sorted(zones):
        since = zone_down_since(observed, zone, now)
        if since is not None:
            result[zone] = (now - since).total_seconds() >= grace
    return result


def restore_deadline(spec: ReplicatedStoreSpec) -> float:
    """How long a restore may stay pending before it counts as failed: five member grace periods."""
    return 5 * spec.recovery.member_failure_grace.total_seconds()


def loss_of(spec: ReplicatedStoreSpec, observed: Observed, member: MemberView, now: datetime) -> str | None:
    """Why a member is lost (its data cannot come back), or None. Only its pod gone is not a loss."""
    claim, pod = member.claim, member.pod
    grace = spec.recovery.member_failure_grace.total_seconds()
    if claim is None:
        # A claim out of sight while its pod goes away is a retirement the watch has half shown;
        # otherwise it counts once it has been missing for the grace period (status holds since when).
        since = _prior_since(observed, member.name, MemberState.LOST)
        if pod is None or pod.terminating or since is None or (now - since).total_seconds() < grace:
            return None
        return "VolumeDeleted: its PersistentVolumeClaim is gone"
    if claim.lost:
        return "VolumeLost: its PersistentVolume is gone"
    if (
        claim.seeded_from
        and claim.phase == "Pending"
        and claim.created is not None
        and not (pod is not None and pod.unschedulable)  # waiting for a node is not a failed restore
        and (now - claim.created).total_seconds() > restore_deadline(spec)
    ):
        return f"RestoreFailed: the restore from {claim.seeded_from} did not complete"
    if pod is None or pod.node is None:
        return None
    node = observed.node(pod.node)
    if node is None:
        since = _prior_since(observed, member.name, MemberState.UNAVAILABLE) or now
        return f"NodeDeleted: node {pod.node} is gone" if (now - since).total_seconds() >= grace else None
    if not node.ready and node.not_ready_since is not None and (now - node.not_ready_since).total_seconds() >= grace:
        return f"NodeLost: node {pod.node} not ready for more than {spec.recovery.member_failure_grace}"
    return None


def _prior_since(observed: Observed, member: str, state: MemberState) -> datetime | None:
    prior = _previous(observed.status, "members").get(member, {})
    if prior.get("state") != state.value or not prior.get("since"):
        return None
    return datetime.fromisoformat(str(prior["since"]).replace("Z", "+00:00"))


def recover(
    spec: ReplicatedStoreSpec,
    observed: Observed,
    now: datetime,
    zones: Sequence[str],
    last_serial: int,
) -> tuple[list[Action], list[RecoveryRecord], int, list[str]]:
    """Replace lost members: the lost one retired first (so a crash never leaves two replacements),
    then a new member, in the same zone or, for a lost zone under Redistribute, in the survivors."""
    outages = zone_outages(spec, observed, now)
    survivors = placeable(zones, observed, outages)
    counts = zone_counts(survivors, observed.members)
    # Rebuild elsewhere only from a majority: when most members look lost at once, the likelier
    # fault is this side's view of the cluster, and replacing most of the store would be the outage.
    surviving_members = sum(1 for m in observed.members if m.zone not in outages)
    majority = surviving_members * 2 > len(observed.members)
    redistribute = spec.recovery.zone_failure is ZoneFailurePolicy.REDISTRIBUTE and majority
    actions: list[Action] = []
    records: list[RecoveryRecord] = []
    notes = [
        f"zone {zone} is down"
        + (f" beyond zoneFailureGrace: waiting for it ({why})" if confirmed and not redistribute else "")
        for zone, confirmed in outages.items()
        if any(m.zone == zone for m in observed.members)
        for why in ["zoneFailure Wait" if majority else "the surviving zones hold no majority of the members"]
    ]
    for member in observed.members:
        if member.zone in outages:
            if not (outages[member.zone] and redistribute and survivors):
                continue  # a zone outage is not N member losses: wait for zoneFailureGrace and the policy
            reason = f"ZoneLost: zone {member.zone} down beyond {spec.recovery.zone_failure_grace}"
            zone = place(survivors, counts, 1)[0]
        else:
            lost = loss_of(spec, observed, member, now)
            if lost is None:
                continue
            reason, zone = lost, member.zone
        counts[zone] = counts.get(zone, 0) + 1
        snapshot, source_why = seed_for(spec, observed, now)
        if reason.startswith("RestoreFailed"):
            snapshot, source_why = None, "the restore failed: starting empty"
        last_serial += 1
        replacement = member_name(observed.store.name, last_serial)
        actions.append(
            RetireMember(
                member.name,
                member.pod.uid if member.pod else None,
                member.claim.uid if member.claim else None,
                delete_volume=False,  # kept until its replacement is ready (I3)
                why=f"member {member.name} lost ({reason})",
                reason="MemberLost",
            )
        )
        actions.append(
            CreateMember(
                replacement,
                zone,
                snapshot,
                f"replaces {member.name} in {zone}, seeded from {source_why}",
                reason="MemberReplaced",
                replaces=member.name,
            )
        )
        records.append(
            RecoveryRecord(
                member=member.name,
                reason=reason,
                source=RecoverySource.SNAPSHOT if snapshot else RecoverySource.EMPTY,
                started_at=now,
                replacement=replacement,
                snapshot=snapshot,
            )
        )
        notes.append(f"{member.name} lost ({reason}); {replacement} seeded from {source_why}")
    return actions, records, last_serial, notes


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
    if spec.deletion_policy is not DeletionPolicy.DELETE or not all(serving(m, observed) for m in observed.members):
        return []
    if len(observed.members) < spec.replicas:
        return []
    return [
        RetireMember(c.name, None, c.uid, delete_volume=True, why=f"retired volume {c.name}: its replacement is ready")
        for c in observed.retired_claims
        if not c.terminating
    ]


def rebalance(
    spec: ReplicatedStoreSpec,
    observed: Observed,
    zones: Sequence[str],
    targets: Sequence[str],
    now: datetime,
    last_serial: int,
) -> tuple[list[Action], int]:
    """Move one member towards the emptiest zone, as budgeted voluntary disruption: a new member there
    first; the surplus is then retired (strays, then the fullest zone), only once everyone serves (I1, I2).
    Nothing moves while the emptiest zone cannot take a member (down, cordoned): that is an outage's
    business, not balance's."""
    if len(observed.members) != spec.replicas or not all(serving(m, observed) for m in observed.members):
        return [], last_serial
    stray = [m for m in observed.members if m.zone not in zones]
    if skew(zones, observed.members) <= 1 and not stray:
        return [], last_serial
    target = place(zones, zone_counts(zones, observed.members), 1)[0]
    if target not in targets:
        return [], last_serial
    snapshot, source_why = seed_for(spec, observed, now)
    last_serial += 1
    name = member_name(observed.store.name, last_serial)
    why = f"zones unbalanced: a new member in {target} (seeded from {source_why}); the fullest zone gives one up next"
    return [CreateMember(name, target, snapshot, why, reason="Rebalancing")], last_serial


# ------------------------------------------------------------------------------------------------
# Status


_ON_THE_WAY = frozenset({MemberState.PENDING, MemberState.RESTORING, MemberState.STARTING})


def member_state(member: MemberView, observed: Observed | None = None) -> MemberState:
    pod, claim = member.pod, member.claim
    if claim is None or claim.lost:
        return MemberState.LOST
    if pod is not None and pod.terminating:
        return MemberState.UNAVAILABLE
    if pod is not None and pod.node and observed is not None:
        node = observed.node(pod.node)
        if node is None or not node.ready:
            return MemberState.UNAVAILABLE
    if pod is None:
        return MemberState.RESTORING if claim.seeded_from and claim.phase == "Pending" else MemberState.PENDING
    if pod.ready:
        return MemberState.READY
    if observed is not None:  # a member that was serving and stopped is Unavailable, not new
        prior = _previous(observed.status, "members").get(member.name, {}).get("state")
        if prior in (MemberState.READY.value, MemberState.UNAVAILABLE.value):
            return MemberState.UNAVAILABLE
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
        state = member_state(member, observed)
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


def recovery_progress(observed: Observed) -> RecoveryRecord | None:
    """The last recovery, completed with when its replacement became ready."""
    raw = observed.status.get("lastRecovery")
    if not raw:
        return None
    record = RecoveryRecord.model_validate(raw)
    if record.ready_at is not None or record.replacement is None:
        return record
    member = observed.member(record.replacement)
    if member is None or not member.ready or member.pod is None or member.pod.ready_since is None:
        return record
    ready_at = max(member.pod.ready_since, record.started_at)
    seconds = round((ready_at - record.started_at).total_seconds(), 3)
    return record.model_copy(update={"ready_at": ready_at, "seconds": seconds})


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
    child_digests: Mapping[str, str] | None = None,
    collisions: Mapping[str, str] | None = None,
    refused: str | None = None,
    expansion_refused: str | None = None,
) -> Plan:
    """Decide. ``spec`` is None (and ``invalid`` says why) when the spec did not validate.

    What the cluster told the handlers, and no observation shows, comes in as well: ``collisions``
    (``kind/name`` of a child whose name another owner's object holds -> who holds it), ``refused``
    (the API server has refused this store's writes pass after pass: its message), and
    ``expansion_refused`` (why the claims could not grow to ``storage.size``)."""
    if spec is None or invalid is not None:
        message = invalid or "the spec did not validate"
        status = build_status(None, observed, now, zones=observed_zones(observed), busy=False, stalled=message)
        return Plan((), status, REQUEUE_STEADY, notes=(message,))
    zones = desired_zones(spec, observed)
    if spec.paused:
        status = build_status(spec, observed, now, zones=zones, busy=False, paused=True, revision=revision)
        return Plan((), status, REQUEUE_STEADY, notes=("paused",))

    actions: list[Action] = []
    actions += ensure_children(spec, observed, has_ports, child_digests, frozenset(collisions or {}))
    actions += finish_retirements(observed)
    outages = zone_outages(spec, observed, now)
    targets = placeable(zones, observed, outages)
    recovery, records, last_serial, notes = recover(spec, observed, now, zones, observed.last_serial)
    membership: list[Action] = list(recovery)
    if not recovery:
        scaling, last_serial, scale_notes = scale(spec, observed, targets, now, last_serial, home=zones)
        notes += scale_notes
        membership += scaling
        home_outages = [z for z in outages if z in zones or any(m.zone == z for m in observed.members)]
        if not scaling and not notes and not home_outages:  # an outage elsewhere is no reason to wait
            moves, last_serial = rebalance(spec, observed, zones, targets, now, last_serial)
            membership += moves
    leaving = frozenset(a.member for a in membership if isinstance(a, RetireMember))
    actions += heal_pods(observed, skip=leaving)  # a member on its way out needs no new pod
    actions += membership
    if not any(isinstance(a, (CreateMember, RetireMember)) for a in actions):
        actions += prune_retired_volumes(spec, observed)
    actions += pin_volumes(spec, observed)
    expansions, storage = storage_drift(spec, observed, expansion_refused)
    actions += expansions
    snapshot_actions, snapshot_due = take_snapshot(spec, observed, now)
    actions += snapshot_actions
    restoring = frozenset(a.snapshot for a in actions if isinstance(a, CreateMember) and a.snapshot)
    actions += prune_snapshots(spec, observed, now, restoring)

    retiring = {a.member for a in actions if isinstance(a, RetireMember)}
    peers = tuple(
        [m.name for m in observed.members if m.name not in retiring]
        + [a.member for a in actions if isinstance(a, CreateMember)]
    )
    member_work = [a for a in actions if not isinstance(a, (Snapshot, DeleteSnapshot, PinVolume, ExpandVolume))]
    status = build_status(
        spec,
        observed,
        now,
        zones=zones,
        busy=bool(member_work),
        revision=revision,
        last_serial=last_serial,
        notes=notes,
        records=records,
        blocked=blocked_by(spec, observed, now, collisions or {}, refused),
        storage=storage,
    )
    if actions:
        requeue = REQUEUE_BUSY
    elif status.ready_replicas < spec.replicas or notes:
        requeue = REQUEUE_CONVERGING
    else:
        requeue = REQUEUE_STEADY
    requeue = min(requeue, max(snapshot_due, 0.5)) if snapshot_due is not None else requeue
    requeue = min(requeue, next_deadline(spec, observed, now))
    return Plan(tuple(actions), status, requeue, peers=peers, notes=tuple(notes), recoveries=tuple(records))


def next_deadline(spec: ReplicatedStoreSpec, observed: Observed, now: datetime) -> float:
    """Seconds until a grace period runs out (a node's, a zone's, a restore's, a new member's
    progress deadline): look again then."""
    moments = []
    member_grace = spec.recovery.member_failure_grace.total_seconds()
    zone_grace = spec.recovery.zone_failure_grace.total_seconds()
    for node in observed.nodes:
        if node.not_ready_since is not None:
            elapsed = (now - node.not_ready_since).total_seconds()
            moments += [member_grace - elapsed, zone_grace - elapsed]
    for zone in {m.zone for m in observed.members if not observed.zone_nodes(m.zone)}:
        since = zone_down_since(observed, zone, now) or now
        moments.append(zone_grace - (now - since).total_seconds())
    for member in observed.members:
        claim = member.claim
        if claim and claim.seeded_from and claim.phase == "Pending" and claim.created:
            moments.append(restore_deadline(spec) - (now - claim.created).total_seconds())
        if claim is None:
            since = _prior_since(observed, member.name, MemberState.LOST) or now
            moments.append(member_grace - (now - since).total_seconds())
        elif claim.created is not None and never_served(member):  # when it will count as stuck
            progress = spec.updates.progress_deadline.total_seconds()
            moments.append(progress - (now - claim.created).total_seconds())
    future = [m for m in moments if m > 0]
    return min(future) + 0.1 if future else REQUEUE_STEADY


# ------------------------------------------------------------------------------------------------
# Deletion: the finalizer applies the deletion policy; data goes only when the policy says so (I3).


@dataclass(frozen=True)
class KeepVolume:
    """deletionPolicy Retain: pin the volume and mark the claim so that a store re-created under the
    same name adopts it (``uid``: the claim's, written on its volume as the proof)."""

    member: str
    why: str
    reason: str = "VolumeRetained"
    uid: str | None = None


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


def final_snapshot_name(member: str, store_uid: str) -> str:
    """``<member>-final-<store uid prefix>``: a store re-created under the same name adopts the same
    member names, and must never mistake the final snapshot of its predecessor for its own."""
    return f"{member}-final-{store_uid[:8]}"


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
        actions += [  # retired members' volumes too: Retain keeps every volume
            KeepVolume(
                member, "deletionPolicy Retain: kept (a store re-created under the same name adopts it)", uid=uid
            )
            for member, uid, _, retained in claims
            if not retained
        ]
        return actions, True
    if policy is DeletionPolicy.SNAPSHOT:
        # Pinned first: should the final snapshots never come (the namespace is being deleted and
        # refuses them), the claims may go but the volumes stay.
        actions += [
            KeepVolume(member, "deletionPolicy Snapshot: kept until its final snapshot is ready")
            for member, _, _, retained in claims
            if not retained
        ]
        live = {m.name: m for m in observed.members}
        waiting = False
        for member, _, retired, _ in claims:
            claim = live[member].claim if member in live else None
            if retired or claim is None or claim.lost or claim.phase != "Bound":
                continue  # nothing to snapshot: no data was ever, or is any longer, on it
            snapshot = final_snapshot_name(member, observed.store.uid)
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
