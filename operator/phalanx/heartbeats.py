"""Node heartbeats: a node whose Lease stopped being renewed is down before the node controller
says so.

Kubelets renew a Lease in ``kube-node-lease`` every few seconds; the node-lifecycle controller marks
a node NotReady only once no renewal came for its grace (40 s by default). Phalanx reads the same
Leases, so that a member on a dead node is judged on ``memberFailureGrace`` counted from the node's
last renewal, not from the controller's verdict.

Silence is judged against the other nodes, never against the operator's clock: a node is silent when
the freshest renewal of any node is newer than its own by more than twice its usual renewal interval
(learned from the renewals seen, at least ``FLOOR`` seconds). So the operator's own restart, a lagging
watch, or skew between its clock and the kubelets' makes no Lease look stale: they lag together.
When most nodes are silent at once, heartbeats are not trusted at all (that is the view from here, or
a cluster-wide stall) and the controller's NotReady decides, as it would without this module.

The trade-off: a kubelet that is alive but cannot reach the API server for longer than that interval
(overloaded, partitioned from the control plane only) has its members replaced sooner than the
controller would have. Set ``PHALANX_NODE_HEARTBEATS=false`` to rely on the controller alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

FLOOR = 2.0
"""Seconds of silence, relative to the other nodes, that never count as a node down."""
DEFAULT_EVERY_FRACTION = 0.25
"""A kubelet renews every quarter of its lease duration until renewals are seen."""


@dataclass(frozen=True)
class Beat:
    renew: datetime
    every: float
    """Its usual renewal interval, seconds."""
    learned: bool = False


class Heartbeats:
    """The last renewal of every node's Lease, and which nodes went silent."""

    def __init__(self) -> None:
        self.beats: dict[str, Beat] = {}

    def seen(self, node: str, renew: datetime | None, lease_seconds: float | None) -> None:
        if renew is None:
            return
        prior = self.beats.get(node)
        every = (lease_seconds or 40.0) * DEFAULT_EVERY_FRACTION
        learned = False
        if prior is not None:
            every, learned = prior.every, prior.learned
            if renew > prior.renew:
                interval = (renew - prior.renew).total_seconds()
                every = 0.7 * every + 0.3 * interval if learned else interval
                learned = True
            elif renew < prior.renew:
                return  # an older copy (a relist racing a watch): keep the newer
        self.beats[node] = Beat(renew, every, learned)

    def forget(self, node: str) -> None:
        self.beats.pop(node, None)

    def silent(self, now: datetime) -> dict[str, datetime]:
        """Silent nodes -> since when (on the caller's clock: ``now`` minus how far behind the
        freshest renewal they are)."""
        if len(self.beats) < 2:
            return {}
        reference = max(b.renew for b in self.beats.values())
        behind = {n: (reference - b.renew).total_seconds() for n, b in self.beats.items()}
        quiet = {n: s for n, s in behind.items() if s > max(2 * self.beats[n].every, FLOOR)}
        if len(quiet) * 2 > len(self.beats):
            return {}
        return {n: now - timedelta(seconds=s) for n, s in quiet.items()}
