"""Heartbeats, judged against the other nodes: silence relative to the freshest renewal, learned
intervals, and the guards (everyone quiet at once, too few nodes, an older copy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from phalanx.heartbeats import Heartbeats

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def beating(nodes: list[str], until: float, every: float = 1.0, stopped: dict[str, float] | None = None) -> Heartbeats:
    """Nodes renewing every ``every`` seconds up to ``until``; ``stopped``: a node's last renewal."""
    beats, stopped = Heartbeats(), stopped or {}
    second = 0.0
    while second <= until:
        for node in nodes:
            if second <= stopped.get(node, until):
                beats.seen(node, at(second), 40)
        second += every
    return beats


def test_a_node_whose_renewals_stopped_is_silent_since_its_last_one_on_the_callers_clock() -> None:
    beats = beating(["a", "b", "c"], until=10, stopped={"b": 6})
    now = at(10.3)  # the caller's clock, a little ahead of the kubelets'
    assert beats.silent(now) == {"b": now - timedelta(seconds=4)}


def test_a_short_pause_within_twice_the_usual_interval_is_not_silence() -> None:
    beats = beating(["a", "b", "c"], until=10, stopped={"b": 8.5}, every=0.5)
    assert beats.silent(at(10)) == {}  # 1.5 s behind, under the 2 s floor
    slow = beating(["a", "b", "c"], until=100, every=10.0, stopped={"b": 80})
    assert slow.silent(at(100)) == {}, "20 s behind a kubelet that renews every 10 s: not yet"
    assert beating(["a", "b", "c"], until=100, every=10.0, stopped={"b": 70}).silent(at(100)) != {}


def test_when_everyone_is_quiet_at_once_the_view_from_here_is_not_trusted() -> None:
    beats = beating(["a", "b", "c"], until=10, stopped={"b": 3, "c": 3})
    assert beats.silent(at(10)) == {}, "most nodes silent: the controller decides"
    lagging = beating(["a", "b", "c"], until=10)
    assert lagging.silent(at(60)) == {}, "a watch lagging for all (or our restart) makes nobody silent"


def test_one_node_alone_and_older_copies_prove_nothing() -> None:
    lonely = beating(["a"], until=10)
    assert lonely.silent(at(60)) == {}
    beats = beating(["a", "b", "c"], until=10)
    beats.seen("b", at(2), 40)  # a relist racing the watch hands an older copy
    assert beats.silent(at(10)) == {}
