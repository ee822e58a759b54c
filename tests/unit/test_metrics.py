"""A store's metric series are found by its own labels: dropped when states change or the store goes,
and never by scanning other stores' series."""

from __future__ import annotations

from phalanx import metrics
from phalanx.settings import Settings


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
