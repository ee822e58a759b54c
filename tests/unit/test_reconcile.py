"""The pass without Kopf: a fake cache, a fake writer, an event list and a fixed clock.

What a pass must do in order: write status before acting (it records the serials about to be used),
record what act made, expect it in the cache, post one Event per action, plan on its own unechoed
status write, write nothing on a steady store, and stall a store whose writes are refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from phalanx import metrics
from phalanx.act import Outcome, Provenance, status_patch
from phalanx.build import template_revision
from phalanx.cache import StoreKey
from phalanx.models import ReplicatedStoreSpec
from phalanx.names import StoreRef
from phalanx.observe import NodeView
from phalanx.plan import CreateMember, Plan
from phalanx.reconcile import Memory, Pass
from tests.unit.test_plan import NOW, ZONES
from tests.unit.world import START, STORE, World, claim, drill_claim, make_ready, node, pod

Obj = dict[str, Any]


class FakeCache:
    """What a pass reads of the watch cache: the store's objects by kind, and the nodes."""

    def __init__(self) -> None:
        self.objects: dict[str, list[Obj]] = {
            "pods": [],
            "drills": [],
            "claims": [],
            "snapshots": [],
            "services": [],
            "budgets": [],
        }

    def of_store(self, kind: str, store: StoreKey) -> list[Obj]:
        return list(self.objects[kind])

    def nodes(self) -> tuple[NodeView, ...]:
        return tuple(NodeView.of(node(f"node-{z}-0", z)) for z in ZONES)

    def child_objects(self, store: StoreKey) -> list[Obj]:
        return self.objects["services"] + self.objects["budgets"]

    def find(self, kind: str, namespace: str, name: str) -> Obj | None:
        return next((o for o in self.objects.get(kind, []) if o["metadata"]["name"] == name), None)

    def volume(self, name: str | None) -> Obj | None:
        return None


class FakeActor:
    """Records writes; creates what the plan asks (recording each claim as act does) or refuses."""

    def __init__(self, refuse: bool = False, refuse_pods: bool = False) -> None:
        self.calls: list[str] = []
        self.refuse = refuse
        self.refuse_pods = refuse_pods

    def write_status(self, store: StoreRef, current: Obj, new: Obj) -> bool:
        if status_patch(current, new) is None:
            return False
        self.calls.append("status")
        return True

    def write_owned(self, store: StoreRef, owned: Obj) -> None:
        self.calls.append("owned")

    def execute(
        self, store: StoreRef, spec: ReplicatedStoreSpec, plan: Plan, revision: str, provenance: Provenance
    ) -> list[Outcome]:
        outcomes = []
        for action in plan.actions:
            self.calls.append(type(action).__name__)
            if self.refuse:
                outcomes.append(Outcome(action, "422 Invalid: quantities must match", 422))
                continue
            if isinstance(action, CreateMember):
                provenance.add(provenance.claims, action.member, f"pvc-{action.member}")
                if self.refuse_pods:  # the claim is made and recorded; its pod is refused
                    outcomes.append(Outcome(action, "403 Forbidden: exceeded quota", 403))
                    continue
            outcomes.append(Outcome(action))
        return outcomes


class Sink:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str]] = []

    def info(self, reason: str, message: str) -> None:
        self.posted.append(("info", reason))

    def warn(self, reason: str, message: str) -> None:
        self.posted.append(("warn", reason))


async def direct(call: Callable[..., Any], *args: Any) -> Any:
    return call(*args)


def store_body(status: Obj | None = None, version: str = "1", **spec: Any) -> Obj:
    body_spec = {
        "replicas": 3,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "store",
                        "image": "example/store:1.0",
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ]
            }
        },
        "storage": {"size": "1Gi"},
        **spec,
    }
    meta = {"name": STORE.name, "namespace": STORE.namespace, "uid": STORE.uid, "generation": 1}
    return {"metadata": {**meta, "resourceVersion": version}, "spec": body_spec, "status": status or {}}


def run(passes: Pass, body: Obj, memory: Memory, sink: Sink) -> tuple[Plan, int]:
    return asyncio.run(passes.run(STORE, body, memory, sink))


def new_pass(actor: FakeActor, cache: FakeCache) -> Pass:
    return Pass(actor, cache, direct, clock=lambda: NOW, monotonic=lambda: 0.0)  # type: ignore[arg-type]


def kinds(actions: Iterable[Any]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_a_new_store_gets_status_before_anything_is_made_then_records_expects_and_reports() -> None:
    actor, cache, sink, memory = FakeActor(), FakeCache(), Sink(), Memory()
    passes = new_pass(actor, cache)
    decided, failed = run(passes, store_body(), memory, sink)
    assert failed == 0
    assert actor.calls[0] == "status" and decided.status.last_serial == 3
    assert actor.calls.count("CreateMember") == 3 and actor.calls.count("owned") == 3
    assert memory.written is not None and [c["name"] for c in memory.written["owned"]["claims"]] == [
        "orders-1",
        "orders-2",
        "orders-3",
    ]
    assert sink.posted.count(("info", "MemberCreated")) == 3
    waiting, _ = passes.expectations.unmet((STORE.namespace, STORE.name), lambda kind, name: None, 1.0)
    assert {(e.kind, e.name) for e in waiting} >= {("claims", "orders-1"), ("pods", "orders-3")}
    assert decided.status.conditions[0].last_transition_time == NOW


def test_a_pass_on_its_own_unechoed_status_and_the_world_it_made_does_nothing() -> None:
    actor, cache, sink, memory = FakeActor(), FakeCache(), Sink(), Memory()
    passes = new_pass(actor, cache)
    run(passes, store_body(), memory, sink)
    for n, zone in enumerate(ZONES, start=1):  # the cache shows what the first pass made, ready
        cache.objects["claims"].append(claim(f"orders-{n}", zone, uid=f"pvc-orders-{n}"))
        made = pod(f"orders-{n}", zone, node_name=f"node-{zone}-0", revision=revision_of(store_body()))
        cache.objects["pods"].append(made)
    cache.objects["pods"] = make_ready_pods(cache.objects["pods"])
    cache.objects["services"] = [child(c) for c in ("peers-service/orders-peers", "client-service/orders")]
    cache.objects["budgets"] = [child("disruption-budget/orders")]
    actor.calls.clear()
    second, _ = run(passes, store_body(), memory, sink)  # same resourceVersion: the write is not echoed yet
    assert kinds(second.actions) == [] and "CreateMember" not in actor.calls
    assert second.status.last_serial == 3


def revision_of(body: Obj) -> str:
    """The template revision act labels the body's pods with."""
    return template_revision(ReplicatedStoreSpec.model_validate(body["spec"]))


def make_ready_pods(pods: list[Obj]) -> list[Obj]:
    return list(make_ready(replace(World(), pods=tuple(pods))).pods)


def child(key: str) -> Obj:
    _, _, name = key.partition("/")
    return {
        "metadata": {"name": name, "ownerReferences": [{"uid": STORE.uid, "controller": True}]},
        "child": key,
    }


def test_writes_refused_pass_after_pass_stall_the_store_with_the_servers_words() -> None:
    actor, cache, sink, memory = FakeActor(refuse=True), FakeCache(), Sink(), Memory()
    passes = new_pass(actor, cache)
    for version in ("1", "2"):
        _, failed = run(passes, store_body(version=version), memory, sink)
        assert failed > 0
    third, _ = run(passes, store_body(version="3"), memory, sink)
    stalled = next(c for c in third.status.conditions if c.type == "Stalled")
    assert (stalled.status.value, stalled.reason) == ("True", "Refused")
    assert "quantities must match" in stalled.message
    assert ("warn", "MemberCreatedFailed") in sink.posted


def test_a_store_being_deleted_gets_nothing_written() -> None:
    actor, cache, sink = FakeActor(), FakeCache(), Sink()
    body = store_body()
    body["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    decided, _ = run(new_pass(actor, cache), body, Memory(), sink)
    assert decided.actions == () and actor.calls == [] and sink.posted == []  # the finalizer's now


def test_a_claim_made_by_an_action_that_failed_later_is_still_expected() -> None:
    """Its pod refused (a quota), the claim exists and is on record: the store must see it before it
    plans again, or it would take it for missing and make another member."""
    actor, cache, sink, memory = FakeActor(refuse_pods=True), FakeCache(), Sink(), Memory()
    passes = new_pass(actor, cache)
    run(passes, store_body(), memory, sink)
    waiting, _ = passes.expectations.unmet((STORE.namespace, STORE.name), lambda kind, name: None, 1.0)
    assert {("claims", f"orders-{n}") for n in (1, 2, 3)} <= {(e.kind, e.name) for e in waiting}


def test_a_pass_plans_on_what_it_wrote_until_the_watch_brings_all_of_it_back() -> None:
    """A pass writes twice (status, then the record of what act made): a body that shows the first
    write but not the second is not yet the truth."""
    actor, cache, sink, memory = FakeActor(), FakeCache(), Sink(), Memory()
    passes = new_pass(actor, cache)
    first, _ = run(passes, store_body(), memory, sink)
    assert memory.written is not None and memory.written["owned"]["claims"]
    halfway = first.status.to_wire()  # the status write came back (a new version), the record not yet
    for n, zone in enumerate(ZONES, start=1):  # what the first pass made, in the cache
        cache.objects["claims"].append(claim(f"orders-{n}", zone, uid=f"pvc-orders-{n}"))
        cache.objects["pods"].append(pod(f"orders-{n}", zone, node_name=f"node-{zone}-0"))
    actor.calls.clear()
    second, _ = run(passes, store_body(halfway, version="2"), memory, sink)
    assert "CreateMember" not in actor.calls  # its own claims, not strangers' to work around
    assert second.status.owned is not None and len(second.status.owned.claims) == 3
    assert ("warn", "ForeignObject") not in sink.posted


def test_a_store_with_nothing_to_ask_is_no_longer_stalled_by_old_refusals() -> None:
    actor, cache, sink, memory = FakeActor(refuse=True), FakeCache(), Sink(), Memory()
    passes = new_pass(actor, cache)
    for version in ("1", "2"):
        run(passes, store_body(version=version), memory, sink)
    assert memory.refusals is not None and memory.refusals[0] == 2
    run(passes, store_body(version="3", paused=True), memory, sink)  # nothing asked of the server
    assert memory.refusals is None


def test_a_drill_verdict_is_announced_and_counted_once() -> None:
    drill = "orders-drill-20250101-005900"
    snapshots = {"interval": "1h", "drill": {"interval": "24h"}}
    body = store_body(snapshots=snapshots)
    cache = FakeCache()
    for n, zone in enumerate(ZONES, start=1):
        cache.objects["claims"].append(claim(f"orders-{n}", zone, uid=f"pvc-orders-{n}"))
        cache.objects["pods"].append(pod(f"orders-{n}", zone, node_name=f"node-{zone}-0", revision=revision_of(body)))
    cache.objects["pods"] = make_ready_pods(cache.objects["pods"])
    cache.objects["claims"].append(drill_claim(drill, "zone-a", "orders-snap", phase="Bound", created=START - 20))
    owned = [{"name": c["metadata"]["name"], "uid": c["metadata"]["uid"]} for c in cache.objects["claims"]]
    status = {"lastSerial": 3, "owned": {"claims": owned, "snapshots": []}}
    actor, sink, memory = FakeActor(), Sink(), Memory()
    passes = new_pass(actor, cache)
    counted = metrics.DRILLS.labels(STORE.namespace, STORE.name, "Succeeded")
    before = counted._value.get()
    decided, _ = run(passes, store_body(status, snapshots=snapshots), memory, sink)
    assert decided.status.last_drill is not None and decided.status.last_drill.name == drill
    assert ("info", "DrillSucceeded") in sink.posted and "DeleteDrill" in actor.calls
    assert counted._value.get() == before + 1
    success = metrics.LAST_DRILL_SUCCESS.labels(STORE.namespace, STORE.name)._value.get()
    assert success == NOW.timestamp()
    sink.posted.clear()
    assert memory.written is not None
    again, _ = run(passes, store_body(memory.written, "2", snapshots=snapshots), memory, sink)
    assert ("info", "DrillSucceeded") not in sink.posted and counted._value.get() == before + 1
    assert again.status.last_drill == decided.status.last_drill
