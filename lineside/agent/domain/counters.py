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


def interpret(
    last: Number | None, new: Number, width_bits: int | None, max_delta: Number
) -> CounterDelta:
    """Compare a fresh reading with the last one seen.

    The first reading ever is a baseline. A drop is a rollover when the wrap-around
    delta at the counter's width is plausible (at most max_delta, and at most half the
    counter's range), otherwise a reset, which counts from 0. A forward jump above
    max_delta is 'implausible': held for a person to look at, never posted on its own.
    """
    if last is None:
        return CounterDelta("baseline", 0)
    if new == last:
        return CounterDelta("unchanged", 0)
    if new > last:
        delta = new - last
        return CounterDelta("delta" if delta <= max_delta else "implausible", delta)
    if width_bits is not None and width_bits > 1:
        # A wrap is only believable from the top half of the range to the bottom half:
        # a 16-bit counter dropping from 500 to 0 was reset, not 65,036 units further.
        wrapped = (2**width_bits - last) + new
        if 0 < wrapped <= min(max_delta, 2 ** (width_bits - 1)):
            return CounterDelta("rollover", wrapped)
    return CounterDelta("reset" if new <= max_delta else "implausible", new)
