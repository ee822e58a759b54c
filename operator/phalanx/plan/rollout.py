"""Rolling replacement: members reach the update revision zone by zone, canary first, in gated
batches, within the one disruption budget.

Everything is read off the world on every pass, so a restarted operator continues where the last one
stopped and never updates a member twice:

- a member is *outdated* when its pod runs another template revision than the spec's, or a replace
  request (the store's annotation ``phalanx.dev/replace``) names it;
- a member is *in flight* when it is on the update revision and has not passed the health gate, when
  its pod is gone or going (``InPlace``: deleted, not back yet), or when it is outdated and its
  replacement exists (``Replace``: a member whose claim replaces it);
- the gate's readings are the only memory, and they live in status (``status.rollout.gate``).

A step starts only when nothing is in flight, the rollout is neither paused nor halted, and with it
the store keeps a majority of its members serving and no other zone has a member unavailable for any
reason. Zones go one at a time (``updates.zoneOrder``, then by name); the zone of an outdated member
that is already unavailable goes first, for replacing it costs nothing. The first ``canary`` members
go alone; then batches of at most ``maxUnavailablePerZone``. A step whose members do not pass the gate
within ``progressDeadline`` halts the rollout (Stalled); a new revision (a revert) starts over, and
the failed member, unavailable, is the first to be replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from phalanx.models import (
    GateReading,
    ReplaceRequestStatus,
    ReplicatedStoreSpec,
    RolloutStatus,
    UpdateStrategy,
)
from phalanx.names import member_name
from phalanx.observe import MemberView, Observed
from phalanx.plan.actions import Action, CreateMember, DeletePod, RetireMember
from phalanx.plan.health import serving
from phalanx.plan.snapshots import seed_for
from phalanx.plan.volumes import delete_at_retirement

GATE_SPACING = 2.0
"""Seconds between two readings of the health gate (after minReadySeconds of readiness)."""


@dataclass(frozen=True)
class Rollout:
    """What the rollout decided this pass."""

    actions: Sequence[Action] = ()
    status: RolloutStatus | None = None
    last_serial: int = 0
    budgeted: frozenset[str] = frozenset()
    """Members whose unavailability the rollout took on purpose: Ready holds while only they are out."""
    halted: tuple[str, str] | None = None
    """Stalled's reason and message when the rollout stopped."""
    request: ReplaceRequestStatus | None = None
    """The on-demand replacement answered (status.replaceRequest)."""
    requeue: float | None = None
    """When to look again (the next reading of the gate)."""


def request_targets(observed: Observed) -> tuple[ReplaceRequestStatus | None, str | None]:
    """The on-demand replacement in force, and why a request could not be read (None: it could).

    A value not answered yet names its members now (``all``, ``zone/<zone>``, ``member/<name>``,
    each optionally followed by ``#<anything>``); an answered one keeps the members it named that
    are still there (a replaced member leaves, retired)."""
    value = observed.replace_request
    previous = observed.previous.replace_request
    if value is None:
        return None, None
    live = {m.name for m in observed.members}
    if previous is not None and previous.request == value:
        left = [m for m in previous.members if m in live]
        return ReplaceRequestStatus(request=value, members=left), None
    target = value.split("#", 1)[0].strip()
    if target == "all":
        chosen = [m.name for m in observed.members]
    elif target.startswith("zone/"):
        chosen = [m.name for m in observed.members if m.zone == target[len("zone/") :]]
    elif target.startswith("member/"):
        chosen = [m.name for m in observed.members if m.name == target[len("member/") :]]
    else:
        return ReplaceRequestStatus(request=value, members=[]), (
            f"phalanx.dev/replace={value!r} names nothing: use all, zone/<zone> or member/<name>"
        )
    if not chosen:
        return ReplaceRequestStatus(request=value, members=[]), f"phalanx.dev/replace={value!r} names no member"
    return ReplaceRequestStatus(request=value, members=chosen), None


def zone_order(spec: ReplicatedStoreSpec, zones: Sequence[str]) -> list[str]:
    """``updates.zoneOrder`` first, then every other zone by name."""
    first = [z for z in spec.updates.zone_order or [] if z in zones]
    return first + sorted(z for z in zones if z not in first)


def read_gate(
    spec: ReplicatedStoreSpec, observed: Observed, member: MemberView, prior: GateReading | None, now: datetime
) -> GateReading:
    """One more reading of the health gate, if one is due: serving, Ready for minReadySeconds, and no
    container restart since the last reading. A failed reading starts the count again; a member that
    passed stays passed (a later failure is an outage, which the budget counts)."""
    pod = member.pod
    restarts = pod.restarts if pod is not None else 0
    if prior is not None and prior.passed:
        return prior
    checks = spec.updates.health_gate.consecutive_checks
    min_ready = spec.updates.health_gate.min_ready_seconds
    kept = prior.last_reading if prior is not None else None  # unchanged: a pass that reads nothing writes nothing
    if pod is None or not serving(member, observed) or pod.ready_since is None:
        return GateReading(member=member.name, readings=0, restarts=restarts, last_reading=kept)
    if (now - pod.ready_since).total_seconds() < min_ready:
        return GateReading(member=member.name, readings=0, restarts=restarts, last_reading=kept)
    if prior is not None and prior.restarts != restarts:
        return GateReading(member=member.name, readings=0, restarts=restarts, last_reading=now)
    if (
        prior is not None
        and prior.readings
        and prior.last_reading is not None
        and ((now - prior.last_reading).total_seconds() < GATE_SPACING)
    ):
        return prior
    readings = (prior.readings if prior is not None else 0) + 1
    return GateReading(
        member=member.name, readings=readings, restarts=restarts, last_reading=now, passed=readings >= checks
    )


def waiting_for(spec: ReplicatedStoreSpec, observed: Observed, member: MemberView, gate: GateReading | None) -> str:
    """What an in-flight member waits for, in words."""
    pod = member.pod
    if pod is None or pod.terminating:
        return f"{member.name}: its pod to come back on the update revision"
    if not serving(member, observed):
        detail = f" ({pod.waiting})" if pod.waiting else ""
        return f"{member.name}: Ready{detail}"
    checks = spec.updates.health_gate.consecutive_checks
    done = gate.readings if gate is not None else 0
    return (
        f"{member.name}: the health gate ({done}/{checks} readings; Ready for "
        f"{spec.updates.health_gate.min_ready_seconds}s first)"
    )


def batches(
    spec: ReplicatedStoreSpec, order: Sequence[str], pending: Sequence[MemberView], passed: int
) -> list[tuple[str, list[MemberView], bool]]:
    """The remaining steps, in order: (zone, members, canary)."""
    canary_left = max(0, spec.updates.canary - passed)
    per_zone = spec.updates.max_unavailable_per_zone
    steps = []
    for zone in order:
        queue = [m for m in pending if m.zone == zone]
        while queue:
            size = min(canary_left, per_zone) if canary_left else per_zone
            batch, queue = queue[:size], queue[size:]
            steps.append((zone, batch, canary_left > 0))
            canary_left = max(0, canary_left - len(batch))
    return steps


def roll(
    spec: ReplicatedStoreSpec,
    observed: Observed,
    now: datetime,
    revision: str | None,
    zones: Sequence[str],
    last_serial: int,
    quiet: bool,
) -> Rollout:
    """The rollout's step this pass. ``quiet``: nothing else of the store changes this pass (no
    recovery, scaling or healing), so a step may start or complete."""
    request, bad_request = request_targets(observed)
    targets = set(request.members) if request is not None else set()
    previous = observed.previous.rollout
    if previous is not None and previous.revision != revision:
        previous = None  # a new revision (a revert) starts over: its own canary, its own gate
    gates = {g.member: g for g in (previous.gate if previous is not None else [])}
    if previous is None:  # a rollout begins: members already on its revision and serving need no gate
        gates = {
            m.name: GateReading(member=m.name, passed=True, restarts=m.pod.restarts)
            for m in observed.members
            if m.pod is not None and m.pod.revision == revision and m.name not in targets and serving(m, observed)
        }

    def outdated(m: MemberView) -> bool:
        return m.name in targets or (m.pod is not None and m.pod.revision != revision)

    def strategy_of(m: MemberView) -> UpdateStrategy:
        return UpdateStrategy.REPLACE if m.name in targets else spec.updates.strategy

    members = list(observed.members)
    old = [m for m in members if outdated(m)]
    on_update = [m for m in members if not outdated(m) and m.pod is not None and m.pod.revision == revision]
    readings = {m.name: read_gate(spec, observed, m, gates.get(m.name), now) for m in on_update}
    unpassed = [m for m in on_update if not readings[m.name].passed]
    replacing = {m.name: s for m in old if (s := observed.successor(m.name)) is not None}
    # A pod gone or going (InPlace: deleted, not back yet) is in flight, whatever took it.
    going = [m for m in members if (m.pod is None or m.pod.terminating) and m.name not in replacing]
    stepping = set(previous.in_flight) if previous is not None else set()
    if revision is None or not (old or (unpassed and previous) or any(m.name in stepping for m in going)):
        return Rollout(last_serial=last_serial, request=request)  # nothing to roll out, or the last step is done
    passed = [m for m in on_update if readings[m.name].passed]
    in_flight = unpassed + [m for m in going if m not in unpassed]
    actions: list[RetireMember | DeletePod | CreateMember] = []
    if quiet:  # a replacement that passed the gate completes its step: the member it replaces goes
        for name, successor in sorted(replacing.items()):
            leaving = observed.member(name)
            if leaving is None or not readings.get(successor.name, GateReading(member=successor.name)).passed:
                continue
            actions.append(
                RetireMember(
                    name,
                    leaving.pod.uid if leaving.pod else None,
                    leaving.claim.uid if leaving.claim else None,
                    delete_volume=delete_at_retirement(spec),
                    why=f"replaced by {successor.name}, which passed the health gate",
                    reason="MemberReplaced",
                )
            )
    completing = {a.member for a in actions}

    pending = [m for m in old if m.name not in replacing and m not in in_flight]
    order = zone_order(spec, sorted({m.zone for m in members} | set(zones)))
    out = [m for m in pending if not serving(m, observed)]
    if out:  # already unavailable: updating them costs nothing, so their zone goes first
        first = min(out, key=lambda m: (order.index(m.zone), m.serial)).zone
        order = [first, *(z for z in order if z != first)]
    pending.sort(key=lambda m: (order.index(m.zone), serving(m, observed), m.serial))
    remaining = batches(spec, order, pending, len(passed))

    paused = spec.updates.paused or observed.rollout_paused
    started = previous.step_started_at if previous is not None else None
    step = [n for n in (previous.in_flight if previous is not None else []) if n in {m.name for m in in_flight}]
    step += [
        s.name
        for s in replacing.values()
        if s.name not in step and not readings.get(s.name, GateReading(member=s.name)).passed
    ]
    halted = None
    deadline = spec.updates.progress_deadline
    if step and started is not None and now - started > deadline:
        late = [m for m in in_flight if m.name in step]
        halted = (
            "RolloutHalted",
            f"the rollout of revision {revision} stopped: "
            + "; ".join(waiting_for(spec, observed, m, readings.get(m.name)) for m in late)
            + f", not within updates.progressDeadline ({deadline}); every other member is untouched: fix the "
            "cause, or change the template (a revert rolls the updated members back the same way)",
        )

    step_label = previous.step if previous is not None else None
    zone = previous.zone if previous is not None else None
    wait: str | None = None
    if halted is not None:
        wait = halted[1]
    elif in_flight or completing:
        wait = "; ".join(waiting_for(spec, observed, m, readings.get(m.name)) for m in in_flight) or None
        step = step or [m.name for m in in_flight]
    elif not remaining:
        wait = None
    elif paused:
        wait = "paused (" + ("updates.paused" if spec.updates.paused else "annotation phalanx.dev/rollout-paused") + ")"
    elif not quiet:
        wait = "the store's other changes (recovery, scaling, healing) to settle"
    else:
        zone, batch, canary = remaining[0]
        chosen, why_not = budget(spec, observed, zone, batch, lambda m: strategy_of(m) is UpdateStrategy.IN_PLACE)
        if why_not is not None:
            wait = why_not
        else:
            step_label = f"{'canary' if canary else 'batch'} in {zone}: {', '.join(m.name for m in chosen)}"
            started, step = now, []
            for member in chosen:
                if strategy_of(member) is UpdateStrategy.IN_PLACE and member.pod is not None:
                    step.append(member.name)
                    why = f"{'canary: ' if canary else ''}updating {member.name} in place to revision {revision}"
                    actions.append(DeletePod(member.name, member.pod.uid, why, reason="MemberUpdating"))
                    continue
                snapshot, source = seed_for(spec, observed, now)
                last_serial += 1
                name = member_name(observed.store.name, last_serial)
                step.append(name)
                why = (
                    f"{'canary: ' if canary else ''}replaces {member.name} at revision {revision}, seeded from {source}"
                )
                actions.append(
                    CreateMember(name, member.zone, snapshot, why, reason="MemberReplacing", replaces=member.name)
                )
            pending = [m for m in pending if m not in chosen]
            remaining = remaining[1:]
    if bad_request is not None:
        wait = f"{wait}; {bad_request}" if wait else bad_request
    status = RolloutStatus(
        revision=revision,
        strategy=spec.updates.strategy,
        zone=zone,
        step=step_label,
        step_started_at=started,
        in_flight=step,
        updated=[m.name for m in passed],
        pending=[m.name for m in pending],
        steps=[f"{z}{' (canary)' if c else ''}: {', '.join(m.name for m in b)}" for z, b, c in remaining],
        waiting_for=wait,
        paused=paused,
        halted=halted[1] if halted else None,
        gate=[readings[m.name] for m in on_update],
        replaced=len(passed),
        total=len(passed) + len(old),
    )
    # Only the step's own members are out on purpose; anything else out is an outage, reported.
    budgeted = frozenset(step) | frozenset(completing) | frozenset(a.member for a in actions)
    moments = [next_reading(spec, observed, m, readings[m.name], now) for m in unpassed]
    requeue = min((m for m in moments if m is not None), default=None)
    return Rollout(actions, status, last_serial, budgeted, halted, request, requeue)


def next_reading(
    spec: ReplicatedStoreSpec, observed: Observed, member: MemberView, gate: GateReading, now: datetime
) -> float | None:
    """Seconds until the gate can next read ``member``: when it will have been Ready for
    minReadySeconds, or a spacing after its last reading. None while it does not serve (its pod's
    next change wakes the store)."""
    pod = member.pod
    if pod is None or pod.ready_since is None or not serving(member, observed):
        return None
    due = pod.ready_since + timedelta(seconds=spec.updates.health_gate.min_ready_seconds)
    if gate.readings and gate.last_reading is not None:
        due = max(due, gate.last_reading + timedelta(seconds=GATE_SPACING))
    return max((due - now).total_seconds(), 0.0) + 0.05


def budget(
    spec: ReplicatedStoreSpec,
    observed: Observed,
    zone: str,
    batch: Sequence[MemberView],
    disrupts: Callable[[MemberView], bool],
) -> tuple[list[MemberView], str | None]:
    """The members of ``batch`` that may go now, or why none may: with the step, a majority of the
    members still serves, no member of another zone is unavailable (for any reason), and the zone
    keeps within maxUnavailablePerZone. ``disrupts``: whether updating a member takes it out (InPlace
    does; Replace adds a member first)."""
    taking = {m.name for m in batch}
    elsewhere = [m for m in observed.members if m.zone != zone and not serving(m, observed)]
    if elsewhere:
        return [], f"{', '.join(m.name for m in elsewhere)} unavailable in another zone: no step until it serves"
    in_zone = [m for m in observed.members if m.zone == zone and m.name not in taking and not serving(m, observed)]
    chosen = list(batch)[: max(0, spec.updates.max_unavailable_per_zone - len(in_zone))]
    if not chosen:
        return [], f"{', '.join(m.name for m in in_zone)} unavailable in {zone}: no room in maxUnavailablePerZone"
    serving_now = sum(1 for m in observed.members if serving(m, observed))
    taken = sum(1 for m in chosen if serving(m, observed) and disrupts(m))
    if (serving_now - taken) * 2 <= len(observed.members):
        return [], f"updating {', '.join(m.name for m in chosen)} would leave no majority of members serving"
    return chosen, None
