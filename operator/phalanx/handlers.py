"""Handlers: the only module that imports Kopf. It wires Kopf to the pass (``reconcile``).

- **The watch cache** (``cache``) keeps every pod, PVC, VolumeSnapshot, Service, PodDisruptionBudget
  and PersistentVolume of Phalanx's, and all nodes, in memory: observing a store costs no API call.
  Its changes wake the stores they concern at once, so a deleted pod is replaced within a second
  instead of at the next timer.
- **One daemon per store** runs the loop: a pass (observe, plan, write status, act; ``reconcile``),
  then sleep until the plan's requeue time or until something of the store changes. It does not plan
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
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import kopf

from phalanx import kube as k
from phalanx import metrics, names, probes
from phalanx.act import Actor
from phalanx.cache import StoreKey, WatchCache
from phalanx.leader import Leadership
from phalanx.models import (
    GROUP,
    PLURAL,
    VERSION,
    DeletionPolicy,
)
from phalanx.names import StoreRef
from phalanx.plan import plan_deletion
from phalanx.reconcile import Memory, Pass, observe_store, parse, report
from phalanx.settings import Settings

log = logging.getLogger("phalanx")
T = TypeVar("T")

WATCH_DELAY = float(os.environ.get("PHALANX_TEST_WATCH_DELAY", "0") or 0)
"""Test-only: seconds by which the cache receives every pod and PVC watch event late, so that the
tests can prove that a lagging watch never makes a store create twice. Unset in production."""


class Runtime:
    """Process-wide state: the writer, the watch cache, the pass, per-store wake-ups and memories.

    ``wake`` is only called on the event loop; the cache's threads hand over with
    ``call_soon_threadsafe`` (``asyncio.Event.set`` is not thread-safe)."""

    def __init__(self) -> None:
        self.actor: Actor | None = None
        self.cache: WatchCache | None = None
        self.passes: Pass | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wakeups: dict[StoreKey, asyncio.Event] = {}
        self.memories: dict[StoreKey, Memory] = {}
        self.guard: k.WriteGuard | None = None
        """Leader election's fence, asked before every write (None: no election)."""
        self.beat: float | None = None
        """When the event loop last answered (liveness)."""

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

    def ready(self) -> tuple[Actor, WatchCache, Pass]:
        assert self.actor is not None and self.cache is not None and self.passes is not None, "startup did not run"
        return self.actor, self.cache, self.passes


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
    RUNTIME.actor = actor = await RUNTIME.io(Actor.connect, config.api_threads, RUNTIME.guard)
    # per namespace: pods, claims, snapshots, services, budgets; then nodes, volumes and node Leases
    watches = 5 * max(1, len(config.namespaces)) + 3
    watcher = k.Kube(k.load_default_client(connections=watches + 1))  # every watch holds a connection
    RUNTIME.cache = WatchCache(
        watcher,
        actor.pdb,
        config.namespaces,
        RUNTIME.wake_from_thread,
        delay=WATCH_DELAY,
        heartbeats=config.node_heartbeats,
    )
    RUNTIME.cache.start()
    RUNTIME.passes = Pass(actor, RUNTIME.cache, RUNTIME.io, rates=config.rates)
    asyncio.get_running_loop().create_task(heartbeat())
    log.info("phalanx started: namespaces=%s metrics=:%s", config.namespaces or "all", config.metrics_port)


async def heartbeat() -> None:
    """The loop answers: /healthz reads this."""
    while True:
        RUNTIME.beat = time.monotonic()
        await asyncio.sleep(1.0)


@kopf.on.cleanup()
async def shut_down(**_: Any) -> None:
    if RUNTIME.cache is not None:
        RUNTIME.cache.stop()


async def cache_synced(stopped: kopf.DaemonStopped | None = None) -> WatchCache:
    """The cache, once every watched kind has been listed: planning on a half-filled cache would
    take present members for missing ones."""
    _, cache, _ = RUNTIME.ready()
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


class KopfEvents:
    """The pass's event sink: Kubernetes Events on the store, posted by Kopf."""

    def __init__(self, body: kopf.Body) -> None:
        self.body = body

    def info(self, reason: str, message: str) -> None:
        kopf.info(self.body, reason=reason, message=message)

    def warn(self, reason: str, message: str) -> None:
        kopf.warn(self.body, reason=reason, message=message)


def body_of(body: kopf.Body) -> dict[str, Any]:
    return {"metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}


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
    _, _, passes = RUNTIME.ready()
    memory = RUNTIME.memories.setdefault(key, Memory())
    events = KopfEvents(body)
    failing = 0  # consecutive passes with failed writes: back off (quota, admission, RBAC ...)
    try:
        while not stopped:
            wake.clear()
            if not await _caught_up(ref, cache):  # our own last writes are not in the cache yet
                await _sleep(wake, stopped, 1.0)
                continue
            started = time.monotonic()
            try:
                last, failed = await passes.run(ref, body_of(body), memory, events)
                metrics.of(metrics.RECONCILES, ref.namespace, name, "ok").inc()
                failing = failing + 1 if failed else 0
                delay = min(5.0 * 2 ** (failing - 1), 300.0) if failing else last.requeue_after
            except Exception:
                log.exception("reconcile of %s/%s failed", namespace, name)
                metrics.of(metrics.RECONCILES, ref.namespace, name, "error").inc()
                failing += 1  # a store whose passes keep failing backs off: it never crowds the others out
                delay = min(5.0 * 2 ** (failing - 1), 300.0)
            finally:
                metrics.of(metrics.RECONCILE_SECONDS, ref.namespace, name).observe(time.monotonic() - started)
            await _sleep(wake, stopped, delay)
    finally:
        RUNTIME.wakeups.pop(key, None)
        RUNTIME.memories.pop(key, None)
        if not body.metadata.get("deletionTimestamp"):  # the finalizer still waits on them
            passes.expectations.forget(key)
        metrics.forget_store(ref.namespace, name)  # after the loop's last sample, not before it


async def _caught_up(ref: StoreRef, cache: WatchCache) -> bool:
    """Whether the cache shows every write the store made (so planning now cannot redo one)."""
    waiting, expired = RUNTIME.ready()[2].expectations.unmet(
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
    actor, _, passes = RUNTIME.ready()
    cache = await cache_synced()
    ref = StoreRef(name, namespace or "", uid)
    spec, _invalid = parse({"spec": dict(body.spec)}, name)
    policy = spec.deletion_policy if spec else DeletionPolicy.RETAIN
    if not await _caught_up(ref, cache):  # a claim made in the store's last pass must be seen first
        raise kopf.TemporaryError("waiting for the watch to show the store's last writes", delay=1)
    observed = observe_store(ref, body_of(body), cache)
    actions, done = plan_deletion(policy, observed)
    outcomes = await RUNTIME.io(actor.finalize, ref, spec, actions)
    report(KopfEvents(body), outcomes)
    if not done or any(o.error for o in outcomes):
        raise kopf.TemporaryError("waiting for final snapshots or retrying failed deletions", delay=2)
    passes.expectations.forget((ref.namespace, name))
    metrics.forget_store(ref.namespace, name)


# ------------------------------------------------------------------------------------------------
# Running


def run() -> None:
    """Run the operator (``python -m phalanx``): probes and metrics at once; then, with leader
    election (the default), stand by until this process holds the lease and only then run Kopf."""
    config = Settings.from_env()
    kopf.configure(log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL)
    # Kopf logs every successful event handler at INFO: the wake-ups would drown Phalanx's own lines.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    if config.election is None:
        if config.liveness_port:
            probes.serve(config.liveness_port, lambda: "leader", alive)
        metrics.LEADER.set(1)
        operate(config)
        return
    leadership = Leadership(config.election, k.load_default_client(4))
    RUNTIME.guard = leadership.may_act
    leadership.on_change = lambda leading: announce(leadership, leading)
    leadership.install_signal_handlers()
    if config.liveness_port:
        probes.serve(config.liveness_port, lambda: "leader" if leadership.may_act() else "standby", alive)
    metrics.LEADER.set(0)
    leadership.run(lambda: operate(config))


def operate(config: Settings) -> None:
    """Kopf, standalone, on the namespaces the settings name (in whatever thread leads)."""
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not config.namespaces,
            namespaces=config.namespaces,
        )
    )


def alive() -> bool:
    """Alive unless the operator's loop, once started, has not answered for 30 s."""
    return RUNTIME.beat is None or time.monotonic() - RUNTIME.beat < 30


def announce(leadership: Leadership, leading: bool) -> None:
    """Which pod leads, in the gauge, a log line (leader.py) and an Event on the Lease."""
    metrics.LEADER.set(1 if leading else 0)
    if not leading:
        return
    settings = leadership.settings
    event = {
        "metadata": {"generateName": f"{settings.name}-", "namespace": settings.namespace},
        "involvedObject": {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "name": settings.name,
            "namespace": settings.namespace,
        },
        "reason": "LeaderElected",
        "message": f"{leadership.identity} leads Phalanx",
        "type": "Normal",
        "source": {"component": "phalanx"},
    }
    try:
        k.Kube(k.load_default_client(1)).create(k.EVENTS, event, settings.namespace)
    except Exception:  # an Event is news, not duty
        log.warning("could not post the LeaderElected Event", exc_info=True)
