"""Handlers: the only module that imports Kopf. It wires events to observe → plan → act.

- **Indexes** keep every pod and PVC labelled ``phalanx.dev/store``, the store's Services and
  PodDisruptionBudget, and all nodes, in memory: observing a store costs no API call.
- **One daemon per store** runs the loop: observe from the indexes, plan, write status, act, then
  sleep until the plan's requeue time or until something of the store changes.
- **Event handlers** on children (and on nodes whose health changed) wake the store's daemon at once,
  so a deleted pod is replaced within a second instead of at the next timer.
- **The deletion handler** is the finalizer that applies ``deletionPolicy``.

Kopf keeps its own bookkeeping in ``status.kopf``, never in annotations, and nothing here writes
``spec``, so GitOps tools see no drift.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from phalanx import build, metrics, names
from phalanx.act import OWN_STATUS_EXCLUDED, Actor, Outcome
from phalanx.models import GROUP, PLURAL, VERSION, DeletionPolicy, RecoveryRecord, ReplicatedStoreSpec
from phalanx.names import StoreRef
from phalanx.observe import NodeView, Observed, observe
from phalanx.plan import (
    CreateMember,
    CreatePod,
    DeletePod,
    DeleteSnapshot,
    Plan,
    RetireMember,
    Snapshot,
    plan,
    plan_deletion,
)
from phalanx.settings import Settings
from phalanx.validation import SpecError, parse_spec

log = logging.getLogger("phalanx")
StoreKey = tuple[str, str]  # (namespace, store)


class Runtime:
    """Process-wide state: the writer, per-store wake-up events and the last seen node health.

    Only touched from the event loop: the handlers that wake stores are ``async`` for that reason
    (Kopf runs plain functions in worker threads, where ``asyncio.Event.set`` is not safe)."""

    def __init__(self) -> None:
        self.actor: Actor | None = None
        self.wakeups: dict[StoreKey, asyncio.Event] = {}
        self.node_health: dict[str, NodeView] = {}
        self.written: dict[StoreKey, tuple[str | None, dict[str, Any]]] = {}
        """Per store: the resourceVersion its body had when we last wrote its status, and what we wrote."""

    def wake(self, key: StoreKey) -> None:
        event = self.wakeups.get(key)
        if event is not None:
            event.set()

    def wake_all(self) -> None:
        for event in self.wakeups.values():
            event.set()


RUNTIME = Runtime()
INDEXES = (
    "phalanx_pods",
    "phalanx_claims",
    "phalanx_services",
    "phalanx_budgets",
    "phalanx_nodes",
    "phalanx_snapshots",
)
"""Kopf passes each index to handlers as a keyword argument of the indexing function's name."""


# ------------------------------------------------------------------------------------------------
# Startup


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    config = Settings.from_env()
    settings.persistence.finalizer = names.FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.lastHandledConfiguration")
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.batching.worker_limit = config.workers
    settings.execution.max_workers = config.workers
    RUNTIME.actor = await asyncio.to_thread(Actor.connect)
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    log.info("phalanx started: namespaces=%s metrics=:%s", config.namespaces or "all", config.metrics_port)


# ------------------------------------------------------------------------------------------------
# Indexes: the observed world, kept by Kopf from watch events.


def _store_key(namespace: str | None, labels: Mapping[str, str]) -> StoreKey:
    return (namespace or "", labels[names.STORE_LABEL])


@kopf.index("pods", labels={names.STORE_LABEL: kopf.PRESENT})
def phalanx_pods(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[StoreKey, Any]:
    return {_store_key(namespace, labels): dict(body)}


@kopf.index("persistentvolumeclaims", labels={names.STORE_LABEL: kopf.PRESENT})
def phalanx_claims(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[StoreKey, Any]:
    return {_store_key(namespace, labels): dict(body)}


@kopf.index("services", labels={names.STORE_LABEL: kopf.PRESENT})
def phalanx_services(
    namespace: str | None, labels: Mapping[str, str], name: str, body: kopf.Body, **_: Any
) -> dict[StoreKey, str]:
    kind = "peers-service" if (body.get("spec") or {}).get("clusterIP") == "None" else "client-service"
    return {_store_key(namespace, labels): f"{kind}/{name}#{build.child_fingerprint(dict(body))}"}


@kopf.index("policy", "poddisruptionbudgets", labels={names.STORE_LABEL: kopf.PRESENT})
def phalanx_budgets(
    namespace: str | None, labels: Mapping[str, str], name: str, body: kopf.Body, **_: Any
) -> dict[StoreKey, str]:
    return {_store_key(namespace, labels): f"disruption-budget/{name}#{build.child_fingerprint(dict(body))}"}


@kopf.index("snapshot.storage.k8s.io", "volumesnapshots", labels={names.STORE_LABEL: kopf.PRESENT})
def phalanx_snapshots(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[StoreKey, Any]:
    return {_store_key(namespace, labels): dict(body)}


@kopf.index("nodes")
def phalanx_nodes(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    return {name: dict(body)}


# ------------------------------------------------------------------------------------------------
# Wake-ups: a change of a child wakes its store's daemon; a node's health change wakes every store.


@kopf.on.event("pods", labels={names.STORE_LABEL: kopf.PRESENT})
@kopf.on.event("persistentvolumeclaims", labels={names.STORE_LABEL: kopf.PRESENT})
@kopf.on.event("services", labels={names.STORE_LABEL: kopf.PRESENT})
@kopf.on.event("policy", "poddisruptionbudgets", labels={names.STORE_LABEL: kopf.PRESENT})
@kopf.on.event("snapshot.storage.k8s.io", "volumesnapshots", labels={names.STORE_LABEL: kopf.PRESENT})
async def child_changed(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
    RUNTIME.wake(_store_key(namespace, labels))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def store_changed(name: str, namespace: str | None, **_: Any) -> None:
    """A spec edit (or our own status write) reaches the daemon at once; the plan decides if it matters."""
    RUNTIME.wake((namespace or "", name))


@kopf.on.event("nodes")
async def node_changed(name: str, body: kopf.Body, type: str | None, **_: Any) -> None:
    health = NodeView.of(dict(body))
    if type == "DELETED":
        RUNTIME.node_health.pop(name, None)
        RUNTIME.wake_all()
    elif RUNTIME.node_health.get(name) != health:  # heartbeats alone change nothing that matters
        RUNTIME.node_health[name] = health
        RUNTIME.wake_all()


# ------------------------------------------------------------------------------------------------
# The loop of one store


def _values(index: kopf.Index[Any, Any], key: Any) -> list[Any]:
    store = index.get(key)
    return list(store) if store is not None else []


def _all_values(index: kopf.Index[Any, Any]) -> Iterable[Any]:
    for key in list(index):
        yield from _values(index, key)


def observe_store(ref: StoreRef, body: Mapping[str, Any], indexes: Mapping[str, kopf.Index[Any, Any]]) -> Observed:
    key = (ref.namespace, ref.name)
    return observe(
        ref,
        int(body.get("metadata", {}).get("generation") or 0),
        dict(body.get("status") or {}),
        pods=_values(indexes["phalanx_pods"], key),
        claims=_values(indexes["phalanx_claims"], key),
        nodes=_all_values(indexes["phalanx_nodes"]),
        children=[*_values(indexes["phalanx_services"], key), *_values(indexes["phalanx_budgets"], key)],
        snapshots=_values(indexes["phalanx_snapshots"], key),
        annotations=dict(body.get("metadata", {}).get("annotations") or {}),
    )


def wanted_children(ref: StoreRef, spec: ReplicatedStoreSpec) -> dict[str, str]:
    """The digests of the Services and PodDisruptionBudget that the spec builds, by ``kind/name``."""
    built: dict[str, dict[str, Any] | None] = {
        f"peers-service/{names.peers_service(ref.name)}": build.peers_service(ref, spec),
        f"client-service/{names.client_service(ref.name)}": build.client_service(ref, spec),
        f"disruption-budget/{names.disruption_budget(ref.name)}": build.disruption_budget(ref, spec, "policy/v1"),
    }
    return {key: build.child_fingerprint(manifest) for key, manifest in built.items() if manifest is not None}


def parse(body: Mapping[str, Any], name: str) -> tuple[ReplicatedStoreSpec | None, str | None]:
    """The validated spec, or None and a message naming every problem and its fix."""
    parsed = parse_spec(dict(body.get("spec") or {}), name)
    if isinstance(parsed, list):
        errors: list[SpecError] = parsed
        return None, "; ".join(f"{e.field}: {e.message}" for e in errors)
    return parsed, None


def expected_visible(plan_: Plan, observed: Observed) -> bool:
    """Whether the indexes already show what the last plan did (so the next plan does not redo it)."""
    for action in plan_.actions:
        member = observed.member(getattr(action, "member", ""))
        if isinstance(action, CreateMember) and (member is None or member.pod is None or member.claim is None):
            return False
        if isinstance(action, CreatePod) and (member is None or member.pod is None):
            return False
        pod = member.pod if member is not None else None
        if isinstance(action, DeletePod) and pod is not None and pod.uid == action.uid and not pod.terminating:
            return False
        if isinstance(action, RetireMember) and member is not None:
            return False
        if isinstance(action, Snapshot) and not any(s.name == action.name for s in observed.snapshots):
            return False
        if isinstance(action, DeleteSnapshot) and any(
            s.uid == action.uid and not s.terminating for s in observed.snapshots
        ):
            return False
    return True


def report(body: kopf.Body, outcomes: list[Outcome]) -> None:
    """One Kubernetes Event per action taken (or failed)."""
    for outcome in outcomes:
        action = outcome.action
        if outcome.error is None:
            kopf.info(body, reason=action.reason, message=f"{getattr(action, 'member', '')}: {action.why}".lstrip(": "))
        else:
            kopf.warn(body, reason=f"{action.reason}Failed", message=f"{action.why}: {outcome.error}")


def completed_recovery(previous: Mapping[str, Any], plan_: Plan) -> RecoveryRecord | None:
    """The recovery whose replacement became ready in this pass (so it is reported exactly once)."""
    done = plan_.status.last_recovery
    before = previous.get("lastRecovery") or {}
    if done is None or done.ready_at is None or before.get("readyAt") or before.get("member") != done.member:
        return None
    return done


def record(ref: StoreRef, plan_: Plan, desired: int, previous: Mapping[str, Any]) -> None:
    status = plan_.status
    metrics.DESIRED.labels(ref.namespace, ref.name).set(desired)
    metrics.READY.labels(ref.namespace, ref.name).set(status.ready_replicas)
    metrics.clear(metrics.MEMBERS, ref.namespace, ref.name)  # states no member is in any more go
    counts: dict[tuple[str, str], int] = {}
    for member in status.members:
        counts[(member.zone, member.state.value)] = counts.get((member.zone, member.state.value), 0) + 1
    for (zone, state), count in counts.items():
        metrics.MEMBERS.labels(ref.namespace, ref.name, zone, state).set(count)
    for condition in status.conditions:
        metrics.STORE_CONDITION.labels(ref.namespace, ref.name, condition.type).set(condition.status == "True")
    for recovery in plan_.recoveries:
        metrics.RECOVERIES.labels(ref.namespace, ref.name, recovery.source.value).inc()
    done = completed_recovery(previous, plan_)
    if done is not None and done.seconds is not None:
        metrics.RECOVERY_SECONDS.labels(done.source.value).observe(done.seconds)
    if status.snapshots is not None:
        metrics.SNAPSHOTS.labels(ref.namespace, ref.name).set(status.snapshots.count)
        if status.snapshots.latest_time is not None:
            age = (datetime.now(UTC) - status.snapshots.latest_time).total_seconds()
            metrics.SNAPSHOT_AGE.labels(ref.namespace, ref.name).set(age)


async def reconcile(ref: StoreRef, body: kopf.Body, indexes: Mapping[str, kopf.Index[Any, Any]]) -> tuple[Plan, int]:
    """One pass: observe, plan, write status (first: it records serials about to be used), act.
    Returns the plan and how many of its actions failed."""
    actor = RUNTIME.actor
    assert actor is not None, "startup did not run"
    snapshot = {"metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}
    if snapshot["metadata"].get("deletionTimestamp"):
        # Being deleted (perhaps with its namespace): the finalizer owns it now; recreating
        # children would only fight the deletion.
        return Plan((), plan(None, observe_store(ref, snapshot, indexes), datetime.now(UTC)).status, 5.0), 0
    key = (ref.namespace, ref.name)
    echo = RUNTIME.written.get(key)
    if echo is not None and echo[0] == snapshot["metadata"].get("resourceVersion"):
        # The watch has not yet brought back our last status write: plan on what we wrote, so that
        # nothing is decided (or reported) twice.
        kept = {k_: v for k_, v in snapshot["status"].items() if k_ in OWN_STATUS_EXCLUDED}
        snapshot["status"] = {**kept, **echo[1]}
    spec, invalid = parse(snapshot, ref.name)
    observed = observe_store(ref, snapshot, indexes)
    revision = build.template_revision(spec) if spec else None
    has_ports = spec is not None and build.client_service(ref, spec) is not None
    decided = plan(
        spec,
        observed,
        datetime.now(UTC),
        invalid=invalid,
        revision=revision,
        has_ports=has_ports,
        child_digests=wanted_children(ref, spec) if spec else None,
    )
    new_status = decided.status.to_wire()
    if await asyncio.to_thread(actor.write_status, ref, snapshot["status"], new_status):
        RUNTIME.written[key] = (snapshot["metadata"].get("resourceVersion"), new_status)
    failed = 0
    if decided.actions and spec is not None and revision is not None:
        outcomes = await asyncio.to_thread(actor.execute, ref, spec, decided, revision)
        report(body, outcomes)
        failed = sum(1 for o in outcomes if o.error)
    record(ref, decided, spec.replicas if spec else 0, snapshot["status"])
    done = completed_recovery(snapshot["status"], decided)
    if done is not None:
        kopf.info(
            body,
            reason="RecoveryCompleted",
            message=f"{done.replacement} replaced {done.member} ({done.source.value}"
            f"{' ' + done.snapshot if done.snapshot else ''}) in {done.seconds}s",
        )
    return decided, failed


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def run_store(
    stopped: kopf.DaemonStopped,
    name: str,
    namespace: str | None,
    uid: str,
    body: kopf.Body,
    **kwargs: Any,
) -> None:
    """The store's loop; level-triggered: every pass starts from the observed world."""
    ref = StoreRef(name, namespace or "", uid)
    key = (ref.namespace, name)
    wake = RUNTIME.wakeups.setdefault(key, asyncio.Event())
    indexes = {index: kwargs[index] for index in INDEXES}
    last: Plan | None = None
    settle_until = 0.0
    failing = 0  # consecutive passes with failed writes: back off (quota, admission, RBAC ...)
    try:
        while not stopped:
            wake.clear()
            if last is not None and last.actions and time.monotonic() < settle_until:
                observed = observe_store(ref, {"metadata": dict(body.metadata), "status": dict(body.status)}, indexes)
                if not expected_visible(last, observed):  # the watch has not caught up with our writes yet
                    await _sleep(wake, stopped, 0.5)
                    continue
            started = time.monotonic()
            try:
                last, failed = await reconcile(ref, body, indexes)
                metrics.RECONCILES.labels(ref.namespace, name, "ok").inc()
                failing = failing + 1 if failed else 0
                delay = min(5.0 * 2 ** (failing - 1), 300.0) if failing else last.requeue_after
            except Exception:
                log.exception("reconcile of %s/%s failed", namespace, name)
                metrics.RECONCILES.labels(ref.namespace, name, "error").inc()
                last, delay = None, 5.0
            finally:
                metrics.RECONCILE_SECONDS.labels(ref.namespace, name).observe(time.monotonic() - started)
            settle_until = time.monotonic() + 10.0
            await _sleep(wake, stopped, delay)
    finally:
        RUNTIME.wakeups.pop(key, None)
        RUNTIME.written.pop(key, None)


async def _sleep(wake: asyncio.Event, stopped: kopf.DaemonStopped, delay: float) -> None:
    """Until ``delay`` passes, the store is woken, or the daemon is stopped."""
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


# ------------------------------------------------------------------------------------------------
# Deletion


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete_store(
    name: str,
    namespace: str | None,
    uid: str,
    body: kopf.Body,
    **kwargs: Any,
) -> None:
    """Apply deletionPolicy. An invalid spec counts as Retain: data is never deleted on a guess."""
    actor = RUNTIME.actor
    assert actor is not None
    ref = StoreRef(name, namespace or "", uid)
    key = (ref.namespace, name)
    spec, _invalid = parse({"spec": dict(body.spec)}, name)
    policy = spec.deletion_policy if spec else DeletionPolicy.RETAIN
    claims_raw = _values(kwargs["phalanx_claims"], key)
    observed = observe(ref, 0, {}, _values(kwargs["phalanx_pods"], key), claims_raw, ())
    retained = {
        c["metadata"]["name"] for c in claims_raw if names.RETAINED_ANNOTATION in c["metadata"].get("annotations", {})
    }
    # Only the store's own claims (canonical member names), terminating ones included: a namespace
    # being deleted takes the claims too, and Retain must still pin their volumes.
    views = [m.claim for m in observed.members if m.claim is not None] + list(observed.retired_claims)
    claims = [(c.name, c.uid, c.retired, c.name in retained) for c in views]
    ready = await asyncio.to_thread(actor.final_snapshots, ref, [c[0] for c in claims])
    actions, done = plan_deletion(policy, observed, claims, ready)
    outcomes = await asyncio.to_thread(actor.finalize, ref, spec, actions)
    report(body, outcomes)
    if not done or any(o.error for o in outcomes):
        raise kopf.TemporaryError("waiting for final snapshots or retrying failed deletions", delay=2)
    metrics.forget_store(ref.namespace, name)
