"""Counters are counters: baseline, delta, rollover at the width, reset, implausible jumps.

counter_change takes the modulus (2^width x scale): 2**16 for a uint16 counter."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineside.agent.domain.counters import counter_change


@pytest.mark.parametrize(
    ("last", "new", "modulus", "kind", "delta"),
    [
        (None, 1234, 2**16, "baseline", 0),
        (10, 10, 2**16, "unchanged", 0),
        (10, 15, 2**16, "delta", 5),
        (65535, 4, 2**16, "rollover", 5),
        (65530, 0, 2**16, "rollover", 6),
        (4294967290, 3, 2**32, "rollover", 9),
        (5000, 20, 2**16, "reset", 20),  # wrap-around would be 60,556 units: not plausible
        (40000, 100, 2**16, "reset", 100),  # a wrap would be 25,636 units: above max_delta
        (100, 250_000, 2**32, "implausible", 249_900),
        (None, Decimal("12.5"), None, "baseline", 0),
        (Decimal("12.5"), Decimal("13.75"), None, "delta", Decimal("1.25")),
        (Decimal("900.0"), Decimal("0.4"), None, "reset", Decimal("0.4")),
        (Decimal("6552.6"), Decimal("2.7"), Decimal("6553.6"), "rollover", Decimal("3.7")),
    ],
)
def test_interpret(last, new, modulus, kind, delta) -> None:  # type: ignore[no-untyped-def]
    result = counter_change(last, new, modulus, 10_000)
    assert (result.kind, result.delta) == (kind, delta)


def test_uint16_crossing_65535_to_4_is_five_units() -> None:
    assert counter_change(65535, 4, 2**16, 100_000).delta == 5


@given(
    st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=200),
    st.sampled_from([16, 32]),
    st.integers(min_value=0, max_value=2**16 - 1),
)
def test_increments_across_rollovers_add_up_exactly(
    steps: list[int], width: int, start: int
) -> None:
    """Any sequence of small increments (wrapping at the width) totals the true count."""
    modulus = 2**width
    value, last, total = start, None, 0
    for step in steps:
        value = (value + step) % modulus
        result = counter_change(last, value, modulus, 1000, max_rate=300, elapsed_s=0.25)
        if result.counts:
            total += int(result.delta)
        last = value
    assert total == sum(steps[1:])  # the first reading is the baseline


@given(st.lists(st.integers(min_value=0, max_value=2**16 - 1), min_size=1, max_size=100))
def test_repeats_never_count(values: list[int]) -> None:
    last = None
    for v in values:
        assert not counter_change(v, v, 2**16, 1000).counts
        counter_change(last, v, 2**16, 1000)
        last = v


def test_a_uint16_reset_is_a_reset_even_when_max_delta_exceeds_the_range() -> None:
    """max_delta 100,000 > 65,536: a drop from 500 to 0 must not pass as 65,036 units."""
    assert (
        counter_change(500, 0, 2**16, 100_000).kind,
        counter_change(500, 0, 2**16, 100_000).delta,
    ) == (
        "reset",
        0,
    )
    assert counter_change(65_000, 100, 2**16, 100_000).kind == "rollover"
    assert counter_change(65_000, 100, 2**16, 100_000).delta == 636


@pytest.mark.parametrize(
    ("last", "new", "elapsed_s", "kind"),
    [
        (40029, 8, 0.25, "reset"),  # 25,515 units in a quarter second: the PLC was reset
        (40029, 8, 3600.0, "rollover"),  # an hour since the last read: 7 units a second
        (65534, 2, 0.25, "rollover"),  # 4 units: within the one second any read allows
        (64000, 100, 0.0, "rollover"),  # 1,636 units, reads at the same instant: 1 s allowed
        (64000, 2000, 0.0, "reset"),  # 3,536 units: more than a second's production
        (64000, 100, -30.0, "rollover"),  # a clock set back: still one second's worth
    ],
)
def test_a_rollover_must_be_possible_at_max_rate(
    last: int, new: int, elapsed_s: float, kind: str
) -> None:
    result = counter_change(last, new, 2**16, 100_000, max_rate=2000, elapsed_s=elapsed_s)
    assert result.kind == kind
