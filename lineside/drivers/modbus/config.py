"""Modbus TCP and RTU: configuration of devices and points, validated without any I/O.

The drivers live in ``client`` (polling loops) and ``rtu`` (the RTU bus), the pure
register decoding in ``codec``; this module is what the config loader imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from lineside.drivers.base import DriverModel

PointType = Literal["uint16", "int16", "uint32", "int32", "float32", "uint64", "float64", "bool"]
Table = Literal["holding", "input", "coil", "discrete"]
WordOrder = Literal["big", "little"]

WIDTH_BITS: dict[str, int] = {
    "uint16": 16,
    "int16": 16,
    "uint32": 32,
    "int32": 32,
    "float32": 32,
    "uint64": 64,
    "float64": 64,
    "bool": 1,
}

BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete"})


def point_span(point_type: str) -> int:
    """How many addresses a point occupies: registers for words, one for a bit."""
    return 1 if point_type == "bool" else WIDTH_BITS[point_type] // 16


class ModbusPoint(DriverModel):
    address: int = Field(ge=0, le=65535)
    type: PointType = "uint16"
    table: Table = "holding"
    word_order: WordOrder = "big"
    scale: Decimal = Field(default=Decimal(1), gt=0, le=1_000_000)

    @model_validator(mode="after")
    def _fits_table(self) -> ModbusPoint:
        # A bit table holds bits and a register table holds words; mixing them would
        # read something else than the technician meant, so refuse it up front.
        if (self.table in BIT_TABLES) != (self.type == "bool"):
            if self.type == "bool":
                raise ValueError("type bool needs table coil or discrete")
            raise ValueError(f"table {self.table} holds bits: use type bool")
        if self.address + point_span(self.type) > 65536:
            raise ValueError(f"a {self.type} at address {self.address} runs past 65535")
        return self

    def counter_width(self) -> int:
        return WIDTH_BITS[self.type]

    def span(self) -> int:
        return point_span(self.type)


class ModbusDevice(DriverModel):
    """What TCP and RTU devices share: their points, and what those mean as counters."""

    if TYPE_CHECKING:  # each device declares it last, where its errors are reported last
        points: dict[str, ModbusPoint]

    def point_names(self) -> set[str]:
        return set(self.points)

    def counter_modulus(self, point: str) -> int | Decimal | None:
        spec = self.points.get(point)
        if spec is None or not spec.type.startswith(("uint", "int")):
            return None  # a float does not wrap
        modulus: int = 2 ** spec.counter_width()
        return modulus if spec.scale == 1 else Decimal(modulus) * spec.scale

    def counter_problem(self, point: str) -> str | None:
        # A counter only counts up and wraps: a signed type would read the upper half of
        # its range as negative numbers, so it is refused rather than guessed at.
        kind = self.points[point].type if point in self.points else ""
        if kind not in ("int16", "int32"):
            return None
        return (
            f"is {kind}, a signed type: counters and meter totals count"
            f" up and wrap, so read the same register as u{kind} (a signed one reads"
            " the upper half of its range as negative numbers)"
        )


class ModbusTcpConfig(ModbusDevice):
    driver: Literal["modbus_tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=255)
    poll_ms: int = Field(default=1000, ge=50, le=3_600_000)
    timeout_ms: int = Field(default=1000, ge=50, le=60_000)
    points: dict[str, ModbusPoint] = Field(min_length=1)


class ModbusRtuConfig(ModbusDevice):
    driver: Literal["modbus_rtu"]
    port: str
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit: int = Field(default=1, ge=1, le=247)  # 0 is broadcast: it never answers
    poll_ms: int = Field(default=1000, ge=50, le=3_600_000)
    timeout_ms: int = Field(default=1000, ge=50, le=60_000)
    pause_ms: int = Field(default=20, ge=0, le=10_000)
    points: dict[str, ModbusPoint] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class RtuPortConflict:
    """Two modbus_rtu devices on one port that cannot share it; key is the offending setting."""

    device: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"devices.{self.device}.{self.key}: {self.message}"


_LINE_SETTINGS = ("baudrate", "parity", "stopbits", "bytesize")


def rtu_port_conflicts(devices: Mapping[str, ModbusRtuConfig]) -> list[RtuPortConflict]:
    """Devices on one serial port share its line settings and need distinct unit ids.

    Pure: compares configs only. The first device (in the given order) on each port
    sets the line; every later device that disagrees is reported against it.
    """
    first_on_port: dict[str, tuple[str, ModbusRtuConfig]] = {}
    units: dict[tuple[str, int], str] = {}
    problems: list[RtuPortConflict] = []
    for name, config in devices.items():
        owner, reference = first_on_port.setdefault(config.port, (name, config))
        for key in _LINE_SETTINGS:
            mine, theirs = getattr(config, key), getattr(reference, key)
            if mine != theirs:
                problems.append(
                    RtuPortConflict(
                        name,
                        key,
                        f"{key} {mine} differs from {theirs} of device {owner} on the same port "
                        f"{config.port}: one serial line has one {key}",
                    )
                )
        other = units.setdefault((config.port, config.unit), name)
        if other != name:
            problems.append(
                RtuPortConflict(
                    name,
                    "unit",
                    f"unit {config.unit} is already used by device {other} on port {config.port}",
                )
            )
    return problems
