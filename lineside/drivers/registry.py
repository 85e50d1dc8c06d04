"""The drivers lineside knows: one spec per driver folder, the one place that lists them.

Adding a driver is adding its spec to SPECS (docs/architecture.md, "Adding a driver").
Importing this module imports the drivers' config models only, never pymodbus or
pyserial: the config imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Union

from pydantic import Field

from lineside.clock import utc_now
from lineside.drivers import dosing, modbus, scanner
from lineside.drivers.base import DriverModel
from lineside.drivers.spec import DeviceProblem, DeviceSet, DriverSpec

__all__ = ["SPECS", "DeviceSet", "build_drivers", "device_problems", "device_union"]

SPECS: list[DriverSpec[Any]] = [
    modbus.SPEC,
    scanner.SPEC,
    dosing.SPEC,
]


def register(spec: DriverSpec[Any]) -> Callable[[], None]:
    """Add a driver that lives outside lineside (a test's); returns what removes it again."""
    SPECS.append(spec)
    return lambda: SPECS.remove(spec)


def driver_names() -> list[str]:
    """Every `driver:` name, in the order of the specs."""
    return [name for spec in SPECS for name in spec.driver_names()]


def device_union() -> Any:
    """The type of one `devices:` entry: the specs' configs, told apart by `driver:`."""
    configs = tuple(config for spec in SPECS for config in spec.configs)
    return Annotated[Union[configs], Field(discriminator="driver")]  # noqa: UP007


def spec_of(device: DriverModel) -> DriverSpec[Any] | None:
    return next((spec for spec in SPECS if isinstance(device, spec.configs)), None)


def build_drivers(
    devices: Mapping[str, DriverModel], clock: Callable[[], datetime] = utc_now
) -> DeviceSet:
    """Nothing is opened here: each driver opens its port in its own thread."""
    built = DeviceSet([])
    for spec in SPECS:
        mine = spec.devices(devices)
        if mine:
            part = spec.build(mine, clock)
            built.drivers.extend(part.drivers)
            built.closers.extend(part.closers)
    return built


def device_problems(devices: Mapping[str, DriverModel]) -> list[DeviceProblem]:
    """What each driver finds wrong among its devices together (shared ports, unit ids)."""
    return [problem for spec in SPECS for problem in spec.problems(spec.devices(devices))]
