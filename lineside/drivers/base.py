"""What every driver hands to the agent (readings, scans, status changes) and how it reconnects."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

MAX_STEPS = 64  # a longer run of failures waits max_s anyway: no float overflow


class DriverModel(BaseModel):
    """Base of every driver's config: unknown keys are errors, never ignored.

    A device config also says what its points are to the agent: the names counters and
    meters may refer to, and, for a point that counts, where it wraps and whether it
    cannot count at all. The defaults fit a device without counting points.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def point_names(self) -> set[str]:
        return set()

    def counter_modulus(self, point: str) -> int | Decimal | None:
        """Where a point read as a counter wraps, in the units it reads; None: it does not."""
        return None

    def counter_problem(self, point: str) -> str | None:
        """Why a point cannot be a counter or a meter's total (after "point DEVICE.POINT")."""
        return None


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one point, or a failed read of it (value None, ok False)."""

    device: str
    point: str
    value: int | Decimal | None
    ts: datetime
    ok: bool = True
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Scan:
    """One barcode as the scanner sent it, symbology prefix and GS separators kept."""

    device: str
    data: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device went down or came back: emitted once per change, not per failed poll."""

    device: str
    state: Literal["up", "down"]
    ts: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PollTime:
    """How long one whole poll of a device took (a measure for the metrics, not a value)."""

    device: str
    seconds: float
    slow: bool  # longer than the device's poll_ms: its readings come less often than asked


Event = Reading | Scan | DeviceStatus | PollTime
Emit = Callable[[Event], None]


class StopFlag(Protocol):
    """A threading.Event or anything with the same two methods."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Driver(Protocol):
    """A device's loop: polls until stopped, reconnects by itself, never raises."""

    name: str

    def run(self, stop: StopFlag, emit: Emit) -> None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays: initial_s, then times factor each retry, capped at max_s for good.

    One rule for every loop that retries: drivers reconnecting, the sync and Sparkplug
    links, the Supervisor restarting a driver. jitter spreads each delay by up to that
    fraction either way, so that many gateways that lost the same broker do not all come
    back in step. Frozen, so one instance can be shared by many drivers and threads (a
    default argument, a test's fast preset); each retry sequence is its own ``delays()``
    iterator (or a count of failures for ``delay``), and starting over after a success is
    taking a fresh one.
    """

    initial_s: float = 0.5
    max_s: float = 10.0
    factor: float = 2.0
    jitter: float = 0.0

    def delay(self, failures: int) -> float:
        """The pause after the failures-th failure in a row (1 for the first)."""
        steps = min(max(failures - 1, 0), MAX_STEPS)
        base = min(self.max_s, self.initial_s * self.factor**steps)
        if not self.jitter:
            return base
        return float(base * random.uniform(1 - self.jitter, 1 + self.jitter))

    def delays(self) -> Iterator[float]:
        failures = 1
        while True:
            yield self.delay(failures)
            failures += 1
