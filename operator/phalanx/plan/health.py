"""Health: the one answer to "is this member healthy?", in its several degrees.

- ``member_state``: the state status reports (Pending, Restoring, Starting, Ready, Unavailable, Lost);
- ``serving``: Ready as far as the store can tell (its pod says so and its node is up);
- ``never_served`` and ``stuck``: a member that holds nothing of its own yet, and one that will not
  come by waiting (past ``updates.progressDeadline``).

Loss (``recovery.loss_of``) is a verdict on data, not on health, and lives with recovery.
"""

from __future__ import annotations

from datetime import datetime

from phalanx.models import (
    MemberState,
)
from phalanx.observe import MemberView, Observed


def member_state(member: MemberView, observed: Observed | None = None) -> MemberState:
    pod, claim = member.pod, member.claim
    if claim is None or claim.lost:
        return MemberState.LOST
    if pod is not None and pod.terminating:
        return MemberState.UNAVAILABLE
    if pod is not None and pod.node and observed is not None:
        node = observed.node(pod.node)
        if node is None or not node.ready:
            return MemberState.UNAVAILABLE
    if pod is None:
        return MemberState.RESTORING if claim.seeded_from and claim.phase == "Pending" else MemberState.PENDING
    if pod.ready:
        return MemberState.READY
    if observed is not None:  # a member that was serving and stopped is Unavailable, not new
        prior = observed.previous_member(member.name)
        if prior is not None and prior.state in (MemberState.READY, MemberState.UNAVAILABLE):
            return MemberState.UNAVAILABLE
    return MemberState.STARTING if pod.phase == "Pending" or pod.ready_since is None else MemberState.UNAVAILABLE


def serving(member: MemberView, observed: Observed | None) -> bool:
    """Ready as far as the store can tell: its pod says so and its node is up."""
    return member_state(member, observed) is MemberState.READY


FIRST_POD_WINDOW = 60.0
"""Seconds between a member's claim and pod creation within which the pod is the member's first."""


def never_served(member: MemberView) -> bool:
    """Whether the member can hold nothing of its own yet: its volume was never bound, or its first
    pod (made with its claim) has never been ready. A member whose pod was replaced may have served:
    it never counts as this."""
    claim, pod = member.claim, member.pod
    if claim is None:
        return False
    if claim.phase != "Bound":
        return pod is None or not pod.ready
    if pod is None or pod.ready or pod.ready_since is not None or pod.created is None or claim.created is None:
        return False
    return (pod.created - claim.created).total_seconds() < FIRST_POD_WINDOW


def stuck(member: MemberView, observed: Observed | None, deadline: float | None, now: datetime | None) -> bool:
    """A member that never served and has been on its way (Pending, Restoring, Starting) for longer
    than ``updates.progressDeadline`` since it was created: it will not come by waiting (a storage
    class that does not exist, an image that cannot be pulled, a node that will never fit it)."""
    if deadline is None or now is None or member_state(member, observed) not in ON_THE_WAY:
        return False
    if not never_served(member):
        return False
    born = member.claim.created if member.claim is not None else None
    born = born or (member.pod.created if member.pod is not None else None)
    return born is not None and (now - born).total_seconds() > deadline


ON_THE_WAY = frozenset({MemberState.PENDING, MemberState.RESTORING, MemberState.STARTING})


def prior_since(observed: Observed, member: str, state: MemberState) -> datetime | None:
    """Since when the member has been in ``state``, as the last status said (None: it was not)."""
    prior = observed.previous_member(member)
    return prior.since if prior is not None and prior.state is state else None
