"""Dosing meters with an ASCII totalizer: config.py (no I/O), driver.py (parsing, pyserial).

Its simulator is lineside.simulators.dosing, one thread per pump.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from lineside.drivers.base import StopFlag
from lineside.drivers.dosing.config import AsciiMeterConfig
from lineside.drivers.spec import DeviceSet, DriverSpec, Job


def _build(devices: Mapping[str, AsciiMeterConfig], clock: Callable[[], datetime]) -> DeviceSet:
    from lineside.drivers.dosing.driver import AsciiMeterDriver

    return DeviceSet([AsciiMeterDriver(name, cfg, clock) for name, cfg in devices.items()])


def _simulate(
    devices: Mapping[str, AsciiMeterConfig], scenario: Mapping[str, Any], stop: StopFlag
) -> list[Job]:
    from lineside.simulators.dosing import simulate_device

    return [
        (name, partial(simulate_device, name, cfg, scenario.get(name) or {}, stop))
        for name, cfg in devices.items()
    ]


def _check_scenario(device: AsciiMeterConfig, section: Any) -> list[str]:
    from lineside.simulators.dosing import PumpScenario

    PumpScenario.model_validate(section or {})
    return []


SPEC = DriverSpec[AsciiMeterConfig](
    "dosing",
    (AsciiMeterConfig,),
    build=_build,
    simulate=_simulate,
    check_scenario=_check_scenario,
)
