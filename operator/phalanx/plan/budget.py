"""The disruption budget: the one question every voluntary disruption asks.

Scale down, rebalancing, pruning retired volumes (and the rollout to come) take a member out, or ask
the store to carry one more change, only while every other member serves: quorum is never broken on
purpose (I2), and no second member is taken while one is already out (I1). A member that never served
and is past its progress deadline (``health.stuck``) holds nothing and neither counts nor blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from phalanx.models import ReplicatedStoreSpec
from phalanx.observe import MemberView, Observed
from phalanx.plan.health import serving, stuck


def others_serve(
    spec: ReplicatedStoreSpec,
    members: Sequence[MemberView],
    observed: Observed | None,
    taking: MemberView | None = None,
    now: datetime | None = None,
) -> bool:
    """Whether every member but ``taking`` serves (stuck ones aside): the budget for one voluntary step."""
    deadline = spec.updates.progress_deadline.total_seconds()
    return all(serving(m, observed) or stuck(m, observed, deadline, now) for m in members if m is not taking)
