"""Readings that wait in memory for their commit.

A counter is re-readable: while a reading waits, the PLC keeps the count and the ledger
keeps the point's last committed value, so a reading lost with the process is read again
and its change recomputed from that value. Only a reading that moves its point plainly
forward may wait; anything whose meaning depends on the values in between (a reset, a
rollover, a jump above max_delta) is committed at once, after the readings that wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

from lineside.agent.domain.counters import Number, counter_change

Value = int | Decimal


class AReading(Protocol):
    """What the accumulator needs of a reading: its point and value (the rest rides along)."""

    @property
    def point(self) -> str: ...

    @property
    def value(self) -> Value: ...


R = TypeVar("R", bound=AReading)


@dataclass
class WaitingReadings(Generic[R]):
    """Readings gathered for one commit.

    window_s 0: every reading is kept, so each posts on its own, as without waiting.
    window_s > 0: a point's newer reading replaces its older one, so the commit posts
    the whole change since the last committed value once: one completion and one
    consumption per lot for the window instead of one per poll.
    due after the longer of commit_interval_s and window_s from the first reading.
    """

    commit_interval_s: float
    window_s: float
    readings: list[R] = field(default_factory=list)
    _at: dict[str, int] = field(default_factory=dict)  # point -> its reading's index
    opened: float | None = None  # monotonic seconds of the first reading

    def value_of(self, point: str) -> Value | None:
        index = self._at.get(point)
        return None if index is None else self.readings[index].value

    def may_wait(
        self,
        reading: R,
        committed: Number | None,
        modulus: Number | None,
        max_delta: Number,
    ) -> bool:
        """Whether reading only moves its point forward, from what waits and, when it
        will replace that, from the committed value too."""
        if committed is None:
            return False  # nothing to count from in memory: the ledger decides
        waiting = self.value_of(reading.point)
        steps = [waiting if waiting is not None else committed]
        if self.window_s > 0 and waiting is not None:
            steps.append(committed)
        return all(
            counter_change(last, reading.value, modulus, max_delta).kind in ("delta", "unchanged")
            for last in steps
        )

    def add(self, reading: R, now: float) -> None:
        if self.opened is None:
            self.opened = now
        index = self._at.get(reading.point)
        if self.window_s > 0 and index is not None:
            self.readings[index] = reading
            return
        self._at[reading.point] = len(self.readings)
        self.readings.append(reading)

    def due_in(self, now: float) -> float | None:
        """Seconds until the readings are due (0 when they are), None when none wait."""
        if self.opened is None:
            return None
        return max(0.0, self.opened + max(self.commit_interval_s, self.window_s) - now)

    def take(self) -> list[R]:
        """The readings in the order they came; nothing waits afterwards."""
        readings, self.readings, self._at, self.opened = self.readings, [], {}, None
        return readings
