"""A store's metric series are found by its own labels: dropped when states change or the store goes,
and never by scanning other stores' series."""

from __future__ import annotations

from dataclasses import replace

from phalanx import metrics, reconcile
from phalanx.names import StoreRef
from phalanx.plan import plan
from phalanx.settings import Settings
from tests.unit.world import claim, empty_world, observed, store_spec, with_members


def series(name: str) -> set[tuple[str, ...]]:
    return {
        tuple(sample.labels.values())
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
        if sample.name == name
    }


def test_member_series_of_states_left_are_dropped_and_other_stores_keep_theirs() -> None:
    metrics.of(metrics.MEMBERS, "m1", "a", "zone-a", "Ready").set(2)
    metrics.of(metrics.MEMBERS, "m1", "a", "zone-a", "Starting").set(1)
    metrics.of(metrics.MEMBERS, "m1", "b", "zone-a", "Starting").set(1)
    metrics.drop(metrics.MEMBERS, "m1", "a", keep={("zone-a", "Ready")})
    mine = {s for s in series("phalanx_members") if s[0] == "m1"}
    assert mine == {("m1", "a", "zone-a", "Ready"), ("m1", "b", "zone-a", "Starting")}


def test_a_deleted_store_leaves_no_series() -> None:
    metrics.of(metrics.READY, "m2", "gone").set(3)
    metrics.of(metrics.RECONCILES, "m2", "gone", "ok").inc()
    metrics.of(metrics.READY, "m2", "stays").set(1)
    metrics.forget_store("m2", "gone")
    assert {s for s in series("phalanx_store_ready_replicas") if s[0] == "m2"} == {("m2", "stays")}
    assert not any(s[:2] == ("m2", "gone") for s in series("phalanx_reconciles_total"))


def test_the_worker_setting_that_could_deadlock_is_gone_and_reported() -> None:
    settings = Settings.from_env({"PHALANX_WORKERS": "20", "PHALANX_API_THREADS": "8"})
    assert settings.retired == ("PHALANX_WORKERS",)
    assert settings.api_threads == 8
    assert Settings.from_env({}).retired == ()


def sample(name: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, {"namespace": "m3", "store": "orders"})


def test_retired_volumes_are_counted_with_their_bytes_and_zeroed_when_gone() -> None:
    spec = store_spec(1, retiredVolumes={"policy": "Retain"})
    world = with_members(empty_world(["zone-a"]), (1, "zone-a"))
    kept = claim("orders-2", "zone-a", retired=True)
    kept["spec"]["resources"] = {"requests": {"storage": "2Gi"}}
    with_kept = replace(world, claims=(*world.claims, kept))
    ref = StoreRef(name="orders", namespace="m3", uid="u")
    reconcile.record(ref, plan(spec, observed(with_kept), with_kept.now), 1, {}, with_kept.now)
    assert sample("phalanx_retired_volumes") == 1
    assert sample("phalanx_retired_volume_bytes") == 2 * 1024**3
    reconcile.record(ref, plan(spec, observed(world), world.now), 1, {}, world.now)
    assert sample("phalanx_retired_volumes") == 0


def test_rollout_news_reports_a_halt_a_step_and_the_end_once() -> None:
    from phalanx.models import RolloutStatus, UpdateStrategy
    from phalanx.plan import Plan
    from tests.unit.test_plan import NOW

    def with_rollout(rollout: RolloutStatus | None) -> Plan:
        status = plan(store_spec(1), observed(empty_world(["zone-a"])), NOW).status
        return Plan((), status.model_copy(update={"rollout": rollout}), 1.0)

    started = RolloutStatus(
        revision="r2", strategy=UpdateStrategy.IN_PLACE, step_started_at=NOW, in_flight=["orders-1"]
    )
    said, duration, began = reconcile.rollout_news({}, with_rollout(started), NOW)
    assert (said, duration, began) == ([], None, "InPlace")
    halted = started.model_copy(update={"halted": "orders-1: Ready"})
    said, _, began = reconcile.rollout_news({"rollout": started.to_wire()}, with_rollout(halted), NOW)
    assert said == [(True, "RolloutHalted", "orders-1: Ready")] and began is None
    said, _, _ = reconcile.rollout_news({"rollout": halted.to_wire()}, with_rollout(halted), NOW)
    assert said == [], "once"
    done = started.model_copy(update={"in_flight": []})
    later = NOW.replace(minute=NOW.minute + 1)
    _, duration, _ = reconcile.rollout_news({"rollout": started.to_wire()}, with_rollout(done), later)
    assert duration == 60.0
    said, _, _ = reconcile.rollout_news({"rollout": done.to_wire()}, with_rollout(None), later)
    assert said == [(False, "RolloutCompleted", "every member runs revision r2")]


def test_a_condition_is_1_when_true_0_when_false_and_no_series_when_unknown_or_gone() -> None:
    from phalanx.models import ConditionStatus
    from phalanx.plan import Plan

    ref = StoreRef(name="orders", namespace="m4", uid="u")
    world = with_members(empty_world(["zone-a"]), (1, "zone-a"))
    decided = plan(store_spec(1), observed(world), world.now)
    reconcile.record(ref, decided, 1, {}, world.now)
    mine = {s[2] for s in series("phalanx_store_condition") if s[:2] == ("m4", "orders")}
    assert mine == {c.type for c in decided.status.conditions}

    def value(kind: str) -> float | None:
        labels = {"namespace": "m4", "store": "orders", "condition": kind}
        return metrics.REGISTRY.get_sample_value("phalanx_store_condition", labels)

    assert value("Stalled") == 0 and value("ZonesBalanced") == 1
    unknown = [
        c.model_copy(update={"status": ConditionStatus.UNKNOWN}) if c.type == "Ready" else c
        for c in decided.status.conditions
        if c.type != "Degraded"  # no longer reported (as for an invalid spec)
    ]
    reconcile.record(ref, Plan((), decided.status.model_copy(update={"conditions": unknown}), 1.0), 1, {}, world.now)
    assert value("Ready") is None, "Unknown is not False"
    assert value("Degraded") is None, "a condition no longer reported leaves no stale series"
    assert value("Stalled") == 0


def test_the_last_snapshots_time_is_a_timestamp_that_does_not_depend_on_the_pass() -> None:
    from datetime import timedelta

    from phalanx.models import SnapshotStatus
    from phalanx.plan import Plan
    from tests.unit.test_plan import NOW

    ref = StoreRef(name="orders", namespace="m5", uid="u")
    taken = NOW - timedelta(minutes=5)
    status = plan(store_spec(1), observed(empty_world(["zone-a"])), NOW).status
    with_snapshot = Plan((), status.model_copy(update={"snapshots": SnapshotStatus(latest_time=taken, count=1)}), 1.0)
    for later in (NOW, NOW + timedelta(hours=1)):
        reconcile.record(ref, with_snapshot, 1, {}, later)
        labels = {"namespace": "m5", "store": "orders"}
        assert metrics.REGISTRY.get_sample_value("phalanx_snapshot_last_success_timestamp_seconds", labels) == (
            taken.timestamp()
        )
        age = metrics.REGISTRY.get_sample_value("phalanx_snapshot_age_seconds", labels)
        assert age == (later - taken).total_seconds()


def test_build_info_and_the_process_metrics_are_exported() -> None:
    import platform

    [build] = [s for f in metrics.REGISTRY.collect() for s in f.samples if s.name == "phalanx_build_info"]
    assert build.value == 1 and build.labels["python"] == platform.python_version() and build.labels["version"]
    names = {s.name for f in metrics.REGISTRY.collect() for s in f.samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names


def readme_metric_names() -> set[str]:
    """The metric names of README's Metrics table (first column)."""
    import re

    from tests.argocd import REPO

    readme = (REPO / "README.md").read_text()
    table = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`([a-z][a-z0-9_:]*)`", cell)}


def served_metric_names(exposition: str) -> set[str]:
    """The metric names a Prometheus text exposition declares (its HELP lines), samples or not.
    prometheus_client declares the creation time of a counter or histogram that has samples as a
    family of its own, ``<name>_created``: not a metric of Phalanx's, so left out (else the answer
    depended on which tests had counted something before)."""
    declared = {line.split()[2] for line in exposition.splitlines() if line.startswith("# HELP ")}
    created = {
        name
        for name in declared
        if name.endswith("_created")
        and ({name.removesuffix("_created"), name.removesuffix("_created") + "_total"} & declared)
    }
    return declared - created


def test_the_readme_lists_every_phalanx_metric_and_nothing_that_is_not_served() -> None:
    from prometheus_client import generate_latest

    served = served_metric_names(generate_latest(metrics.REGISTRY).decode())
    listed = readme_metric_names()
    assert listed - served == set(), "listed in README, not served"
    assert {n for n in served if n.startswith("phalanx_")} - listed == set(), "served, not in README's Metrics table"
