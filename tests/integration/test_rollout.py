"""Rolling replacement on the real control plane. A watch records every pod transition of a store
during its rollout, and the replay fails on the first moment the budget was broken
(``tests.watching.budget_breaches``): members out in two zones, more than maxUnavailablePerZone out
in one, or no majority serving."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from phalanx import kube as k
from phalanx import names
from phalanx.kube import Kube, Obj
from phalanx_sandbox import SimulatorHandle, wait_for
from tests.conftest import Operator
from tests.integration.test_operator import condition, member_claims, member_pods, passes, store, wait_ready
from tests.watching import Watcher, budget_breaches

pytestmark = pytest.mark.cluster

GATE = {"healthGate": {"minReadySeconds": 1, "consecutiveChecks": 2}, "progressDeadline": "20s"}


def rolling_store(name: str, replicas: int, strategy: str = "InPlace", **spec: Any) -> Obj:
    updates = {**GATE, "strategy": strategy, "canary": 1, **spec.pop("updates", {})}
    return store(name, replicas=replicas, updates=updates, **spec)


def bump(kube: Kube, namespace: str, name: str, value: str) -> None:
    """A template change: every member is due for the new revision."""
    body = kube.get(k.STORES, name, namespace)
    container = body["spec"]["template"]["spec"]["containers"][0]
    env = [e for e in container.get("env") or [] if e["name"] != "STORE_VERSION"] + [
        {"name": "STORE_VERSION", "value": value}
    ]
    containers = [{**container, "env": env}, *body["spec"]["template"]["spec"]["containers"][1:]]
    kube.patch(k.STORES, name, {"spec": {"template": {"spec": {"containers": containers}}}}, namespace)


def rolled_out(kube: Kube, namespace: str, name: str, replicas: int) -> Obj | None:
    """The store once every member runs the update revision, the rollout is over and it is Ready."""
    obj = kube.get(k.STORES, name, namespace)
    status = obj.get("status") or {}
    done = (
        status.get("observedGeneration") == obj["metadata"].get("generation")  # the change was seen
        and status.get("updatedReplicas") == replicas
        and status.get("replicas") == replicas
        and not status.get("rollout")
        and condition(obj, "Ready").get("status") == "True"
    )
    return obj if done else None


def pod_uids(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in member_pods(kube, namespace, name)}


@pytest.fixture
def watch_pods(kube: Kube, namespace: str) -> Iterator[list[Watcher]]:
    started: list[Watcher] = []
    yield started
    for watcher in started:
        if watcher.thread.is_alive():
            watcher.stop()


def start_watch(kube: Kube, namespace: str, name: str, watchers: list[Watcher]) -> Watcher:
    watcher = Watcher(kube, k.PODS, namespace, selector=f"{names.STORE_LABEL}={name}", limit=300)
    watchers.append(watcher)
    return watcher


@pytest.mark.parametrize(("replicas", "strategy"), [(6, "InPlace"), (9, "Replace")])
def test_a_template_change_rolls_out_zone_by_zone_within_the_budget(
    operator: Operator, kube: Kube, namespace: str, watch_pods: list[Watcher], replicas: int, strategy: str
) -> None:
    kube.create(k.STORES, rolling_store("roll", replicas, strategy), namespace)
    wait_ready(kube, namespace, "roll", replicas)
    before_claims = {c["metadata"]["name"]: c["metadata"]["uid"] for c in member_claims(kube, namespace, "roll")}
    old_revision = kube.get(k.STORES, "roll", namespace)["status"]["updateRevision"]
    watcher = start_watch(kube, namespace, "roll", watch_pods)
    bump(kube, namespace, "roll", "2")
    wait_for(lambda: rolled_out(kube, namespace, "roll", replicas), "the rollout done", timeout=240, interval=0.5)
    events = watcher.stop()
    assert budget_breaches(watcher.initial, events, replicas, per_zone=1) == []
    status = kube.get(k.STORES, "roll", namespace)["status"]
    assert status["updateRevision"] != old_revision and status["currentRevision"] == status["updateRevision"]
    # Zones one at a time, in order: the first new-revision pod of each zone comes after the last of the one before.
    first_new: dict[str, int] = {}
    for index, (_, pod) in enumerate(events):
        labels = pod["metadata"].get("labels") or {}
        if labels.get(names.REVISION_LABEL) == status["updateRevision"]:
            first_new.setdefault(labels[names.ZONE_LABEL], index)
    assert list(first_new) == sorted(first_new), f"zones updated out of order: {first_new}"
    metrics = operator.metrics()
    steps = f'phalanx_rollout_steps_total{{namespace="{namespace}",store="roll",strategy="{strategy}"}}'
    assert metrics.get(steps) == replicas, "a canary, then one member a step (maxUnavailablePerZone 1)"
    assert metrics.get(f'phalanx_rollout_members{{namespace="{namespace}",progress="total",store="roll"}}') == 0
    assert metrics.get(f'phalanx_rollout_step_duration_seconds_count{{strategy="{strategy}"}}', 0) >= replicas
    claims = {c["metadata"]["name"]: c for c in member_claims(kube, namespace, "roll")}
    if strategy == "InPlace":  # the same volumes: no data moved
        assert {n: c["metadata"]["uid"] for n, c in claims.items()} == before_claims
    else:
        replacing = Counter(
            (c["metadata"].get("annotations") or {}).get(names.REPLACES_ANNOTATION)
            for c in claims.values()
            if (c["metadata"].get("labels") or {}).get(names.RETIRED_LABEL) != "true"
        )
        assert replacing == Counter(dict.fromkeys(before_claims, 1)), "each member replaced exactly once"


def test_a_canary_that_never_serves_halts_everything_else_untouched_and_a_revert_recovers(
    operator: Operator, kube: Kube, namespace: str, watch_pods: list[Watcher]
) -> None:
    kube.create(k.STORES, rolling_store("canary", 6), namespace)
    wait_ready(kube, namespace, "canary", 6)
    good = kube.get(k.STORES, "canary", namespace)["spec"]["template"]
    before = pod_uids(kube, namespace, "canary")
    watcher = start_watch(kube, namespace, "canary", watch_pods)
    broken = {**good, "metadata": {"annotations": {"sim.phalanx.dev/crash": "loop"}}}  # never Ready
    kube.patch(k.STORES, "canary", {"spec": {"template": broken}}, namespace)

    def halted() -> Obj | None:
        obj = kube.get(k.STORES, "canary", namespace)
        stalled = condition(obj, "Stalled")
        return obj if stalled.get("status") == "True" and stalled.get("reason") == "RolloutHalted" else None

    obj = wait_for(halted, "the rollout halted", timeout=90)
    message = condition(obj, "Stalled")["message"]
    assert "canary-1" in message and "progressDeadline" in message
    passes(operator, kube, namespace, "canary")
    after = pod_uids(kube, namespace, "canary")
    assert {n for n in before if after.get(n) != before[n]} == {"canary-1"}, "only the canary was touched"
    warnings = [e for e in kube.items(k.EVENTS, namespace) if e.get("reason") == "RolloutHalted"]
    assert warnings, "a RolloutHalted Event"
    assert operator.metrics().get(f'phalanx_rollout_halts_total{{namespace="{namespace}",store="canary"}}') == 1
    kube.patch(k.STORES, "canary", {"spec": {"template": {**good, "metadata": {"annotations": None}}}}, namespace)
    wait_for(lambda: rolled_out(kube, namespace, "canary", 6), "the revert rolled out", timeout=120, interval=0.5)
    events = watcher.stop()
    assert budget_breaches(watcher.initial, events, 6, per_zone=1) == []
    assert condition(kube.get(k.STORES, "canary", namespace), "Stalled")["status"] == "False"


def test_a_paused_rollout_shows_its_plan_and_takes_no_step_until_resumed(
    operator: Operator, kube: Kube, namespace: str
) -> None:
    kube.create(k.STORES, rolling_store("paused", 6), namespace)
    wait_ready(kube, namespace, "paused", 6)
    kube.patch(k.STORES, "paused", {"metadata": {"annotations": {names.ROLLOUT_PAUSED_ANNOTATION: "true"}}}, namespace)
    before = pod_uids(kube, namespace, "paused")
    bump(kube, namespace, "paused", "2")

    def planned() -> Obj | None:
        rollout = (kube.get(k.STORES, "paused", namespace).get("status") or {}).get("rollout") or {}
        return rollout if rollout.get("paused") and len(rollout.get("steps") or []) == 6 else None

    rollout = wait_for(planned, "the paused rollout's plan in status", timeout=30)
    assert rollout["steps"][0].startswith("zone-a (canary): ")
    passes(operator, kube, namespace, "paused")
    assert pod_uids(kube, namespace, "paused") == before, "no step while paused"
    assert condition(kube.get(k.STORES, "paused", namespace), "Reconciling")["reason"] == "RolloutPaused"
    kube.patch(k.STORES, "paused", {"metadata": {"annotations": {names.ROLLOUT_PAUSED_ANNOTATION: None}}}, namespace)
    wait_for(lambda: rolled_out(kube, namespace, "paused", 6), "the resumed rollout done", timeout=180, interval=0.5)


@pytest.mark.parametrize(
    ("strategy", "crash_after"), [("InPlace", "DeletePod"), ("Replace", "CreateMember"), ("Replace", "RetireMember")]
)
def test_killed_after_a_step_the_operator_goes_on_and_updates_no_member_twice(
    operator: Operator, kube: Kube, namespace: str, strategy: str, crash_after: str
) -> None:
    kube.create(k.STORES, rolling_store("crash", 3, strategy), namespace)
    wait_ready(kube, namespace, "crash", 3)
    before = {c["metadata"]["name"] for c in member_claims(kube, namespace, "crash")}
    operator.stop()
    crashing = operator.start(PHALANX_TEST_CRASH_AFTER=crash_after)
    try:
        bump(kube, namespace, "crash", "2")
        wait_for(lambda: not crashing.alive(), f"the operator to die after {crash_after}", timeout=90)
    finally:
        operator.stop()
        operator.start()
    wait_for(lambda: rolled_out(kube, namespace, "crash", 3), "the rollout done after the restart", timeout=180)
    claims = member_claims(kube, namespace, "crash")
    if strategy == "InPlace":
        assert {c["metadata"]["name"] for c in claims} == before
    else:
        replaced = Counter((c["metadata"].get("annotations") or {}).get(names.REPLACES_ANNOTATION) for c in claims)
        replaced.pop(None, None)
        assert replaced == Counter(dict.fromkeys(before, 1)), f"a member replaced twice or not at all: {replaced}"


def test_a_member_lost_mid_rollout_is_rebuilt_at_the_new_revision_and_scaling_joins_in(
    operator: Operator, kube: Kube, namespace: str, sim: SimulatorHandle
) -> None:
    kube.create(
        k.STORES,
        rolling_store("mixed", 6, updates={"healthGate": {"minReadySeconds": 3, "consecutiveChecks": 2}}),
        namespace,
    )
    wait_ready(kube, namespace, "mixed", 6)
    bump(kube, namespace, "mixed", "2")
    wait_for(
        lambda: ((kube.get(k.STORES, "mixed", namespace).get("status") or {}).get("rollout") or {}).get("inFlight"),
        "the first step in flight",
    )
    sim.lose_volume(namespace, "mixed-6")  # zone-c, not updated yet
    kube.patch(k.STORES, "mixed", {"spec": {"replicas": 7}}, namespace)
    wait_for(lambda: rolled_out(kube, namespace, "mixed", 7), "the rollout done, 7 members", timeout=240, interval=0.5)
    status = kube.get(k.STORES, "mixed", namespace)["status"]
    assert status["lastRecovery"]["member"] == "mixed-6"
    assert all(m["revision"] == status["updateRevision"] for m in status["members"])


def test_an_on_demand_replacement_of_a_zone_replaces_its_members_once(
    operator: Operator, kube: Kube, namespace: str, watch_pods: list[Watcher]
) -> None:
    kube.create(k.STORES, rolling_store("rotate", 6), namespace)
    wait_ready(kube, namespace, "rotate", 6)
    zone_b = sorted(c["metadata"]["name"] for c in member_claims(kube, namespace, "rotate")
                    if c["metadata"]["labels"][names.ZONE_LABEL] == "zone-b")  # fmt: skip
    watcher = start_watch(kube, namespace, "rotate", watch_pods)
    kube.patch(k.STORES, "rotate", {"metadata": {"annotations": {names.REPLACE_ANNOTATION: "zone/zone-b"}}}, namespace)

    def replaced() -> bool:
        status = kube.get(k.STORES, "rotate", namespace).get("status") or {}
        live = {m["name"] for m in status.get("members") or []}
        request = status.get("replaceRequest") or {}
        return (
            request.get("request") == "zone/zone-b"
            and not request.get("members")
            and not live & set(zone_b)
            and len(live) == 6
            and status.get("readyReplicas") == 6
        )

    wait_for(replaced, "zone-b's members replaced", timeout=180, interval=0.5)
    events = watcher.stop()
    assert budget_breaches(watcher.initial, events, 6, per_zone=1) == []
    claims = member_claims(kube, namespace, "rotate")
    replacing = Counter((c["metadata"].get("annotations") or {}).get(names.REPLACES_ANNOTATION) for c in claims)
    replacing.pop(None, None)
    assert replacing == Counter(dict.fromkeys(zone_b, 1))
    passes(operator, kube, namespace, "rotate")  # the same value is answered once
    assert len(member_claims(kube, namespace, "rotate")) == len(claims)
