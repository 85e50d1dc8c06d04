"""`lineside simulate`: stand in for every device a config names, driven by a scenario file.

A scenario maps device names to sections; each simulator documents its own section
(simulators/plc/scenario.py, scanner.py, dosing.py and docs/simulators.md), and each
driver's spec says which simulator serves its devices (lineside.drivers.registry).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from lineside.agent.config import LinesideConfig
from lineside.drivers.base import StopFlag
from lineside.drivers.registry import SPECS, spec_of
from lineside.validation import describe

log = logging.getLogger("lineside.simulators")
DOCS = "docs/simulators.md"  # where every scenario key is explained


def unknown_devices(config: LinesideConfig, scenario: Mapping[str, Any]) -> list[str]:
    return sorted(set(scenario) - set(config.devices))


def scenario_problems(config: LinesideConfig, scenario: Mapping[str, Any]) -> list[str]:
    """Every section checked against its device before anything starts: name: problem."""
    problems = [
        f"{name}: no such device in the config" for name in unknown_devices(config, scenario)
    ]
    for name, device in config.devices.items():
        port = getattr(device, "port", None)
        if isinstance(port, str) and port.startswith("/dev/"):
            problems.append(
                f"{name}: its port {port} is real hardware; to simulate it, give it"
                " a socket://127.0.0.1:PORT port in a copy of the config"
            )
            continue
        spec = spec_of(device)
        if spec is None:
            continue
        try:
            problems += [f"{name}.{p}" for p in spec.check_scenario(device, scenario.get(name))]
        except ValidationError as exc:
            for err in exc.errors():
                where, message = describe(err, tags=spec.scenario_tags, docs=DOCS)
                dotted = ".".join(str(p) for p in where)
                problems.append(f"{name}.{dotted}: {message}" if dotted else f"{name}: {message}")
    return problems


Failed = Callable[[str, Exception], None]


def start_all(
    config: LinesideConfig,
    scenario: Mapping[str, Any],
    stop: StopFlag,
    failed: Failed | None = None,
) -> list[threading.Thread]:
    """The threads each driver's simulator asks for (Modbus: one for all its devices).

    A simulator that stops with an error is told to failed (its name and the error), or,
    without one, logged with its traceback."""
    jobs = [
        job
        for spec in SPECS
        if (devices := spec.devices(config.devices))
        for job in spec.simulate(devices, scenario, stop)
    ]
    threads = [
        threading.Thread(target=_guard(name, fn, failed), name=f"sim-{name}", daemon=True)
        for name, fn in jobs
    ]
    for thread in threads:
        thread.start()
    return threads


def _guard(name: str, fn: Callable[[], None], failed: Failed | None) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception as exc:
            if failed is None:
                log.exception("simulator %s stopped with an error", name)
            else:
                failed(name, exc)

    return run
