"""One Backoff for every retry: drivers, the sync and Sparkplug links, the Supervisor."""

import itertools

from lineside.agent.runtime import RESTART_BACKOFF
from lineside.agent.sync.connect import link_backoff
from lineside.drivers.base import Backoff


def test_the_nth_delay_is_the_nth_of_the_sequence() -> None:
    backoff = Backoff(0.5, 10.0)
    assert [backoff.delay(n) for n in range(1, 8)] == list(itertools.islice(backoff.delays(), 7))
    assert backoff.delay(10_000) == 10.0  # a long outage waits max_s, no overflow


def test_jitter_spreads_each_delay_either_way_within_its_fraction() -> None:
    backoff = Backoff(1.0, 30.0, jitter=0.2)
    delays = [backoff.delay(3) for _ in range(200)]
    assert all(3.2 <= d <= 4.8 for d in delays)
    assert len(set(delays)) > 1


def test_a_link_never_waits_less_than_its_minimum() -> None:
    backoff = link_backoff(2.0, 1.0)
    assert backoff.max_s == 2.0
    assert all(1.6 <= backoff.delay(n) <= 2.4 for n in range(1, 10))


def test_the_supervisor_restarts_a_driver_after_half_a_second_doubling_to_half_a_minute() -> None:
    assert list(itertools.islice(RESTART_BACKOFF.delays(), 8)) == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]
