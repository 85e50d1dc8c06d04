"""`lineside simulate`: stand in for every device a config names, driven by a scenario file.

A scenario maps device names to sections; each simulator module documents its own
section (simulators/plc.py, scanner.py, dosing.py and docs/simulators.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from lineside.agent.config import LinesideConfig
from lineside.drivers.base import StopFlag
from lineside.drivers.dosing import AsciiMeterConfig
from lineside.drivers.modbus import ModbusRtuConfig, ModbusTcpConfig
from lineside.drivers.scanner import SerialScannerConfig
from lineside.simulators import dosing, plc, scanner

log = logging.getLogger("lineside.simulators")


def unknown_devices(config: LinesideConfig, scenario: Mapping[str, Any]) -> list[str]:
    return sorted(set(scenario) - set(config.devices))


def scenario_problems(config: LinesideConfig, scenario: Mapping[str, Any]) -> list[str]:
    """Every section checked against its device before anything starts: name: problem."""
    problems = [
        f"{name}: no such device in the config" for name in unknown_devices(config, scenario)
    ]
    for name, device in config.devices.items():
        section = scenario.get(name)
        port = getattr(device, "port", None)
        if isinstance(device, ModbusRtuConfig | SerialScannerConfig | AsciiMeterConfig) and (
            isinstance(port, str) and port.startswith("/dev/")
        ):
            problems.append(
                f"{name}: its port {port} is real hardware; to simulate it, give it"
                " a socket://127.0.0.1:PORT port in a copy of the config"
            )
            continue
        try:
            if isinstance(device, ModbusTcpConfig | ModbusRtuConfig):
                model = plc.DeviceScenario.model_validate(section or {})
                problems += [f"{name}.{p}" for p in plc.scenario_problems(model, device)]
            elif isinstance(device, SerialScannerConfig):
                scanner.ScannerScenario.model_validate(section or [])
            elif isinstance(device, AsciiMeterConfig):
                dosing.PumpScenario.model_validate(section or {})
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                problems.append(
                    f"{name}.{where}: {err['msg']}" if where else f"{name}: {err['msg']}"
                )
    return problems


def start_all(
    config: LinesideConfig, scenario: Mapping[str, Any], stop: StopFlag
) -> list[threading.Thread]:
    """One thread for all Modbus devices (they share listeners) and one per serial device."""
    modbus = {
        n: d for n, d in config.devices.items() if isinstance(d, ModbusTcpConfig | ModbusRtuConfig)
    }
    jobs: list[tuple[str, Callable[[], None]]] = []
    if modbus:
        jobs.append(("plc", lambda: plc.simulate_devices(modbus, scenario, stop)))
    for name, device in config.devices.items():
        section = scenario.get(name)
        if isinstance(device, SerialScannerConfig):
            jobs.append((name, _job(scanner.simulate_device, name, device, section, stop)))
        elif isinstance(device, AsciiMeterConfig):
            jobs.append((name, _job(dosing.simulate_device, name, device, section or {}, stop)))
    threads = [
        threading.Thread(target=_guard(name, fn), name=f"sim-{name}", daemon=True)
        for name, fn in jobs
    ]
    for thread in threads:
        thread.start()
    return threads


def _job(fn: Callable[..., None], *args: Any) -> Callable[[], None]:
    return lambda: fn(*args)


def _guard(name: str, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("simulator %s stopped with an error", name)

    return run
