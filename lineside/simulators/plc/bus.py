"""What crossed a simulated RTU line, and requests that overlapped on it."""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pymodbus.pdu import ModbusPDU

log = logging.getLogger("lineside.simulators.plc")

Monotonic = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Transaction:
    unit: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Overlap:
    """A request that arrived while another was still unanswered on the same bus."""

    bus: str
    unit: int
    other_unit: int
    at: float
    message: str


class BusMonitor:
    """Notes every request's arrival and answer, per connection; finds overlaps."""

    def __init__(self, name: str, check_overlap: bool, clock: Monotonic, keep: int = 10_000):
        self._name = name
        self._check = check_overlap
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[int, tuple[int, float]] = {}
        self._connections = itertools.count(1)
        self._violations: list[Overlap] = []
        self._transactions: deque[Transaction] = deque(maxlen=keep)
        self._count = 0

    def new_connection(self) -> int:
        return next(self._connections)

    def trace_pdu(self, connection: int, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        now = self._clock()
        with self._lock:
            if sending:
                self._answered(connection, now)
            else:
                self._arrived(connection, int(pdu.dev_id), now)
        return pdu

    def trace_connect(self, connection: int, connected: bool) -> None:
        if not connected:
            with self._lock:
                self._open.pop(connection, None)

    def unanswered(self, connection: int) -> None:
        """The request gets no answer (a silent unit): the line is free again at once."""
        with self._lock:
            self._open.pop(connection, None)

    def forget_open(self) -> None:
        with self._lock:
            self._open.clear()

    @property
    def violations(self) -> list[Overlap]:
        with self._lock:
            return list(self._violations)

    @property
    def transactions(self) -> list[Transaction]:
        with self._lock:
            return list(self._transactions)

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def _arrived(self, connection: int, unit: int, now: float) -> None:
        if self._check:
            for other_unit, started in self._open.values():
                message = (
                    f"{self._name}: OVERLAP on the bus: a request for unit {unit} arrived while "
                    f"the request for unit {other_unit} (sent {1000 * (now - started):.1f} ms "
                    "earlier) was unanswered"
                )
                log.error("%s", message)
                self._violations.append(Overlap(self._name, unit, other_unit, now, message))
        self._open[connection] = (unit, now)

    def _answered(self, connection: int, now: float) -> None:
        opened = self._open.pop(connection, None)
        if opened is not None:
            self._count += 1
            self._transactions.append(Transaction(opened[0], opened[1], now))
