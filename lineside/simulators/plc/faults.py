"""The faults a simulated PLC was told to give, each until a moment: exception answers
(to every request, a unit's, or those covering one point) and silent units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lineside.drivers.modbus.config import BIT_TABLES, Table, point_span
from lineside.simulators.plc.counter import SimPoint


@dataclass(slots=True)
class Fault:
    code: int
    until: float
    unit: int | None
    point: str | None


class Faults:
    """Not thread-safe on its own: the simulator's lock guards it."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._silent_until: dict[int, float] = {}

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def silence(self, unit: int, until: float) -> None:
        self._silent_until[unit] = until

    def silent(self, unit: int, now: float) -> bool:
        return self._silent_until.get(unit, 0.0) > now

    def code(
        self,
        unit: int,
        table: Table,
        address: int,
        count: int,
        now: float,
        points: Mapping[str, SimPoint],
    ) -> int | None:
        """The exception a request for count addresses from address gets now, if any."""
        self._faults = [f for f in self._faults if f.until > now]
        # For bit tables pymodbus passes a count of 16-bit registers: widen to match.
        end = address + (count * 16 if table in BIT_TABLES else count)
        for fault in self._faults:
            if fault.unit is not None and fault.unit != unit:
                continue
            if fault.point is None:
                return fault.code
            spec = points[fault.point]
            if (
                spec.table == table
                and spec.address < end
                and address < spec.address + (point_span(spec.type))
            ):
                return fault.code
        return None
