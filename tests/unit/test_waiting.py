"""domain/waiting.py: which readings may wait, what a window keeps, when they are due."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lineside.agent.domain.waiting import WaitingReadings

MODULUS = 65536


@dataclass(frozen=True)
class R:
    point: str
    value: int | Decimal


def test_only_a_plain_step_forward_waits() -> None:
    waiting: WaitingReadings[R] = WaitingReadings(5, 0)
    assert not waiting.may_wait(R("p", 5), None, MODULUS, 100)  # no committed value known
    assert waiting.may_wait(R("p", 5), 3, MODULUS, 100)
    assert waiting.may_wait(R("p", 3), 3, MODULUS, 100)  # unchanged
    assert not waiting.may_wait(R("p", 2), 3, MODULUS, 100)  # reset
    assert not waiting.may_wait(R("p", 3), 65530, MODULUS, 100)  # rollover
    assert not waiting.may_wait(R("p", 300), 3, MODULUS, 100)  # above max_delta


def test_without_a_window_every_reading_is_kept() -> None:
    waiting: WaitingReadings[R] = WaitingReadings(5, 0)
    for value in (4, 6, 9):
        assert waiting.may_wait(R("p", value), 3, MODULUS, 100)
        waiting.add(R("p", value), 1.0)
    assert waiting.due_in(3.0) == 3.0
    assert waiting.due_in(7.0) == 0
    assert [r.value for r in waiting.take()] == [4, 6, 9]
    assert waiting.due_in(7.0) is None


def test_a_window_keeps_each_points_newest_and_checks_from_the_committed_value() -> None:
    waiting: WaitingReadings[R] = WaitingReadings(5, 10)
    waiting.add(R("good", 50), 0.0)
    waiting.add(R("scrap", 1), 0.5)
    waiting.add(R("good", 90), 1.0)
    assert waiting.value_of("good") == 90
    # 90 -> 140 is a step of 50, but 10 -> 140 is more than max_delta 100: it cannot replace
    assert not waiting.may_wait(R("good", 140), 10, MODULUS, 100)
    assert waiting.may_wait(R("good", 100), 10, MODULUS, 100)
    assert waiting.due_in(5.0) == 5.0  # the longer of the two intervals
    assert [r.value for r in waiting.take()] == [90, 1]
