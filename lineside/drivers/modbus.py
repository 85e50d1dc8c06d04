"""Modbus TCP and RTU: configuration of devices and points."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from lineside.drivers.base import DriverModel

PointType = Literal["uint16", "int16", "uint32", "int32", "float32", "uint64", "float64", "bool"]

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


class ModbusPoint(DriverModel):
    address: int = Field(ge=0, le=65535)
    type: PointType = "uint16"
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    word_order: Literal["big", "little"] = "big"
    scale: Decimal = Field(default=Decimal(1), gt=0)

    def counter_width(self) -> int:
        return WIDTH_BITS[self.type]


class ModbusTcpConfig(DriverModel):
    driver: Literal["modbus_tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=255)
    poll_ms: int = Field(default=1000, ge=50, le=3_600_000)
    timeout_ms: int = Field(default=1000, ge=50, le=60_000)
    points: dict[str, ModbusPoint] = Field(min_length=1)

    def point_names(self) -> set[str]:
        return set(self.points)


class ModbusRtuConfig(DriverModel):
    driver: Literal["modbus_rtu"]
    port: str
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit: int = Field(default=1, ge=0, le=247)
    poll_ms: int = Field(default=1000, ge=50, le=3_600_000)
    timeout_ms: int = Field(default=1000, ge=50, le=60_000)
    pause_ms: int = Field(default=20, ge=0, le=10_000)
    points: dict[str, ModbusPoint] = Field(min_length=1)

    def point_names(self) -> set[str]:
        return set(self.points)
