"""Dosing meters speaking a line-based ASCII protocol: configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lineside.drivers.base import DriverModel

DEFAULT_PATTERN = r"^TOT=\s*(?P<value>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>mL|ml|L|l)?\s*$"


class AsciiMeterConfig(DriverModel):
    driver: Literal["ascii_meter"]
    port: str
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    pattern: str = DEFAULT_PATTERN
    unit: Literal["l", "ml"] = "l"
    point: str = "total"

    def point_names(self) -> set[str]:
        return {self.point}
