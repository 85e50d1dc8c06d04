"""Serial barcode scanners: config.py (no I/O), driver.py (pyserial, imported only to run).

Its simulator is lineside.simulators.scanner, one thread per scanner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from lineside.drivers.base import StopFlag
from lineside.drivers.scanner.config import SerialScannerConfig
from lineside.drivers.spec import DeviceSet, DriverSpec, Job


def _build(devices: Mapping[str, SerialScannerConfig], clock: Callable[[], datetime]) -> DeviceSet:
    from lineside.drivers.scanner.driver import SerialScannerDriver

    return DeviceSet([SerialScannerDriver(name, cfg, clock) for name, cfg in devices.items()])


def _simulate(
    devices: Mapping[str, SerialScannerConfig], scenario: Mapping[str, Any], stop: StopFlag
) -> list[Job]:
    from lineside.simulators.scanner import simulate_device

    return [
        (name, partial(simulate_device, name, cfg, scenario.get(name), stop))
        for name, cfg in devices.items()
    ]


def _check_scenario(device: SerialScannerConfig, section: Any) -> list[str]:
    from lineside.simulators.scanner import ScannerScenario

    ScannerScenario.model_validate(section or [])
    return []


SPEC = DriverSpec[SerialScannerConfig](
    "scanner",
    (SerialScannerConfig,),
    build=_build,
    simulate=_simulate,
    check_scenario=_check_scenario,
)
