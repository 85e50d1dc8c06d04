"""A simulated PLC: a pymodbus server whose counters advance, go offline and fail on cue.

The package follows its parts: counter.py (points as functions of time), bus.py (the
overlap check), server.py (pymodbus underneath), simulator.py (PlcSimulator),
scenario.py (the scenario section, pure); here, serving a config's devices.

It serves Modbus TCP, or Modbus RTU framing over a TCP socket (what an RS-485 to
Ethernet converter does), so the RTU driver reaches it with the port
``socket://127.0.0.1:PORT``. One simulator serves one or more unit ids: the units
of an RTU simulator share one simulated bus.

Python API (tests)::

    sim = PlcSimulator({1: {"good": SimPoint(100, "uint32", rate_per_s=2)}}, port=0)
    sim.start()                      # listening on a free loopback port: sim.port, sim.url
    sim.set(1, "good", 65530)        # also reset(), advance(), set_rate(), value()
    sim.go_offline(10)               # refuse connections for 10 s, then listen again
    sim.raise_exception(2, 3)        # answer every request with exception 2 for 3 s
    sim.silence(1, 2)                # unit 1 does not answer for 2 s (the others do)
    sim.violations                   # RTU: requests that overlapped on the bus
    sim.stop()

Values and rates are raw register values, before the lineside point's ``scale``.
Integer counters wrap at their width (a uint16 at 65535 + 1 reads 0); float
totalizers (float32/float64) advance continuously. Counters go on counting while
the simulator is offline, as a PLC does during a network outage.

**Overlap check (RTU).** The simulator notes when each request arrives and when its
answer leaves; a request that arrives while another one is unanswered (on any
connection to the same simulator, since they all stand for one RS-485 line) is an
overlap: it is logged as an error and recorded in ``violations``. To make overlaps
observable it answers RTU requests after ``response_delay_ms`` (default 2 ms), as
a real line takes time to carry a frame.

Scenario file
-------------

A scenario maps each simulated device (by its name in the lineside config) to a
section; the simulator serves what that device's config expects (same addresses,
types, word orders and unit id; a modbus_tcp device on its host and port, a
modbus_rtu device on the host and port of its ``socket://host:port``). Every key
is optional::

    plc3:
      response_delay_ms: 2          # answer delay (RTU default 2, TCP default 0)
      points:
        good:    {value: 0, rate_per_s: 2}     # start value, units per second
        scrap:   {rate_per_s: 0.1}
      events:                        # at_s: seconds after the simulator starts
        - {at_s: 10, point: good, set: 65530}       # the counter jumps (forces a rollover)
        - {at_s: 15, point: scrap, reset: true}     # the counter restarts from 0
        - {at_s: 18, point: good, rate_per_s: 5}    # the line speeds up
        - {at_s: 20, offline_s: 10}                 # refuse connections for 10 s
        - {at_s: 35, silent_s: 2}                   # this unit does not answer for 2 s
        - {at_s: 40, exception: 2, duration_s: 3}   # answer with exception code 2
        - {at_s: 50, exception: 4, duration_s: 3, point: scrap}  # only requests for scrap
    doser3:
      points:
        total_l: {value: 100.0, rate_per_s: 0.05}   # a float32 totalizer in litres

Each event does exactly one of ``set``, ``reset``, ``rate_per_s``, ``offline_s``,
``silent_s`` or ``exception`` (which needs ``duration_s``). Points not named in
``points`` hold 0. Devices sharing a listener (RTU devices on one port, TCP devices
on one host:port) share it: an ``offline_s`` event of one takes them all offline,
while ``silent_s`` silences only that device's unit (the others keep answering).
A request for a unit the simulator does not serve gets no answer over RTU (as on
a real line) and exception 11 (gateway target failed to respond) over TCP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from lineside.drivers.base import StopFlag
from lineside.drivers.modbus.config import ModbusTcpConfig
from lineside.simulators.plc.bus import BusMonitor, Overlap, Transaction
from lineside.simulators.plc.counter import Counter, SimPoint, raw_number, wrap_int
from lineside.simulators.plc.scenario import (
    DeviceScenario,
    ModbusDeviceConfig,
    PointScenario,
    ScenarioEvent,
    SetEvent,
    scenario_problems,
)
from lineside.simulators.plc.simulator import Framer, PlcSimulator

__all__ = [
    "BusMonitor",
    "Counter",
    "DeviceScenario",
    "Overlap",
    "PlcSimulator",
    "ScenarioEvent",
    "SetEvent",
    "SimPoint",
    "Transaction",
    "build_simulators",
    "listen_address",
    "scenario_problems",
    "simulate_device",
    "simulate_devices",
    "wrap_int",
]


def listen_address(config: ModbusDeviceConfig) -> tuple[str, int, Framer]:
    """Where the simulator of a device must listen, and with which framing."""
    if isinstance(config, ModbusTcpConfig):
        return config.host, config.port, "tcp"
    url = urlsplit(config.port)
    if url.scheme != "socket" or not url.hostname or not url.port:
        raise ValueError(
            f"a modbus_rtu device can be simulated only on a socket://host:port port, "
            f"not {config.port!r}"
        )
    return url.hostname, url.port, "rtu"


def build_simulators(
    devices: Mapping[str, ModbusDeviceConfig],
    scenario: Mapping[str, DeviceScenario | Mapping[str, Any] | None],
) -> list[tuple[PlcSimulator, dict[int, DeviceScenario]]]:
    """One simulator per listen address, serving the units of every device on it.

    Raises ValueError when a scenario does not fit its device, when two devices on
    one address share a unit id, or when an RTU port is not socket://host:port.
    """
    groups: dict[
        tuple[str, int, Framer], dict[int, tuple[str, ModbusDeviceConfig, DeviceScenario]]
    ] = {}
    problems: list[str] = []
    for name, config in devices.items():
        raw = scenario.get(name)
        section = (
            raw if isinstance(raw, DeviceScenario) else DeviceScenario.model_validate(raw or {})
        )
        problems.extend(f"{name}.{p}" for p in scenario_problems(section, config))
        members = groups.setdefault(listen_address(config), {})
        if config.unit in members:
            problems.append(
                f"{name}: unit {config.unit} is also device {members[config.unit][0]}"
                " on the same address"
            )
        members[config.unit] = (name, config, section)
    if problems:
        raise ValueError("; ".join(problems))
    return [_simulator(address, members) for address, members in groups.items()]


def _simulator(
    address: tuple[str, int, Framer],
    members: Mapping[int, tuple[str, ModbusDeviceConfig, DeviceScenario]],
) -> tuple[PlcSimulator, dict[int, DeviceScenario]]:
    host, port, framer = address
    units: dict[int, dict[str, SimPoint]] = {}
    delays = [s.response_delay_ms for _, _, s in members.values() if s.response_delay_ms]
    for unit, (_, config, section) in members.items():
        units[unit] = {}
        for name, point in config.points.items():
            behaviour = section.points.get(name, PointScenario())
            units[unit][name] = SimPoint.from_config(
                point, raw_number(point.type, behaviour.value), float(behaviour.rate_per_s)
            )
    sim = PlcSimulator(
        units,
        host,
        port,
        framer,
        response_delay_ms=float(max(delays)) if delays else None,
        name="+".join(n for n, _, _ in members.values()),
    )
    return sim, {unit: section for unit, (_, _, section) in members.items()}


def simulate_devices(
    devices: Mapping[str, ModbusDeviceConfig],
    scenario: Mapping[str, DeviceScenario | Mapping[str, Any] | None],
    stop: StopFlag,
) -> None:
    """Serve every given device as its config expects until stop is set (blocks)."""
    built = build_simulators(devices, scenario)
    started: list[PlcSimulator] = []
    try:
        for sim, sections in built:
            sim.start()
            started.append(sim)
            for unit, section in sections.items():
                sim.schedule(section.events, unit)
        while not stop.wait(1.0):
            pass
    finally:
        for sim in started:
            sim.stop()


def simulate_device(
    name: str,
    device_config: ModbusDeviceConfig,
    scenario_section: DeviceScenario | Mapping[str, Any] | None,
    stop: StopFlag,
) -> None:
    """Serve one device as its config expects until stop is set (blocks)."""
    simulate_devices({name: device_config}, {name: scenario_section}, stop)
