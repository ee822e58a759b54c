"""Children: the store's Services and PodDisruptionBudget, created and kept to the spec."""

from __future__ import annotations

from collections.abc import Mapping

from phalanx.models import (
    ReplicatedStoreSpec,
)
from phalanx.names import client_service, disruption_budget, peers_service
from phalanx.observe import Observed
from phalanx.plan.actions import (
    Action,
    ChildKind,
    EnsureChild,
)


def ensure_children(
    spec: ReplicatedStoreSpec,
    observed: Observed,
    has_ports: bool,
    digests: Mapping[str, str] | None = None,
    taken: frozenset[str] = frozenset(),
) -> list[Action]:
    """Create a missing Service or PodDisruptionBudget; update one whose ports or budget differ from
    what the spec builds (``digests``: ``kind/name`` -> the digest of the built child). A name that
    another owner's object holds (``taken``) is left alone: that is a collision to report, not fix."""
    store = observed.store.name
    wanted: list[tuple[ChildKind, str]] = [
        ("peers-service", peers_service(store)),
        ("disruption-budget", disruption_budget(store)),
    ]
    if has_ports:
        wanted.insert(1, ("client-service", client_service(store)))
    actions: list[Action] = []
    for kind, name in wanted:
        key = f"{kind}/{name}"
        if key in taken:
            continue
        if key not in observed.children:
            actions.append(EnsureChild(kind, name, f"{kind} {name} does not exist"))
            continue
        want, have = (digests or {}).get(key), observed.child_digests.get(key)
        if want and have and want != have:
            actions.append(EnsureChild(kind, name, f"{kind} {name} differs from the spec", reason="ChildUpdated"))
    return actions
