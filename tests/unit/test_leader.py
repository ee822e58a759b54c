"""The leader's fence, without a cluster: a holder may act only while its last renewal is younger
than renewDeadline on the monotonic clock, stops for good once it is not, and the settings refuse
durations under which a holder could act after another took its lease."""

from __future__ import annotations

import kubernetes.client
import pytest

from phalanx.leader import ElectionSettings, Leadership
from phalanx.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def leadership(clock: Clock, exits: list[int]) -> Leadership:
    settings = ElectionSettings(
        namespace="default", identity="me", lease_duration=15, renew_deadline=10, retry_period=2
    )
    return Leadership(settings, kubernetes.client.ApiClient(), monotonic=clock, exit_process=exits.append)


def test_a_holder_acts_only_while_its_last_renewal_is_younger_than_the_renew_deadline() -> None:
    clock, exits, changes = Clock(), list[int](), list[bool]()
    leader = leadership(clock, exits)
    leader.on_change = changes.append
    assert not leader.may_act(), "a standby never acts"
    leader._renewed()
    assert leader.may_act() and changes == [True]
    clock.now += 9.9
    assert leader.may_act()
    leader._renewed()
    clock.now += 9.9
    assert leader.may_act(), "each renewal moves the fence"
    clock.now += 0.2  # frozen, or partitioned, past the deadline
    assert not leader.may_act()


def test_the_watchdog_exits_the_moment_the_fence_closes_and_it_never_reopens() -> None:
    clock, exits, changes = Clock(), list[int](), list[bool]()
    leader = leadership(clock, exits)
    leader.on_change = changes.append
    leader._renewed()
    clock.now += 11
    leader.watchdog(period=0.0)
    assert exits == [1] and changes == [True, False]
    leader._renewed()  # a late renewal (the woken loop) changes nothing
    assert not leader.may_act()


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [(10, 10, 2), (15, 20, 2), (15, 10, 0.5), (15, 2, 2)],
)
def test_durations_under_which_two_could_act_are_refused(lease: int, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="stop acting before another may take its lease"):
        ElectionSettings(namespace="default", lease_duration=lease, renew_deadline=renew, retry_period=retry)


def test_settings_turn_election_on_by_default_in_the_pods_namespace_and_off_on_request() -> None:
    config = Settings.from_env({"POD_NAMESPACE": "phalanx-system", "POD_NAME": "phalanx-7d9-x"})
    assert config.election is not None
    assert (config.election.namespace, config.election.identity) == ("phalanx-system", "phalanx-7d9-x")
    assert (config.election.lease_duration, config.election.renew_deadline, config.election.retry_period) == (15, 10, 2)
    assert Settings.from_env({"PHALANX_LEADER_ELECTION": "false"}).election is None
