"""Expectations: a store does not plan until the cache shows its own writes, so a lagging watch never
makes it create a member twice or retire one again."""

from __future__ import annotations

from typing import Any

import pytest

from phalanx.expectations import TIMEOUT, Expectations, expected
from phalanx.plan import (
    Action,
    CreateMember,
    CreatePod,
    DeletePod,
    DeleteSnapshot,
    EnsureChild,
    ExpandVolume,
    RetireMember,
    Snapshot,
)
from tests.unit.world import claim, pod, volume_snapshot

Cached = dict[tuple[str, str], dict[str, Any]]
STORE = ("data", "orders")


def lookup(cached: Cached) -> Any:
    return lambda kind, name: cached.get((kind, name))


def retired(obj: dict[str, Any]) -> dict[str, Any]:
    labels = {**obj["metadata"]["labels"], "phalanx.dev/retired": "true"}
    return {**obj, "metadata": {**obj["metadata"], "labels": labels}}


def terminating(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "deletionTimestamp": "2025-01-01T00:00:00Z"}}


POD, CLAIM = pod("orders-1", "zone-a"), claim("orders-1", "zone-a")
SNAP = volume_snapshot("orders-snap", "orders-1", "zone-a")
CASES: list[tuple[Action, Cached, Cached]] = [
    # action, a cache that does not show it yet, a cache that does
    (
        CreateMember("orders-1", "zone-a", None, "scale"),
        {("claims", "orders-1"): CLAIM},
        {
            ("claims", "orders-1"): CLAIM,
            ("pods", "orders-1"): POD,
        },
    ),
    (CreatePod("orders-1", "zone-a", None, "heal"), {}, {("pods", "orders-1"): POD}),
    (DeletePod("orders-1", "pod-orders-1", "finished"), {("pods", "orders-1"): POD}, {}),
    (
        DeletePod("orders-1", "pod-orders-1", "finished"),
        {("pods", "orders-1"): POD},
        {("pods", "orders-1"): terminating(POD)},
    ),
    (
        DeletePod("orders-1", "pod-orders-1", "finished"),
        {("pods", "orders-1"): POD},
        {("pods", "orders-1"): pod("orders-1", "zone-a", uid="successor")},
    ),
    (
        RetireMember("orders-1", "pod-orders-1", "pvc-orders-1", False, "scale down"),
        {("claims", "orders-1"): CLAIM, ("pods", "orders-1"): retired(POD)},
        {("claims", "orders-1"): retired(CLAIM)},
    ),
    (  # a retired volume being deleted: seeing it retired is not seeing it go (no second delete, no 404)
        RetireMember("orders-1", None, "pvc-orders-1", True, "its replacement is ready"),
        {("claims", "orders-1"): retired(CLAIM)},
        {("claims", "orders-1"): terminating(retired(CLAIM))},
    ),
    (
        EnsureChild("peers-service", "orders-peers", "missing"),
        {},
        {("services", "orders-peers"): {"child": "peers-service/orders-peers#abc"}},
    ),
    (
        EnsureChild("disruption-budget", "orders", "differs"),
        {("budgets", "orders"): {"child": "x#old"}},
        {("budgets", "orders"): {"child": "disruption-budget/orders#new"}},
    ),
    (Snapshot("orders-1", "zone-a", "orders-snap", "due"), {}, {("snapshots", "orders-snap"): SNAP}),
    (DeleteSnapshot("orders-snap", "snap-orders-snap", "pruned"), {("snapshots", "orders-snap"): SNAP}, {}),
]


@pytest.mark.parametrize(("action", "before", "after"), CASES, ids=lambda v: type(v).__name__)
def test_a_store_waits_until_the_cache_shows_its_write(action: Action, before: Cached, after: Cached) -> None:
    book = Expectations()
    book.add(STORE, expected(action, 0.0, {"disruption-budget/orders": "new"}))
    waiting, expired = book.unmet(STORE, lookup(before), 1.0)
    assert waiting and not expired
    assert book.unmet(STORE, lookup(after), 2.0) == ([], [])
    assert book.unmet(STORE, lookup(before), 3.0) == ([], []), "a met expectation is forgotten"


def test_an_expectation_never_met_is_dropped_after_the_timeout_and_reported() -> None:
    book = Expectations()
    book.add(STORE, expected(CreatePod("orders-1", "zone-a", None, "heal"), 0.0))
    assert len(book.unmet(STORE, lookup({}), TIMEOUT - 1)[0]) == 1
    waiting, expired = book.unmet(STORE, lookup({}), TIMEOUT + 1)
    assert waiting == [] and [e.why for e in expired] == ["pod orders-1 created"]
    assert book.unmet(STORE, lookup({}), TIMEOUT + 2) == ([], [])


def test_stores_keep_their_own_expectations() -> None:
    book = Expectations()
    book.add(STORE, expected(CreatePod("orders-1", "zone-a", None, "heal"), 0.0))
    assert book.unmet(("data", "other"), lookup({}), 1.0) == ([], [])
    book.forget(STORE)
    assert book.unmet(STORE, lookup({}), 1.0) == ([], [])


def test_an_expansion_is_seen_whatever_form_the_api_server_writes_the_size_in() -> None:
    book = Expectations()
    book.add(STORE, expected(ExpandVolume("orders-1", "1.5Gi", "raised"), 0.0))
    canonical = {**CLAIM, "spec": {"resources": {"requests": {"storage": "1536Mi"}}}}
    assert book.unmet(STORE, lookup({("claims", "orders-1"): CLAIM}), 1.0)[0]
    assert book.unmet(STORE, lookup({("claims", "orders-1"): canonical}), 2.0) == ([], [])
