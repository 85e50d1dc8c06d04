"""A simulated PLC's points: counters as functions of time, wrapping like registers,
and the pymodbus register blocks they are served from."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pymodbus.simulator import DataType, SimData

from lineside.drivers.modbus.codec import encode_registers
from lineside.drivers.modbus.config import (
    BIT_TABLES,
    WIDTH_BITS,
    ModbusPoint,
    PointType,
    Table,
    WordOrder,
    point_span,
)

_TABLES: tuple[Table, ...] = ("coil", "discrete", "holding", "input")


@dataclass(frozen=True, slots=True)
class SimPoint:
    """Where a point lives, how it is encoded, what it starts at and how fast it counts."""

    address: int
    type: PointType = "uint16"
    table: Table = "holding"
    word_order: WordOrder = "big"
    value: int | float = 0
    rate_per_s: float = 0.0

    @classmethod
    def from_config(
        cls, point: ModbusPoint, value: int | float = 0, rate_per_s: float = 0.0
    ) -> SimPoint:
        return cls(point.address, point.type, point.table, point.word_order, value, rate_per_s)


def wrap_int(value: int, point_type: PointType) -> int:
    """An integer as the PLC's register of that width holds it (two's complement if signed)."""
    if point_type == "bool":
        return 1 if value else 0
    bits = WIDTH_BITS[point_type]
    value %= 1 << bits
    if point_type.startswith("int") and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


class Counter:
    """One point's value as a function of time: base + rate × elapsed, wrapped to its type.

    Computed when read rather than ticked, so values are exact at any poll rate.
    Integer counters keep the fraction of a unit they have made so far across
    rate changes, so a rate of 0.5/s counts one unit every two seconds.
    """

    def __init__(self, spec: SimPoint, now: float) -> None:
        self.spec = spec
        self._rate = float(spec.rate_per_s)
        self._t0 = now
        self._fraction = 0.0
        self._base: int | float = self._coerce(spec.value)

    def value_at(self, now: float) -> int | float:
        progress = self._rate * (now - self._t0)
        if self._is_float():
            return float(self._base) + progress
        return wrap_int(int(self._base) + math.floor(self._fraction + progress), self.spec.type)

    def words_at(self, now: float) -> list[int]:
        """The registers of the value (or [0]/[1] for a bit)."""
        value = self.value_at(now)
        if self.spec.type == "bool":
            return [1 if value else 0]
        return encode_registers(value, self.spec.type, self.spec.word_order)

    def set(self, value: int | float, now: float) -> None:
        self._base, self._t0, self._fraction = self._coerce(value), now, 0.0

    def advance(self, delta: int | float, now: float) -> None:
        self._rebase(now)
        self._base = self._coerce(self._base + delta)

    def set_rate(self, rate_per_s: float, now: float) -> None:
        self._rebase(now)
        self._rate = float(rate_per_s)

    def _rebase(self, now: float) -> None:
        progress = self._rate * (now - self._t0)
        if self._is_float():
            self._base = float(self._base) + progress
        else:
            total = self._fraction + progress
            whole = math.floor(total)
            self._base, self._fraction = (
                wrap_int(int(self._base) + whole, self.spec.type),
                (total - whole),
            )
        self._t0 = now

    def _coerce(self, value: int | float) -> int | float:
        if self._is_float():
            return float(value)
        return wrap_int(int(value), self.spec.type)

    def _is_float(self) -> bool:
        return self.spec.type in ("float32", "float64")


def store_registers(counter: Counter, start: int, registers: list[int], now: float) -> None:
    """Write a counter's current value into pymodbus' register list of its table."""
    spec = counter.spec
    words = counter.words_at(now)
    if spec.table in BIT_TABLES:
        # Bit blocks are packed 16 to a register, bit 0 first; start counts registers.
        index, bit = spec.address // 16 - start, spec.address % 16
        if words[0]:
            registers[index] |= 1 << bit
        else:
            registers[index] &= ~(1 << bit)
        return
    offset = spec.address - start
    registers[offset : offset + len(words)] = words


def register_blocks(
    points: Iterable[SimPoint],
) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
    """pymodbus blocks for (coils, discrete inputs, holding, input registers).

    Only the points' own addresses are valid (reading a gap answers exception 2, as
    a strict PLC does) and everything is read-only: the PLC owns its counters.
    """
    ranges: dict[Table, list[tuple[int, int]]] = {t: [] for t in _TABLES}
    for spec in points:
        ranges[spec.table].append((spec.address, spec.address + point_span(spec.type)))
    blocks: list[list[SimData]] = []
    for table in _TABLES:
        merged = _merge(ranges[table])
        if table in BIT_TABLES:
            # pymodbus needs at least one entry per table; a lone bit at 0 is harmless.
            merged = merged or [(0, 1)]
            blocks.append(
                [
                    SimData(a, values=[False] * (b - a), datatype=DataType.BITS, readonly=True)
                    for a, b in merged
                ]
            )
        elif merged:
            blocks.append(
                [
                    SimData(a, count=b - a, datatype=DataType.REGISTERS, readonly=True)
                    for a, b in merged
                ]
            )
        else:
            blocks.append([SimData(0, datatype=DataType.INVALID)])
    return blocks[0], blocks[1], blocks[2], blocks[3]


def _merge(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def raw_number(point_type: PointType, value: Decimal) -> int | float:
    return float(value) if point_type in ("float32", "float64") else int(value)
