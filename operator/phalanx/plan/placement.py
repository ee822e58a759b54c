"""Placement: which zones are the store's, where a member can land, and which zones are down.

Pure arithmetic over zone counts (skew at most 1) and the nodes' health. Two different sets of zones
are named apart: ``desired_zones`` (the store's home zones) and ``placeable`` (those of them where a
new member can land now).

A zone outage has two clocks. It begins when the zone has no ready node (``zone_down_since``) and
its first node back ends it for the zone (``zone_returned_at``); but real zones come back node by
node, over minutes. A node that went down before its zone returned is still in that outage until it
is back or until zoneFailureGrace after the return, whichever comes first: only then does its
member's own memberFailureGrace start (``grace_start``). A member is never judged lost for being on
the last node of its zone to come back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from phalanx.models import (
    ReplicatedStoreSpec,
)
from phalanx.observe import MemberView, NodeView, Observed


def zone_counts(zones: Sequence[str], members: Iterable[MemberView]) -> Counter[str]:
    """Members per zone, with every zone of ``zones`` present (possibly at 0)."""
    counts: Counter[str] = Counter(dict.fromkeys(zones, 0))
    counts.update(m.zone for m in members)
    return counts


def place(zones: Sequence[str], counts: Mapping[str, int], how_many: int) -> list[str]:
    """Zones for ``how_many`` new members: each goes to a zone with the fewest (ties: by name)."""
    current = {zone: counts.get(zone, 0) for zone in zones}
    chosen = []
    for _ in range(how_many):
        zone = min(sorted(current), key=lambda z: current[z])
        current[zone] += 1
        chosen.append(zone)
    return chosen


def skew(zones: Sequence[str], members: Iterable[MemberView]) -> int:
    """The difference between the fullest and the emptiest of the store's zones."""
    counts = zone_counts(zones, members)
    values = [counts[zone] for zone in zones]
    return max(values) - min(values) if values else 0


def desired_zones(spec: ReplicatedStoreSpec, observed: Observed) -> tuple[str, ...]:
    """The store's zones: ``spec.zones`` as given, else the zones with schedulable nodes plus those
    that hold its members and still have nodes. So a zone whose nodes are cordoned or down stays
    home to its members (no churn, an outage is handled as one), while a new store ignores it.
    Placing a new member needs a schedulable node (see ``placeable``)."""
    if spec.zones:
        return tuple(spec.zones)
    homes = {m.zone for m in observed.members if observed.zone_nodes(m.zone)}
    return tuple(sorted(set(observed.zones_with_nodes()) | homes))


def observed_zones(observed: Observed) -> tuple[str, ...]:
    """The store's zones as last reported and as its members hold them: what status keeps reporting
    while no valid spec says which zones are the store's (an invalid spec changes nothing observed)."""
    reported = {z.name for z in observed.previous.zones}
    return tuple(sorted(reported | {m.zone for m in observed.members}))


def placeable(zones: Sequence[str], observed: Observed, outages: Mapping[str, bool]) -> list[str]:
    """The store's zones where a new member can land now: a schedulable node, and no outage."""
    schedulable = set(observed.zones_with_nodes())
    return [z for z in zones if z in schedulable and z not in outages]


def zone_down_since(observed: Observed, zone: str, now: datetime) -> datetime | None:
    """Since when a zone has had no ready node, or None while it has one. For a zone whose Node
    objects are all gone (a node pool being replaced) that is when status last saw it otherwise,
    never "now minus forever": the grace counts from the moment the zone was last seen healthy."""
    nodes = observed.zone_nodes(zone)
    if any(n.ready for n in nodes):
        return None
    if nodes:
        return max((n.not_ready_since or now) for n in nodes)
    prior = observed.previous_zone(zone)
    return (prior.down_since if prior is not None else None) or now


def zone_outages(spec: ReplicatedStoreSpec, observed: Observed, now: datetime) -> dict[str, bool]:
    """Zones whose every node is down (or gone, for a zone that holds members), mapped to whether
    that lasted beyond zoneFailureGrace."""
    zones = {m.zone for m in observed.members} | {n.zone for n in observed.nodes if n.zone}
    grace = spec.recovery.zone_failure_grace.total_seconds()
    result = {}
    for zone in sorted(zones):
        since = zone_down_since(observed, zone, now)
        if since is not None:
            result[zone] = (now - since).total_seconds() >= grace
    return result


def zone_returned_at(observed: Observed, zone: str, now: datetime) -> datetime | None:
    """When the zone last came back from having no ready node: the first pass that saw it up after
    status had it down. None while it is down, and for a zone status never saw down."""
    if zone_down_since(observed, zone, now) is not None:
        return None
    prior = observed.previous_zone(zone)
    if prior is None:
        return None
    return now if prior.down_since is not None else prior.returned_at


def stragglers(observed: Observed, zone: str, returned_at: datetime) -> list[NodeView]:
    """The zone's nodes that went down before it returned and are not back yet."""
    return [
        n
        for n in observed.zone_nodes(zone)
        if not n.ready and (n.not_ready_since is None or n.not_ready_since < returned_at)
    ]


def grace_start(
    spec: ReplicatedStoreSpec, observed: Observed, zone: str, failed_since: datetime, now: datetime
) -> datetime:
    """When the memberFailureGrace of a member that failed at ``failed_since`` starts. A failure
    that began before its zone last returned is part of that outage: its grace starts when the
    outage is over for it, zoneFailureGrace after the zone's return (its node back sooner ends it
    sooner, and then nothing is judged). A failure of its own starts at once."""
    returned = zone_returned_at(observed, zone, now)
    if returned is not None and failed_since < returned:
        return returned + timedelta(seconds=spec.recovery.zone_failure_grace.total_seconds())
    return failed_since


def returning(spec: ReplicatedStoreSpec, observed: Observed, zone: str, now: datetime) -> list[NodeView]:
    """The nodes a zone that came back is still waiting for (empty once they are all back, or once
    zoneFailureGrace has passed since the return: the rest are failures of their own)."""
    returned = zone_returned_at(observed, zone, now)
    if returned is None or (now - returned).total_seconds() >= spec.recovery.zone_failure_grace.total_seconds():
        return []
    return stragglers(observed, zone, returned)


def settled(spec: ReplicatedStoreSpec, observed: Observed, zone: str, now: datetime) -> bool:
    """Whether members may move into a zone: it is not still coming back, and it has stayed up for
    a memberFailureGrace since it returned (a zone that flaps gets nothing moved into it)."""
    if returning(spec, observed, zone, now):
        return False
    returned = zone_returned_at(observed, zone, now)
    return returned is None or (now - returned).total_seconds() >= spec.recovery.member_failure_grace.total_seconds()


def remembered_zones(spec: ReplicatedStoreSpec | None, observed: Observed, now: datetime) -> list[str]:
    """Zones of the last status that status must go on listing although they hold no member and are
    not the store's now: a zone down (its members redistributed) or not settled since it returned.
    Their clocks live in status alone, and a return that status forgot would not be waited on."""

    def unsettled(zone: str) -> bool:
        return zone_returned_at(observed, zone, now) is not None and (
            spec is None or not settled(spec, observed, zone, now)
        )

    return [
        z.name
        for z in observed.previous.zones
        if zone_down_since(observed, z.name, now) is not None or unsettled(z.name)
    ]
