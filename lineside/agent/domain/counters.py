"""Counters are counters: a rollover is a small delta, a drop is a reset, nothing is re-stamped."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Number = int | Decimal
DeltaKind = Literal["baseline", "unchanged", "delta", "rollover", "reset", "implausible"]


@dataclass(frozen=True, slots=True)
class CounterDelta:
    kind: DeltaKind
    delta: Number

    @property
    def counts(self) -> bool:
        """Whether this delta is production to post now."""
        return self.kind in ("delta", "rollover", "reset") and self.delta > 0


MIN_WINDOW_S = 1.0  # the rate allows at least one second's production, however close the reads


def counter_change(
    last: Number | None,
    new: Number,
    modulus: Number | None,
    max_delta: Number,
    *,
    max_rate: Number | None = None,
    elapsed_s: float | None = None,
) -> CounterDelta:
    """Compare a fresh reading with the last one seen.

    modulus: where the counter wraps (2^width x scale for an integer point; None for one
    that never wraps, a float). max_rate: the most units a second the line can make;
    elapsed_s: the time since the last reading.

    The first reading ever is a baseline. A drop is a rollover when the wrap-around
    delta is believable: at most max_delta, at most half the counter's range, and at
    most what max_rate allows in elapsed_s (at least MIN_WINDOW_S); otherwise it is a
    reset, which counts from 0. A forward jump above max_delta is 'implausible': held for
    a person to look at, never posted on its own.
    """
    if last is None:
        return CounterDelta("baseline", 0)
    if new == last:
        return CounterDelta("unchanged", 0)
    if new > last:
        delta = new - last
        return CounterDelta("delta" if delta <= max_delta else "implausible", delta)
    if modulus is not None:
        # A wrap is only believable from the top half of the range to the bottom half,
        # and only as fast as the line can make units: a 16-bit counter dropping from
        # 40029 to 8 a second later was reset, not 25,515 units further.
        wrapped = (modulus - last) + new
        if (
            0 < wrapped <= max_delta
            and 2 * wrapped <= modulus
            and _could_make(wrapped, max_rate, elapsed_s)
        ):
            return CounterDelta("rollover", wrapped)
    return CounterDelta("reset" if new <= max_delta else "implausible", new)


def _could_make(units: Number, max_rate: Number | None, elapsed_s: float | None) -> bool:
    if max_rate is None:
        return True
    window = Decimal(repr(max(elapsed_s or 0.0, MIN_WINDOW_S)))
    return Decimal(units) <= Decimal(max_rate) * window
