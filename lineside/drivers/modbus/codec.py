"""Pure Modbus decoding: registers and bits to exact values, and which reads to issue.

No I/O here, so every function is unit-tested on its own. Conventions:

- Bytes within a register are big-endian (the Modbus standard, never configurable);
  ``word_order`` says whether the first register holds the most (big) or least
  (little) significant word of a 32/64-bit value.
- Values leave as ``int`` (integers with scale 1, and bits as 0/1) or ``Decimal``;
  never ``float``. A float is converted through the shortest decimal that reads
  back as the same float32/float64, so a PLC's 0.1f becomes Decimal("0.1"), not
  Decimal("0.100000001490116...").
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from lineside.drivers.modbus.config import BIT_TABLES, ModbusPoint, PointType, Table, WordOrder

# Modbus limits per request (application protocol spec, 6.1-6.4).
MAX_READ_REGISTERS = 125
MAX_READ_BITS = 2000

_STRUCT: dict[str, str] = {
    "uint16": "H",
    "int16": "h",
    "uint32": "I",
    "int32": "i",
    "float32": "f",
    "uint64": "Q",
    "float64": "d",
}
_FLOAT_TYPES = frozenset({"float32", "float64"})


class DecodeError(ValueError):
    """The device answered, but the words cannot be a value of the point's type."""


def register_count(point_type: PointType) -> int:
    """Registers a register-table value occupies."""
    if point_type == "bool":
        raise ValueError("bool is a bit, not a register value")
    return struct.calcsize(_STRUCT[point_type]) // 2


def decode_registers(
    registers: Sequence[int], point_type: PointType, word_order: WordOrder = "big"
) -> int | float:
    """Registers (as read, lowest address first) to the raw int or float they encode."""
    count = register_count(point_type)
    if len(registers) != count:
        raise DecodeError(f"{point_type} needs {count} registers, got {len(registers)}")
    words = list(registers) if word_order == "big" else list(reversed(registers))
    try:
        raw = b"".join(word.to_bytes(2, "big") for word in words)
    except OverflowError as exc:
        raise DecodeError(f"register out of 0..65535: {list(registers)}") from exc
    value: int | float = struct.unpack(">" + _STRUCT[point_type], raw)[0]
    return value


def encode_registers(
    value: int | float, point_type: PointType, word_order: WordOrder = "big"
) -> list[int]:
    """The inverse of decode_registers (used by the simulator and the round-trip tests)."""
    raw = struct.pack(">" + _STRUCT[point_type], value)
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return words if word_order == "big" else list(reversed(words))


def float_to_decimal(value: float, point_type: PointType = "float64") -> Decimal:
    """The shortest decimal that reads back as the same float32/float64, in plain notation."""
    if not math.isfinite(value):
        raise DecodeError(f"not a finite number: {value}")
    text = _shortest_float32(value) if point_type == "float32" else repr(value)
    # Fixed-point digits: "1e+10" must not become Decimal("1E+10") (a positive exponent
    # surprises quantize and str), and "10000000000.0" carries no extra information.
    plain = format(Decimal(text), "f")
    if "." in plain:
        plain = plain.rstrip("0").rstrip(".")
    return Decimal(plain)


def _shortest_float32(value: float) -> str:
    packed = struct.pack(">f", value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        try:
            if struct.pack(">f", float(text)) == packed:
                return text
        except OverflowError:  # rounding up near the float32 maximum leaves its range
            continue
    return repr(value)  # unreachable: 9 significant digits always round-trip a float32


def exact_value(raw: int | float | bool, point_type: PointType, scale: Decimal) -> int | Decimal:
    """Apply the point's scale; ints stay ints at scale 1, everything else is a Decimal."""
    if point_type in _FLOAT_TYPES:
        number = float_to_decimal(float(raw), point_type)
        return number if scale == 1 else number * scale
    integer = int(raw)
    return integer if scale == 1 else Decimal(integer) * scale


def decode_point(point: ModbusPoint, words: Sequence[int] | Sequence[bool]) -> int | Decimal:
    """One point's words (or its single bit) as read, to its exact scaled value."""
    if point.type == "bool":
        if len(words) != 1:
            raise DecodeError(f"bool needs 1 bit, got {len(words)}")
        return exact_value(bool(words[0]), "bool", point.scale)
    raw = decode_registers([int(w) for w in words], point.type, point.word_order)
    return exact_value(raw, point.type, point.scale)


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One request: a run of contiguous addresses in one table, and the points inside it."""

    table: Table
    address: int
    count: int
    points: tuple[tuple[str, ModbusPoint], ...]

    def point_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.points)

    def slice_for(self, point: ModbusPoint, values: Sequence[int] | Sequence[bool]) -> list[int]:
        """The words (or bit) of one point out of this block's response."""
        offset = point.address - self.address
        return [int(v) for v in values[offset : offset + point.span()]]


def plan_reads(
    points: Mapping[str, ModbusPoint],
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
) -> list[ReadBlock]:
    """Group points into as few requests as possible without reading across gaps.

    Points that touch or overlap in one table share a request, up to the protocol's
    per-request limit; a gap starts a new request because a PLC may answer a read of
    an unmapped address with an exception, which would fail the good points too.
    """
    blocks: list[ReadBlock] = []
    for table in ("holding", "input", "coil", "discrete"):
        mine = sorted(
            ((n, p) for n, p in points.items() if p.table == table),
            key=lambda item: (item[1].address, -item[1].span(), item[0]),
        )
        limit = max_bits if table in BIT_TABLES else max_registers
        blocks.extend(_group(table, mine, limit))
    return blocks


def _group(table: Table, points: list[tuple[str, ModbusPoint]], limit: int) -> list[ReadBlock]:
    blocks: list[ReadBlock] = []
    members: list[tuple[str, ModbusPoint]] = []
    start = end = 0
    for name, point in points:
        point_end = point.address + point.span()
        if members and point.address <= end and max(end, point_end) - start <= limit:
            members.append((name, point))
            end = max(end, point_end)
            continue
        if members:
            blocks.append(ReadBlock(table, start, end - start, tuple(members)))
        members, start, end = [(name, point)], point.address, point_end
    if members:
        blocks.append(ReadBlock(table, start, end - start, tuple(members)))
    return blocks
