"""Drivers for a config's devices: the one place that knows every driver class."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from lineside.clock import utc_now
from lineside.drivers.base import Driver
from lineside.drivers.dosing import AsciiMeterConfig, AsciiMeterDriver
from lineside.drivers.modbus_driver import build_modbus_drivers
from lineside.drivers.modbus_rtu import RtuBus
from lineside.drivers.scanner import SerialScannerConfig, SerialScannerDriver


@dataclass
class DeviceSet:
    """Drivers ready to run, and the shared RTU buses to close once they have stopped."""

    drivers: list[Driver]
    buses: dict[str, RtuBus] = field(default_factory=dict)

    def close(self) -> None:
        for bus in self.buses.values():
            bus.close()


def build_drivers(
    devices: Mapping[str, object], clock: Callable[[], datetime] = utc_now
) -> DeviceSet:
    """Nothing is opened here: each driver opens its port in its own thread."""
    modbus, buses = build_modbus_drivers(devices, clock)
    drivers: list[Driver] = list(modbus)
    for name, cfg in devices.items():
        if isinstance(cfg, SerialScannerConfig):
            drivers.append(SerialScannerDriver(name, cfg, clock))
        elif isinstance(cfg, AsciiMeterConfig):
            drivers.append(AsciiMeterDriver(name, cfg, clock))
    return DeviceSet(drivers, buses)
