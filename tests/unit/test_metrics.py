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
