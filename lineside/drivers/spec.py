"""What a driver tells the rest of lineside about itself: one DriverSpec per driver folder.

The config, the agent's start-up, `lineside simulate` and its scenario check all loop
over the registry's specs (``lineside.drivers.registry``) instead of naming drivers.
A spec is imported with the config, so it names its config models directly but
imports its driver and simulator modules (pymodbus, pyserial) only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from importlib import import_module
from typing import Any, Generic, TypeVar, get_args

from lineside.drivers.base import Driver, DriverModel, StopFlag

C = TypeVar("C", bound=DriverModel)
Job = tuple[str, Callable[[], None]]
"""A simulator to run in a thread of its own: the thread's name, and what it runs."""


@dataclass
class DeviceSet:
    """Drivers ready to run, and what to close once they have stopped (shared RTU buses)."""

    drivers: list[Driver]
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()


@dataclass(frozen=True, slots=True)
class DeviceProblem:
    """A problem among several devices of a driver: the device, its key, and why."""

    device: str
    key: str
    message: str


def _no_problems(devices: Mapping[str, Any]) -> list[DeviceProblem]:
    return []


@dataclass(frozen=True)
class DriverSpec(Generic[C]):
    """One driver: its config models, how to build it, simulate it and check a scenario.

    configs: one pydantic model per `driver:` name the driver answers to, each with a
      `driver: Literal["NAME"]` field (the config's device union is built from these).
    build(devices, clock): the drivers of this spec's devices, opening nothing.
    simulate(devices, scenario, stop): the simulator jobs serving those devices.
    check_scenario(device, section): what in a device's scenario section does not fit it
      (name: problem); raises pydantic's ValidationError for a section that is invalid.
    problems(devices): what no single device's config can see (two on one serial port).
    scenario_tags: the tags of discriminated unions in the scenario model, which its
      errors' key paths leave out.
    """

    name: str
    configs: tuple[type[C], ...]
    build: Callable[[Mapping[str, C], Callable[[], datetime]], DeviceSet]
    simulate: Callable[[Mapping[str, C], Mapping[str, Any], StopFlag], list[Job]]
    check_scenario: Callable[[C, Any], list[str]]
    problems: Callable[[Mapping[str, C]], Sequence[DeviceProblem]] = _no_problems
    scenario_tags: tuple[str, ...] = ()

    def driver_names(self) -> list[str]:
        """The `driver:` names, in the order of configs."""
        return [name for config in self.configs for name in literal_names(config)]

    def devices(self, devices: Mapping[str, DriverModel]) -> dict[str, C]:
        """The devices among all that this driver runs, in their order."""
        return {name: cfg for name, cfg in devices.items() if isinstance(cfg, self.configs)}


def one_per_device(name: str, config: type[C], driver: str, empty: Any) -> DriverSpec[C]:
    """The spec of a driver with one driver and one simulator thread per device.

    driver is the class in the driver folder's driver.py, built as driver(name, config,
    clock); lineside.simulators.NAME has simulate_device(name, config, section, stop)
    and its section's model SCENARIO; empty is the section of a device not in a scenario.
    """
    driver_module = config.__module__.rpartition(".")[0] + ".driver"
    simulator = f"lineside.simulators.{name}"

    def build(devices: Mapping[str, C], clock: Callable[[], datetime]) -> DeviceSet:
        make = getattr(import_module(driver_module), driver)
        return DeviceSet([make(device, cfg, clock) for device, cfg in devices.items()])

    def simulate(
        devices: Mapping[str, C], scenario: Mapping[str, Any], stop: StopFlag
    ) -> list[Job]:
        serve = import_module(simulator).simulate_device
        return [
            (device, partial(serve, device, cfg, scenario.get(device) or empty, stop))
            for device, cfg in devices.items()
        ]

    def check_scenario(device: C, section: Any) -> list[str]:
        import_module(simulator).SCENARIO.model_validate(section or empty)
        return []

    return DriverSpec(name, (config,), build, simulate, check_scenario)


def literal_names(config: type[DriverModel]) -> tuple[str, ...]:
    """The names a config's `driver: Literal[...]` field accepts."""
    annotation = config.model_fields["driver"].annotation
    return tuple(str(name) for name in get_args(annotation))
