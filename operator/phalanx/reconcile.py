"""The pass: observe → plan → write status → act → record, for one store, without Kopf.

``handlers`` wires Kopf to it (a daemon per store, its body, Kopf's Events); everything a pass does is
here, with what it touches passed in: the writer (``Actor``), the watch cache, the expectations, a
way to run blocking calls, an event sink and a clock. So a pass is unit-tested with fakes, and the
only module that speaks Kopf stays a thin one.

Order matters: status is written before acting, because it records the serials about to be used (a
crash between the two never reuses a name); what act creates is recorded as it is created
(``status.owned``); what succeeded is expected in the cache before the store plans again.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from phalanx import build, metrics, names
from phalanx.act import OWN_STATUS_EXCLUDED, Actor, Outcome, Provenance, controller_name, controller_uid
from phalanx.cache import WatchCache
from phalanx.expectations import Expectation, Expectations, expected
from phalanx.models import (
    ConditionStatus,
    ConditionType,
    DrillRecord,
    DrillResult,
    RecoveryRecord,
    ReplicatedStoreSpec,
    ReplicatedStoreStatus,
)
from phalanx.names import StoreRef
from phalanx.observe import Observed, observe
from phalanx.plan import REFUSED_PASSES, ExpandVolume, Plan, plan
from phalanx.plan.reliability import DEFAULT_RATES, Rates
from phalanx.validation import SpecError, parse_spec

T = TypeVar("T")
Io = Callable[..., Awaitable[Any]]
"""Runs a blocking call (an API write) off the event loop: ``await io(function, *args)``."""


class Events(Protocol):
    """Where a pass reports what it did: Kubernetes Events on the store, in the operator."""

    def info(self, reason: str, message: str) -> None: ...

    def warn(self, reason: str, message: str) -> None: ...


@dataclass
class Memory:
    """What the operator keeps of one store between passes, none of it needed for correctness after
    a restart: the status it wrote that the watch has not brought back yet (planning on an older one
    would decide twice), and the API server's refusals (reported Stalled past a bound)."""

    written: dict[str, Any] | None = None
    """The status as this operator last wrote it, until the watch brings the same back."""
    refusals: tuple[int, str] | None = None
    """Passes in a row with refused writes, and the last refusal."""
    expansion_refused: tuple[str, str] | None = None
    """The size whose expansion the API server refused, and why."""


@dataclass
class Pass:
    """One store's passes, with everything they touch injected."""

    actor: Actor
    cache: WatchCache
    io: Io
    expectations: Expectations = field(default_factory=Expectations)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = time.monotonic
    rates: Rates = DEFAULT_RATES
    """How fast members are rebuilt, for the predicted recovery time (settings)."""

    async def run(self, ref: StoreRef, body: Mapping[str, Any], memory: Memory, events: Events) -> tuple[Plan, int]:
        """One pass over ``body`` (the store as last seen: metadata, spec, status). Returns the plan and
        how many of its actions failed."""
        snapshot = {
            "metadata": dict(body.get("metadata") or {}),
            "spec": dict(body.get("spec") or {}),
            "status": dict(body.get("status") or {}),
        }
        if snapshot["metadata"].get("deletionTimestamp"):
            # Being deleted (perhaps with its namespace): the finalizer owns it now; recreating
            # children would only fight the deletion.
            return Plan((), ReplicatedStoreStatus(), 5.0), 0
        kept = {k_: v for k_, v in snapshot["status"].items() if k_ in OWN_STATUS_EXCLUDED}
        if memory.written is not None:
            if {k_: v for k_, v in snapshot["status"].items() if k_ not in OWN_STATUS_EXCLUDED} == memory.written:
                memory.written = None  # the watch has brought our last write back: the body says it all
            else:
                # The watch has not yet brought back all we wrote (a pass may write twice: status, then
                # the record of what act made): plan on what we wrote, so nothing is decided twice.
                snapshot["status"] = {**kept, **memory.written}
        decision = decide(ref, snapshot, self.cache, self.clock(), memory, self.rates)
        spec, revision, digests, decided = decision.spec, decision.revision, decision.digests, decision.plan
        new_status = decided.status.to_wire()
        if await self.io(self.actor.write_status, ref, snapshot["status"], new_status):
            memory.written = new_status
        report_foreign(events, snapshot["status"], decided)
        failed = 0
        if decided.actions and spec is not None and revision is not None:
            provenance = Provenance.of(decided.status.owned, functools.partial(self.actor.write_owned, ref))
            recorded = dict(provenance.claims), dict(provenance.snapshots)
            outcomes: list[Outcome] = await self.io(self.actor.execute, ref, spec, decided, revision, provenance)
            if provenance.changed:  # act recorded what it made: plan the next pass on that record too
                memory.written = {**new_status, "owned": provenance.wire()}
            now = self.monotonic()
            made = [  # whatever was created and recorded, even by an action that failed later on
                Expectation(kind, name, lambda obj: obj is not None, f"{kind} {name} created", now)
                for kind, before, after in (
                    ("claims", recorded[0], provenance.claims),
                    ("snapshots", recorded[1], provenance.snapshots),
                )
                for name in after.keys() - before.keys()
            ]
            self.expectations.add(
                (ref.namespace, ref.name),
                made + [e for o in outcomes if o.error is None for e in expected(o.action, now, digests)],
            )
            report(events, outcomes)
            failed = sum(1 for o in outcomes if o.error)
            remember_refusals(memory, outcomes)
        elif spec is not None:
            remember_refusals(memory, [])  # nothing asked of the API server: nothing refused any more
        record(ref, decided, spec.replicas if spec else 0, snapshot["status"], self.clock())
        for warning, reason, message in rollout_news(snapshot["status"], decided, self.clock())[0]:
            (events.warn if warning else events.info)(reason, message)
        done = completed_recovery(snapshot["status"], decided)
        if done is not None:
            events.info(
                "RecoveryCompleted",
                f"{done.replacement} replaced {done.member} ({done.source.value}"
                f"{' ' + done.snapshot if done.snapshot else ''}) in {done.seconds}s",
            )
        drilled = ended_drill(snapshot["status"], decided)
        if drilled is not None:
            said = events.info if drilled.result is DrillResult.SUCCEEDED else events.warn
            said(f"Drill{drilled.result.value}", f"{drilled.message} ({drilled.seconds:.1f}s)")
        return decided, failed


@dataclass(frozen=True)
class Decision:
    """What a pass decided about a store, with what act needs of how it got there."""

    spec: ReplicatedStoreSpec | None
    """The validated spec (None: invalid, and the plan says why)."""
    revision: str | None
    """The template revision of the spec."""
    digests: dict[str, str] | None
    """The Services and PodDisruptionBudget the spec builds (``kind/name`` -> digest)."""
    plan: Plan


def decide(
    ref: StoreRef,
    body: Mapping[str, Any],
    cache: WatchCache,
    now: datetime,
    memory: Memory,
    rates: Rates = DEFAULT_RATES,
) -> Decision:
    """Parse, observe and plan one store (``body``: metadata, spec and the status to plan on), with
    what only the planner's caller knows: the children the spec builds, the names others hold, and
    the refusals ``memory`` remembers. One place, so that the dry run (``dryrun``) previews exactly
    what a pass decides."""
    spec, invalid = parse(body, ref.name)
    observed = observe_store(ref, body, cache)
    revision = build.template_revision(spec) if spec else None
    digests = wanted_children(ref, spec) if spec else None
    refused = memory.refusals[1] if memory.refusals and memory.refusals[0] >= REFUSED_PASSES else None
    expansion = memory.expansion_refused
    decided = plan(
        spec,
        observed,
        now,
        invalid=invalid,
        revision=revision,
        has_ports=spec is not None and build.client_service(ref, spec) is not None,
        child_digests=digests,
        collisions=collisions(ref, digests or {}, cache),
        refused=refused,
        expansion_refused=expansion[1] if spec and expansion and expansion[0] == str(spec.storage.size) else None,
        rates=rates,
    )
    return Decision(spec, revision, digests, decided)


def observe_store(ref: StoreRef, body: Mapping[str, Any], cache: WatchCache) -> Observed:
    """The store's world, from the cache: its own children only (controlled by it, or on record)."""
    key = (ref.namespace, ref.name)
    claims = cache.of_store("claims", key)
    bound = (str((c.get("spec") or {}).get("volumeName") or "") for c in claims)
    return observe(
        ref,
        int(body.get("metadata", {}).get("generation") or 0),
        dict(body.get("status") or {}),
        pods=cache.of_store("pods", key),
        drill_pods=cache.of_store("drills", key),
        claims=claims,
        nodes=cache.nodes(),
        children=[c["child"] for c in cache.child_objects(key) if controller_uid(c) == ref.uid],
        snapshots=cache.of_store("snapshots", key),
        annotations=dict(body.get("metadata", {}).get("annotations") or {}),
        volumes={name: found for name in bound if (found := cache.volume(name)) is not None},
    )


def wanted_children(ref: StoreRef, spec: ReplicatedStoreSpec) -> dict[str, str]:
    """The digests of the Services and PodDisruptionBudget that the spec builds, by ``kind/name``."""
    built: dict[str, dict[str, Any] | None] = {
        f"peers-service/{names.peers_service(ref.name)}": build.peers_service(ref, spec),
        f"client-service/{names.client_service(ref.name)}": build.client_service(ref, spec),
        f"disruption-budget/{names.disruption_budget(ref.name)}": build.disruption_budget(ref, spec, "policy/v1"),
    }
    return {key: build.child_fingerprint(manifest) for key, manifest in built.items() if manifest is not None}


def collisions(ref: StoreRef, wanted: Mapping[str, str], cache: WatchCache) -> dict[str, str]:
    """The children this store needs (``wanted``: ``kind/name`` -> digest) whose names another owner's
    object holds (``kind/name`` -> who), as far as the cache sees (objects labelled by Phalanx; an
    unlabelled one shows as a refusal)."""
    found = {}
    for child in wanted:
        kind, _, name = child.partition("/")
        budget = kind == "disruption-budget"
        existing = cache.find("budgets" if budget else "services", ref.namespace, name)
        if existing is not None and controller_uid(existing) != ref.uid:
            found[child] = f"{'PodDisruptionBudget' if budget else 'Service'} {name} ({controller_name(existing)})"
    return found


def parse(body: Mapping[str, Any], name: str) -> tuple[ReplicatedStoreSpec | None, str | None]:
    """The validated spec, or None and a message naming every problem and its fix."""
    parsed = parse_spec(dict(body.get("spec") or {}), name)
    if isinstance(parsed, list):
        errors: list[SpecError] = parsed
        return None, "; ".join(f"{e.field}: {e.message}" for e in errors)
    return parsed, None


def remember_refusals(memory: Memory, outcomes: list[Outcome]) -> None:
    """Count passes in a row whose writes the API server refused (the planner reports the store
    Stalled past a bound), and remember a refused expansion (not asked again for the same size)."""
    refused = [o for o in outcomes if o.refused and not isinstance(o.action, ExpandVolume)]
    if refused:
        count = (memory.refusals or (0, ""))[0] + 1
        memory.refusals = (count, f"{refused[0].action.reason}: {refused[0].error}")
    else:
        memory.refusals = None
    for outcome in outcomes:
        if isinstance(outcome.action, ExpandVolume) and outcome.refused:
            memory.expansion_refused = (outcome.action.size, str(outcome.error))


def report_foreign(events: Events, previous: Mapping[str, Any], plan_: Plan) -> None:
    """A warning Event when the objects that carry the store's labels without being Phalanx's change
    (once per change, not per pass: the condition keeps saying it)."""
    before = {c.get("type"): c for c in previous.get("conditions") or [] if isinstance(c, Mapping)}
    now = next((c for c in plan_.status.conditions if c.type == ConditionType.FOREIGN_OBJECTS.value), None)
    old = before.get(ConditionType.FOREIGN_OBJECTS.value) or {}
    if now is not None and now.status.value == "True" and old.get("message") != now.message:
        events.warn("ForeignObject", now.message)


def report(events: Events, outcomes: list[Outcome]) -> None:
    """One Kubernetes Event per action taken (or failed)."""
    for outcome in outcomes:
        action = outcome.action
        if outcome.error is None:
            events.info(action.reason, f"{getattr(action, 'member', '')}: {action.why}".lstrip(": "))
        else:
            events.warn(f"{action.reason}Failed", f"{action.why}: {outcome.error}")


def completed_recovery(previous: Mapping[str, Any], plan_: Plan) -> RecoveryRecord | None:
    """The recovery whose replacement became ready in this pass (so it is reported exactly once)."""
    done = plan_.status.last_recovery
    before = previous.get("lastRecovery") or {}
    if done is None or done.ready_at is None or before.get("readyAt") or before.get("member") != done.member:
        return None
    return done


def ended_drill(previous: Mapping[str, Any], plan_: Plan) -> DrillRecord | None:
    """The restore drill whose verdict this pass reached (so it is reported and counted once)."""
    drilled = plan_.status.last_drill
    if drilled is None or (previous.get("lastDrill") or {}).get("name") == drilled.name:
        return None
    return drilled


Said = tuple[bool, str, str]
"""An Event to post: (a warning?, reason, message)."""


def rollout_news(
    previous: Mapping[str, Any], plan_: Plan, now: datetime
) -> tuple[list[Said], float | None, str | None]:
    """What changed in the rollout this pass, reported once: Events (halted, resumed, completed),
    the duration of a step that just passed the gate, and the strategy of a step that just started."""
    before = previous.get("rollout") or {}
    after = plan_.status.rollout
    said: list[Said] = []
    if after is not None and after.halted and not before.get("halted"):
        said.append((True, "RolloutHalted", after.halted))
    if before and after is None:
        said.append((False, "RolloutCompleted", f"every member runs revision {before.get('revision')}"))
    duration = None
    started = before.get("stepStartedAt")
    if (
        before.get("inFlight")
        and started
        and (after is None or not after.in_flight or after.step_started_at != _time(started))
    ):
        start = _time(started)
        duration = (now - start).total_seconds() if start is not None else None
    began = None
    if after is not None and after.step_started_at is not None and _time(started) != after.step_started_at:
        began = after.strategy.value if after.strategy else None
    return said, duration, began


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def record(ref: StoreRef, plan_: Plan, desired: int, previous: Mapping[str, Any], now: datetime) -> None:
    """The store's metrics after a pass; every series is set through ``metrics.of`` so that the
    store's own series can be found (and dropped) without scanning every other store's."""
    status, ns, name = plan_.status, ref.namespace, ref.name
    metrics.of(metrics.DESIRED, ns, name).set(desired)
    metrics.of(metrics.READY, ns, name).set(status.ready_replicas)
    counts: dict[tuple[str, str], int] = {}
    for member in status.members:
        counts[(member.zone, member.state.value)] = counts.get((member.zone, member.state.value), 0) + 1
    metrics.drop(metrics.MEMBERS, ns, name, keep=set(counts))  # states no member is in any more go
    for (zone, state), count in counts.items():
        metrics.of(metrics.MEMBERS, ns, name, zone, state).set(count)
    # Only True (1) and False (0): an Unknown condition, or one no longer reported, has no series, so
    # that a dashboard never reads "not known" as "False".
    known = {c.type: c.status == ConditionStatus.TRUE for c in status.conditions if c.status != ConditionStatus.UNKNOWN}
    metrics.drop(metrics.STORE_CONDITION, ns, name, keep={(kind,) for kind in known})
    for kind, value in known.items():
        metrics.of(metrics.STORE_CONDITION, ns, name, kind).set(value)
    for recovery in plan_.recoveries:
        metrics.of(metrics.RECOVERIES, ns, name, recovery.source.value).inc()
    done = completed_recovery(previous, plan_)
    if done is not None and done.seconds is not None:
        metrics.RECOVERY_SECONDS.labels(done.source.value).observe(done.seconds)
    held = status.reliability
    if held is not None:
        metrics.of(metrics.MEMBER_LOSSES, ns, name).set(held.losses_in_window)
        worst = held.worst
        for of, when, share in (
            ("members", "now", held.now.members),
            ("zones", "now", held.now.zones),
            ("members", "worst", worst.members if worst else 0),
            ("zones", "worst", worst.zones if worst else 0),
        ):
            metrics.of(metrics.BLAST_RADIUS, ns, name, of, when).set(share / 100)
        if held.predicted is not None:
            metrics.of(metrics.PREDICTED_RECOVERY, ns, name, "empty").set(held.predicted.from_empty_seconds)
            snapshot = held.predicted.from_snapshot_seconds
            if snapshot is not None:
                metrics.of(metrics.PREDICTED_RECOVERY, ns, name, "snapshot").set(snapshot)
            else:
                metrics.drop(metrics.PREDICTED_RECOVERY, ns, name, keep={("empty",)})
    rollout = status.rollout
    metrics.of(metrics.ROLLOUT_MEMBERS, ns, name, "updated").set(rollout.replaced if rollout else 0)
    metrics.of(metrics.ROLLOUT_MEMBERS, ns, name, "total").set(rollout.total if rollout else 0)
    said, duration, began = rollout_news(previous, plan_, now)
    if began is not None:
        metrics.of(metrics.ROLLOUT_STEPS, ns, name, began).inc()
    if duration is not None and (previous.get("rollout") or {}).get("strategy"):
        metrics.ROLLOUT_STEP_SECONDS.labels(previous["rollout"]["strategy"]).observe(duration)
    if any(reason == "RolloutHalted" for _, reason, _ in said):
        metrics.of(metrics.ROLLOUT_HALTS, ns, name).inc()
    drilled = ended_drill(previous, plan_)
    if drilled is not None:
        metrics.of(metrics.DRILLS, ns, name, drilled.result.value).inc()
        metrics.DRILL_SECONDS.labels(drilled.result.value).observe(drilled.seconds)
    if status.last_drill is not None and status.last_drill.last_succeeded_at is not None:
        metrics.of(metrics.LAST_DRILL_SUCCESS, ns, name).set(status.last_drill.last_succeeded_at.timestamp())
    retired = status.retired_volumes
    metrics.of(metrics.RETIRED_VOLUMES, ns, name).set(retired.count if retired else 0)
    metrics.of(metrics.RETIRED_VOLUME_BYTES, ns, name).set(retired.bytes if retired else 0)
    if status.snapshots is not None:
        metrics.of(metrics.SNAPSHOTS, ns, name).set(status.snapshots.count)
        if status.snapshots.latest_time is not None:
            metrics.of(metrics.SNAPSHOT_AGE, ns, name).set((now - status.snapshots.latest_time).total_seconds())
            metrics.of(metrics.SNAPSHOT_LAST_SUCCESS, ns, name).set(status.snapshots.latest_time.timestamp())
