"""The watch cache without a cluster: slim copies observe exactly like whole objects, grouping by
store follows relabelling, and a change wakes the stores it concerns (and only those)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from phalanx import kube as k
from phalanx import names
from phalanx.cache import StoreKey, WatchCache, slim_child, slim_claim, slim_node, slim_pod, slim_snapshot
from phalanx.kube import Kube, Obj
from phalanx.observe import NodeView, observe
from tests.unit.test_plan import PROPERTY, worlds
from tests.unit.world import STORE, World, claim, drill_claim, drill_pod, node, pod, volume_snapshot


def observe_both(world: World) -> tuple[object, object]:
    def seen(slim: bool) -> object:
        def maybe(thin: object, objs: Iterable[Obj]) -> list[Obj]:
            return [thin(o) if slim else o for o in objs]  # type: ignore[operator]

        return observe(
            STORE,
            1,
            {},
            pods=maybe(slim_pod, world.pods),
            claims=maybe(slim_claim, world.claims),
            nodes=[NodeView.of(slim_node(n)) if slim else n for n in world.nodes],
            snapshots=maybe(slim_snapshot, world.snapshots),
        )

    return seen(False), seen(True)


@PROPERTY
@given(worlds(), st.lists(st.integers(1, 5), max_size=3, unique=True), st.booleans())
def test_slim_copies_are_observed_exactly_as_whole_objects(world: World, snaps: list[int], seeded: bool) -> None:
    snapshots = tuple(volume_snapshot(f"orders-snap-{i}", f"orders-{i}", "zone-a", created=i) for i in snaps)
    extra = (claim("orders-77", "zone-a", seeded_from="orders-snap-1", phase="Pending"),) if seeded else ()
    waiting = pod("orders-77", "zone-a", phase="Pending")
    waiting["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    whole, slim = observe_both(
        replace(world, snapshots=snapshots, claims=world.claims + extra, pods=(*world.pods, waiting))
    )
    assert slim == whole


def test_a_slim_child_keeps_the_digest_of_what_phalanx_decides_though_a_list_item_has_no_kind() -> None:
    service = {"metadata": {"name": "orders", "namespace": "data"}, "spec": {"ports": [{"port": 1, "name": "a"}]}}
    budget = {"metadata": {"name": "orders", "namespace": "data"}, "spec": {"maxUnavailable": 1}}
    headless = {"metadata": {"name": "orders-peers"}, "spec": {"clusterIP": "None"}}
    assert slim_child("Service")(service)["child"].startswith("client-service/orders#")
    assert slim_child("Service")(headless)["child"].startswith("peers-service/orders-peers#")
    from_list = slim_child("PodDisruptionBudget")(budget)["child"]
    from_watch = slim_child("PodDisruptionBudget")({**budget, "kind": "PodDisruptionBudget"})["child"]
    assert from_list == from_watch
    assert from_list.startswith("disruption-budget/orders#")


# ------------------------------------------------------------------------------------------------
# Grouping and wake-ups, driven by hand as the informer threads would


class Woken:
    def __init__(self) -> None:
        self.calls: list[set[StoreKey] | None] = []

    def __call__(self, stores: Iterable[StoreKey] | None) -> None:
        self.calls.append(None if stores is None else set(stores))

    def take(self) -> list[set[StoreKey] | None]:
        calls, self.calls = self.calls, []
        return calls


def cache_of(*nodes: Obj) -> tuple[WatchCache, Woken]:
    woken = Woken()
    cache = WatchCache(Kube(None), k.PDB_V1, on_wake=woken)  # type: ignore[arg-type]  # never started
    for informer in cache.informers:
        informer.synced.set()
    for raw in nodes:
        put(cache, "nodes", raw)
    woken.take()
    return cache, woken


def put(cache: WatchCache, kind: str, raw: Obj, namespace: str = "data") -> None:
    informer = cache._informer_of[kind][0]
    key = raw["metadata"]["name"] if kind == "nodes" else f"{namespace}/{raw['metadata']['name']}"
    informer.cache[key] = informer.transform(raw)
    cache._changed(kind, key)


def remove(cache: WatchCache, kind: str, name: str, namespace: str = "data") -> None:
    key = name if kind == "nodes" else f"{namespace}/{name}"
    cache._informer_of[kind][0].cache.pop(key, None)
    cache._changed(kind, key)


ORDERS, OTHER = ("data", "orders"), ("data", "other")


def test_objects_are_grouped_by_their_store_and_wake_it() -> None:
    cache, woken = cache_of()
    put(cache, "pods", pod("orders-1", "zone-a"))
    put(cache, "pods", pod("other-1", "zone-a", store="other"))
    assert [p["metadata"]["name"] for p in cache.of_store("pods", ORDERS)] == ["orders-1"]
    assert woken.take() == [{ORDERS}, {OTHER}]


def test_an_object_relabelled_to_another_store_leaves_the_first_and_wakes_both() -> None:
    cache, woken = cache_of()
    put(cache, "claims", claim("orders-1", "zone-a"))
    woken.take()
    put(cache, "claims", claim("orders-1", "zone-a", store="other"))
    assert cache.of_store("claims", ORDERS) == []
    assert len(cache.of_store("claims", OTHER)) == 1
    assert woken.take() == [{ORDERS, OTHER}]
    remove(cache, "claims", "orders-1")
    assert cache.of_store("claims", OTHER) == []
    assert woken.take() == [{OTHER}]


def test_a_heartbeat_wakes_nobody_and_a_node_failing_wakes_only_the_stores_on_it() -> None:
    cache, woken = cache_of(node("n-a-0", "zone-a"), node("n-a-1", "zone-a"), node("n-b-0", "zone-b"))
    put(cache, "pods", pod("orders-1", "zone-a", node_name="n-a-0"))
    put(cache, "pods", pod("other-1", "zone-a", store="other", node_name="n-a-1"))
    woken.take()
    put(cache, "nodes", node("n-a-0", "zone-a"))  # the same health again
    assert woken.take() == []
    put(cache, "nodes", node("n-a-0", "zone-a", ready=False, since=5))
    assert woken.take() == [{ORDERS}]
    assert not next(v for v in cache.nodes() if v.name == "n-a-0").ready


def test_the_last_ready_node_of_a_zone_failing_wakes_every_store() -> None:
    cache, woken = cache_of(node("n-a-0", "zone-a"), node("n-b-0", "zone-b"))
    put(cache, "pods", pod("orders-1", "zone-b", node_name="n-b-0"))
    woken.take()
    put(cache, "nodes", node("n-a-0", "zone-a", ready=False, since=5))
    assert woken.take() == [None]  # zone-a is down as a whole: zone outages and placement change
    remove(cache, "nodes", "n-b-0")
    assert woken.take() == [None]
    assert [v.name for v in cache.nodes()] == ["n-a-0"]


def test_a_pod_moving_nodes_is_counted_on_its_new_node_only() -> None:
    cache, woken = cache_of(node("n-a-0", "zone-a"), node("n-a-1", "zone-a"))
    put(cache, "pods", pod("orders-1", "zone-a"))  # not scheduled yet
    put(cache, "pods", pod("orders-1", "zone-a", node_name="n-a-1"))
    remove(cache, "pods", "orders-1")
    put(cache, "pods", pod("orders-1", "zone-a", node_name="n-a-0", uid="second"))
    woken.take()
    put(cache, "nodes", node("n-a-1", "zone-a", unschedulable=True))
    assert woken.take() == []
    put(cache, "nodes", node("n-a-0", "zone-a", unschedulable=True))
    assert woken.take() == [None]  # no schedulable node left in zone-a


def test_nothing_wakes_before_every_kind_is_listed() -> None:
    cache, woken = cache_of()
    cache.informers[0].synced.clear()
    put(cache, "pods", pod("orders-1", "zone-a"))
    assert not cache.synced()
    assert woken.take() == []
    assert len(cache.of_store("pods", ORDERS)) == 1


def test_find_reads_one_object_of_a_namespace() -> None:
    cache, _ = cache_of()
    put(cache, "snapshots", volume_snapshot("orders-snap-1", "orders-1", "zone-a"))
    assert cache.find("snapshots", "data", "orders-snap-1") is not None
    assert cache.find("snapshots", "elsewhere", "orders-snap-1") is None
    assert names.STORE_LABEL in cache.find("snapshots", "data", "orders-snap-1")["metadata"]["labels"]  # type: ignore[index]


def test_a_node_pool_growing_by_one_node_wakes_no_store() -> None:
    cache, woken = cache_of(node("n-a-0", "zone-a"))
    put(cache, "pods", pod("orders-1", "zone-a", node_name="n-a-0"))
    woken.take()
    put(cache, "nodes", node("n-a-1", "zone-a"))
    assert woken.take() == []
    remove(cache, "nodes", "n-a-1")
    assert woken.take() == []


def test_drill_pods_are_watched_apart_grouped_by_the_store_they_drill_and_keep_their_exit_codes() -> None:
    cache, woken = cache_of()
    name = "orders-drill-20250101-000000"
    put(cache, "drills", drill_pod(name, "zone-a", phase="Failed", exit_code=3))
    assert woken.take() == [{ORDERS}]
    assert cache.of_store("pods", ORDERS) == [] and len(cache.of_store("drills", ORDERS)) == 1
    assert cache.find("drills", "data", name) is not None
    claims = [drill_claim(name, "zone-a", "orders-snap-1", phase="Bound")]
    record = {"owned": {"claims": [{"name": name, "uid": f"pvc-{name}"}]}}
    whole = observe(
        STORE,
        1,
        record,
        pods=[],
        claims=claims,
        nodes=[],
        drill_pods=[drill_pod(name, "zone-a", phase="Failed", exit_code=3)],
    )
    slim = observe(
        STORE,
        1,
        record,
        pods=[],
        claims=[slim_claim(c) for c in claims],
        nodes=[],
        drill_pods=cache.of_store("drills", ORDERS),
    )
    assert slim == whole and slim.drills[0].exit_codes == (3,)
