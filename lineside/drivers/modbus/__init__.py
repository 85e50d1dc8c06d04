"""Modbus TCP and RTU: config.py (devices and points), codec.py and frames.py (pure),
links.py, rtu.py and client.py (pymodbus and pyserial, imported only to run devices).

Its simulator is lineside.simulators.plc: one thread serves every Modbus device, since
devices on one address share a listener.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from lineside.drivers.base import StopFlag
from lineside.drivers.modbus.config import ModbusRtuConfig, ModbusTcpConfig
from lineside.drivers.modbus.config import rtu_port_conflicts as _rtu_port_conflicts
from lineside.drivers.spec import DeviceProblem, DeviceSet, DriverSpec, Job

ModbusDevice = ModbusTcpConfig | ModbusRtuConfig


def _build(devices: Mapping[str, ModbusDevice], clock: Callable[[], datetime]) -> DeviceSet:
    from lineside.drivers.modbus.client import build_modbus_drivers

    drivers, buses = build_modbus_drivers(devices, clock)
    return DeviceSet(list(drivers), [bus.close for bus in buses.values()])


def _simulate(
    devices: Mapping[str, ModbusDevice], scenario: Mapping[str, Any], stop: StopFlag
) -> list[Job]:
    from lineside.simulators.plc import simulate_devices

    return [("plc", lambda: simulate_devices(devices, scenario, stop))]


def _check_scenario(device: ModbusDevice, section: Any) -> list[str]:
    from lineside.simulators.plc.scenario import DeviceScenario, scenario_problems

    return scenario_problems(DeviceScenario.model_validate(section or {}), device)


def _problems(devices: Mapping[str, ModbusDevice]) -> list[DeviceProblem]:
    rtu = {n: d for n, d in devices.items() if isinstance(d, ModbusRtuConfig)}
    return [DeviceProblem(c.device, c.key, c.message) for c in _rtu_port_conflicts(rtu)]


SPEC = DriverSpec[ModbusDevice](
    "modbus",
    (ModbusTcpConfig, ModbusRtuConfig),
    build=_build,
    simulate=_simulate,
    check_scenario=_check_scenario,
    problems=_problems,
    # lineside.simulators.plc.scenario.EVENT_TAGS, which imports pymodbus
    scenario_tags=tuple(
        f"{kind} event" for kind in ("set", "reset", "rate", "offline", "silent", "exception")
    ),
)
