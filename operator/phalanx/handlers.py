"""Handlers: the only module that imports Kopf. It wires events to observe → plan → act.

- **The watch cache** (``cache``) keeps every pod, PVC, VolumeSnapshot, Service and
  PodDisruptionBudget labelled ``phalanx.dev/store``, and all nodes, in memory: observing a store
  costs no API call. Its changes wake the stores they concern at once, so a deleted pod is replaced
  within a second instead of at the next timer.
- **One daemon per store** runs the loop: observe from the cache, plan, write status, act, then
  sleep until the plan's requeue time or until something of the store changes. It does not plan
  while the cache has not shown its own last writes (``expectations``).
- **The deletion handler** is the finalizer that applies ``deletionPolicy``.

Kopf watches only ReplicatedStores. It keeps its own bookkeeping in ``status.kopf``, never in
annotations, and nothing here writes ``spec``, so GitOps tools see no drift.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import kopf

from phalanx import build, metrics, names
from phalanx import kube as k
from phalanx.act import OWN_STATUS_EXCLUDED, Actor, Outcome, Provenance, controller_name, controller_uid
from phalanx.cache import StoreKey, WatchCache
from phalanx.expectations import Expectations, expected
from phalanx.models import (
    GROUP,
    PLURAL,
    VERSION,
    ConditionType,
    DeletionPolicy,
    RecoveryRecord,
    ReplicatedStoreSpec,
)
from phalanx.names import StoreRef
from phalanx.observe import Observed, observe
from phalanx.plan import REFUSED_PASSES, ExpandVolume, Plan, plan, plan_deletion
from phalanx.settings import Settings
from phalanx.validation import SpecError, parse_spec

log = logging.getLogger("phalanx")
T = TypeVar("T")

WATCH_DELAY = float(os.environ.get("PHALANX_TEST_WATCH_DELAY", "0") or 0)
"""Test-only: seconds by which the cache receives every pod and PVC watch event late, so that the
tests can prove that a lagging watch never makes a store create twice. Unset in production."""


class Runtime:
    """Process-wide state: the writer, the watch cache, per-store wake-ups and expectations.

    ``wake`` is only called on the event loop; the cache's threads hand over with
    ``call_soon_threadsafe`` (``asyncio.Event.set`` is not thread-safe)."""

    def __init__(self) -> None:
        self.actor: Actor | None = None
        self.cache: WatchCache | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wakeups: dict[StoreKey, asyncio.Event] = {}
        self.expectations = Expectations()
        self.refusals: dict[StoreKey, tuple[int, str]] = {}
        """Per store: passes in a row with refused writes, and the last refusal."""
        self.expansion_refused: dict[StoreKey, tuple[str, str]] = {}
        """Per store: the size whose expansion the API server refused, and why."""
        self.written: dict[StoreKey, tuple[str | None, dict[str, Any]]] = {}
        """Per store: the resourceVersion its body had when we last wrote its status, and what we wrote."""

    def wake(self, stores: Iterable[StoreKey] | None) -> None:
        """Wake these stores' loops (None: every store)."""
        if stores is None:
            events: Iterable[asyncio.Event] = list(self.wakeups.values())
        else:
            events = [e for key in stores if (e := self.wakeups.get(key)) is not None]
        for event in events:
            event.set()

    def wake_from_thread(self, stores: Iterable[StoreKey] | None) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.wake, stores)

    async def io(self, call: Callable[..., T], *args: Any) -> T:
        """Run a blocking API call on the writer threads (not the loop's default pool: its size is
        the machine's core count, and a thousand stores writing at once would queue behind it)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(call, *args))

    def ready(self) -> tuple[Actor, WatchCache]:
        assert self.actor is not None and self.cache is not None, "startup did not run"
        return self.actor, self.cache


RUNTIME = Runtime()


# ------------------------------------------------------------------------------------------------
# Startup and cleanup


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    config = Settings.from_env()
    for name in config.retired:
        log.warning("%s is no longer a setting and is ignored (see README: Settings)", name)
    settings.persistence.finalizer = names.FINALIZER
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.lastHandledConfiguration")
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    RUNTIME.loop = asyncio.get_running_loop()
    RUNTIME.pool = ThreadPoolExecutor(config.api_threads, thread_name_prefix="phalanx-api")
    RUNTIME.actor = actor = await RUNTIME.io(Actor.connect, config.api_threads)
    watcher = k.Kube(k.load_default_client(connections=4))
    RUNTIME.cache = WatchCache(watcher, actor.pdb, config.namespaces, RUNTIME.wake_from_thread, delay=WATCH_DELAY)
    RUNTIME.cache.start()
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    log.info("phalanx started: namespaces=%s metrics=:%s", config.namespaces or "all", config.metrics_port)


@kopf.on.cleanup()
async def shut_down(**_: Any) -> None:
    if RUNTIME.cache is not None:
        RUNTIME.cache.stop()


async def cache_synced(stopped: kopf.DaemonStopped | None = None) -> WatchCache:
    """The cache, once every watched kind has been listed: planning on a half-filled cache would
    take present members for missing ones."""
    _, cache = RUNTIME.ready()
    while not cache.synced() and not (stopped and stopped.is_set()):
        await asyncio.sleep(0.1)
    return cache


# ------------------------------------------------------------------------------------------------
# Wake-ups: the cache wakes stores when their children or nodes change; Kopf, when the store does.


@kopf.on.event(GROUP, VERSION, PLURAL)
async def store_changed(name: str, namespace: str | None, **_: Any) -> None:
    """A spec edit (or our own status write) reaches the daemon at once; the plan decides if it matters."""
    RUNTIME.wake([(namespace or "", name)])


# ------------------------------------------------------------------------------------------------
# The loop of one store


def observe_store(ref: StoreRef, body: Mapping[str, Any], cache: WatchCache) -> Observed:
    key = (ref.namespace, ref.name)
    claims = cache.of_store("claims", key)
    bound = (str((c.get("spec") or {}).get("volumeName") or "") for c in claims)
    return observe(
        ref,
        int(body.get("metadata", {}).get("generation") or 0),
        dict(body.get("status") or {}),
        pods=cache.of_store("pods", key),
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


def collisions(ref: StoreRef, spec: ReplicatedStoreSpec, cache: WatchCache) -> dict[str, str]:
    """The children this store needs whose names another owner's object holds (``kind/name`` -> who),
    as far as the cache sees (objects labelled by Phalanx; an unlabelled one shows as a refusal)."""
    found = {}
    for child in wanted_children(ref, spec):
        kind, _, name = child.partition("/")
        existing = cache.find("budgets" if kind == "disruption-budget" else "services", ref.namespace, name)
        if existing is not None and controller_uid(existing) != ref.uid:
            found[child] = f"{'PodDisruptionBudget' if kind == 'disruption-budget' else 'Service'} {name} " + (
                f"({controller_name(existing)})"
            )
    return found


def parse(body: Mapping[str, Any], name: str) -> tuple[ReplicatedStoreSpec | None, str | None]:
    """The validated spec, or None and a message naming every problem and its fix."""
    parsed = parse_spec(dict(body.get("spec") or {}), name)
    if isinstance(parsed, list):
        errors: list[SpecError] = parsed
        return None, "; ".join(f"{e.field}: {e.message}" for e in errors)
    return parsed, None


def remember_refusals(key: StoreKey, outcomes: list[Outcome]) -> None:
    """Count passes in a row whose writes the API server refused (the planner reports the store
    Stalled past a bound), and remember a refused expansion (not asked again for the same size)."""
    refused = [o for o in outcomes if o.refused and not isinstance(o.action, ExpandVolume)]
    if refused:
        count = RUNTIME.refusals.get(key, (0, ""))[0] + 1
        RUNTIME.refusals[key] = (count, f"{refused[0].action.reason}: {refused[0].error}")
    else:
        RUNTIME.refusals.pop(key, None)
    for outcome in outcomes:
        if isinstance(outcome.action, ExpandVolume) and outcome.refused:
            RUNTIME.expansion_refused[key] = (outcome.action.size, str(outcome.error))


def report_foreign(body: kopf.Body, previous: Mapping[str, Any], plan_: Plan) -> None:
    """A warning Event when the objects that carry the store's labels without being Phalanx's change
    (once per change, not per pass: the condition keeps saying it)."""
    before = {c.get("type"): c for c in previous.get("conditions") or [] if isinstance(c, Mapping)}
    now = next((c for c in plan_.status.conditions if c.type == ConditionType.FOREIGN_OBJECTS.value), None)
    old = before.get(ConditionType.FOREIGN_OBJECTS.value) or {}
    if now is not None and now.status.value == "True" and old.get("message") != now.message:
        kopf.warn(body, reason="ForeignObject", message=now.message)


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
    for condition in status.conditions:
        metrics.of(metrics.STORE_CONDITION, ns, name, condition.type).set(condition.status == "True")
    for recovery in plan_.recoveries:
        metrics.of(metrics.RECOVERIES, ns, name, recovery.source.value).inc()
    done = completed_recovery(previous, plan_)
    if done is not None and done.seconds is not None:
        metrics.RECOVERY_SECONDS.labels(done.source.value).observe(done.seconds)
    if status.snapshots is not None:
        metrics.of(metrics.SNAPSHOTS, ns, name).set(status.snapshots.count)
        if status.snapshots.latest_time is not None:
            age = (datetime.now(UTC) - status.snapshots.latest_time).total_seconds()
            metrics.of(metrics.SNAPSHOT_AGE, ns, name).set(age)


async def reconcile(ref: StoreRef, body: kopf.Body) -> tuple[Plan, int]:
    """One pass: observe, plan, write status (first: it records serials about to be used), act.
    Returns the plan and how many of its actions failed; what succeeded is expected in the cache."""
    actor, cache = RUNTIME.ready()
    snapshot = {"metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}
    if snapshot["metadata"].get("deletionTimestamp"):
        # Being deleted (perhaps with its namespace): the finalizer owns it now; recreating
        # children would only fight the deletion.
        return Plan((), plan(None, observe_store(ref, snapshot, cache), datetime.now(UTC)).status, 5.0), 0
    key = (ref.namespace, ref.name)
    echo = RUNTIME.written.get(key)
    if echo is not None and echo[0] == snapshot["metadata"].get("resourceVersion"):
        # The watch has not yet brought back our last status write: plan on what we wrote, so that
        # nothing is decided (or reported) twice.
        kept = {k_: v for k_, v in snapshot["status"].items() if k_ in OWN_STATUS_EXCLUDED}
        snapshot["status"] = {**kept, **echo[1]}
    elif echo is not None:
        del RUNTIME.written[key]  # the watch has brought it back: a thousand stores' copies cost memory
    spec, invalid = parse(snapshot, ref.name)
    observed = observe_store(ref, snapshot, cache)
    revision = build.template_revision(spec) if spec else None
    has_ports = spec is not None and build.client_service(ref, spec) is not None
    digests = wanted_children(ref, spec) if spec else None
    refusals = RUNTIME.refusals.get(key)
    expansion = RUNTIME.expansion_refused.get(key)
    decided = plan(
        spec,
        observed,
        datetime.now(UTC),
        invalid=invalid,
        revision=revision,
        has_ports=has_ports,
        child_digests=digests,
        collisions=collisions(ref, spec, cache) if spec else None,
        refused=refusals[1] if refusals and refusals[0] >= REFUSED_PASSES else None,
        expansion_refused=expansion[1] if spec and expansion and expansion[0] == str(spec.storage.size) else None,
    )
    new_status = decided.status.to_wire()
    if await RUNTIME.io(actor.write_status, ref, snapshot["status"], new_status):
        RUNTIME.written[key] = (snapshot["metadata"].get("resourceVersion"), new_status)
    report_foreign(body, snapshot["status"], decided)
    failed = 0
    if decided.actions and spec is not None and revision is not None:
        provenance = Provenance.of(decided.status.owned, functools.partial(actor.write_owned, ref))
        outcomes = await RUNTIME.io(actor.execute, ref, spec, decided, revision, provenance)
        if provenance.changed:  # act recorded what it made: plan the next pass on that record too
            version = snapshot["metadata"].get("resourceVersion")
            RUNTIME.written[key] = (version, {**new_status, "owned": provenance.wire()})
        now = time.monotonic()
        RUNTIME.expectations.add(
            key, [e for o in outcomes if o.error is None for e in expected(o.action, now, digests)]
        )
        report(body, outcomes)
        failed = sum(1 for o in outcomes if o.error)
        remember_refusals(key, outcomes)
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
    cache = await cache_synced(stopped)
    failing = 0  # consecutive passes with failed writes: back off (quota, admission, RBAC ...)
    try:
        while not stopped:
            wake.clear()
            if not await _caught_up(ref, cache):  # our own last writes are not in the cache yet
                await _sleep(wake, stopped, 1.0)
                continue
            started = time.monotonic()
            try:
                last, failed = await reconcile(ref, body)
                metrics.of(metrics.RECONCILES, ref.namespace, name, "ok").inc()
                failing = failing + 1 if failed else 0
                delay = min(5.0 * 2 ** (failing - 1), 300.0) if failing else last.requeue_after
            except Exception:
                log.exception("reconcile of %s/%s failed", namespace, name)
                metrics.of(metrics.RECONCILES, ref.namespace, name, "error").inc()
                delay = 5.0
            finally:
                metrics.of(metrics.RECONCILE_SECONDS, ref.namespace, name).observe(time.monotonic() - started)
            await _sleep(wake, stopped, delay)
    finally:
        RUNTIME.wakeups.pop(key, None)
        RUNTIME.written.pop(key, None)
        RUNTIME.expectations.forget(key)
        RUNTIME.refusals.pop(key, None)
        RUNTIME.expansion_refused.pop(key, None)


async def _caught_up(ref: StoreRef, cache: WatchCache) -> bool:
    """Whether the cache shows every write the store made (so planning now cannot redo one)."""
    waiting, expired = RUNTIME.expectations.unmet(
        (ref.namespace, ref.name), lambda kind, name: cache.find(kind, ref.namespace, name), time.monotonic()
    )
    for item in expired:
        log.warning("%s/%s: %s never showed in the watch; planning anyway", ref.namespace, ref.name, item.why)
    return not waiting


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
    actor, _ = RUNTIME.ready()
    cache = await cache_synced()
    ref = StoreRef(name, namespace or "", uid)
    spec, _invalid = parse({"spec": dict(body.spec)}, name)
    policy = spec.deletion_policy if spec else DeletionPolicy.RETAIN
    observed = observe_store(ref, {"metadata": dict(body.metadata), "status": dict(body.status)}, cache)
    actions, done = plan_deletion(policy, observed)
    outcomes = await RUNTIME.io(actor.finalize, ref, spec, actions)
    report(body, outcomes)
    if not done or any(o.error for o in outcomes):
        raise kopf.TemporaryError("waiting for final snapshots or retrying failed deletions", delay=2)
    metrics.forget_store(ref.namespace, name)


# ------------------------------------------------------------------------------------------------
# Running


def run() -> None:
    """Run the operator (``python -m phalanx``): Kopf, standalone, on the namespaces the settings name."""
    config = Settings.from_env()
    kopf.configure(log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL)
    # Kopf logs every successful event handler at INFO: the wake-ups would drown Phalanx's own lines.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz" if config.liveness_port else None,
    )
