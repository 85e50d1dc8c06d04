"""Serial barcode scanners: configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lineside.drivers.base import DriverModel


class SerialScannerConfig(DriverModel):
    driver: Literal["serial_scanner"]
    port: str
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    terminator: str = "CR"
    max_length: int = Field(default=512, ge=8, le=65536)
    work_center: str

    def point_names(self) -> set[str]:
        return set()
