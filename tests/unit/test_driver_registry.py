"""The driver registry: every driver is one spec, and everything that knows drivers loops
over the specs, so a new driver is one spec registered (here a tiny fake one)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from lineside.agent.config import ConfigInvalid, load_text
from lineside.agent.config_checks import bom_cycles
from lineside.agent.points import point_map
from lineside.drivers import registry
from lineside.drivers.base import DriverModel, Emit, Event, Reading, StopFlag
from lineside.drivers.registry import build_drivers
from lineside.drivers.spec import DeviceSet, DriverSpec, Job
from lineside.simulators.run import scenario_problems, start_all

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def test_the_registry_lists_one_spec_per_driver_folder() -> None:
    assert [spec.name for spec in registry.SPECS] == ["modbus", "scanner", "dosing"]
    assert registry.driver_names() == ["modbus_tcp", "modbus_rtu", "serial_scanner", "ascii_meter"]


def test_importing_the_config_imports_neither_pyserial_nor_pymodbus() -> None:
    code = (
        "import sys, lineside.agent.config, lineside.drivers.registry\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('serial', 'pymodbus'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "module",
    [
        "lineside/agent/config.py",
        "lineside/agent/config_checks.py",
        "lineside/agent/points.py",
        "lineside/drivers/registry.py",
        "lineside/simulators/run.py",
    ],
)
def test_what_loops_over_the_specs_names_no_driver(module: str) -> None:
    text = (REPO / module).read_text(encoding="utf-8")
    for config in ("ModbusTcpConfig", "ModbusRtuConfig", "SerialScannerConfig", "AsciiMeterConfig"):
        assert config not in text, f"{module} names {config}"


def test_the_modbus_spec_knows_its_scenario_tags() -> None:
    from lineside.drivers.modbus import SPEC
    from lineside.simulators.plc.scenario import EVENT_TAGS

    assert SPEC.scenario_tags == EVENT_TAGS


# ----------------------------------------------------------------- a new driver, in a few lines


class TallyConfig(DriverModel):
    driver: Literal["tally"]
    start: int = 0
    point: str = "count"

    def point_names(self) -> set[str]:
        return {self.point}

    def counter_modulus(self, point: str) -> int | None:
        return 2**16


class TallyDriver:
    def __init__(self, name: str, config: TallyConfig, clock: Callable[[], datetime]) -> None:
        self.name, self.config, self.clock = name, config, clock

    def run(self, stop: StopFlag, emit: Emit) -> None:
        emit(Reading(self.name, self.config.point, self.config.start, self.clock()))
        stop.wait()


class TallyScenario(BaseModel):
    step: int = 1


SIMULATED: list[tuple[str, int]] = []


def _simulate(
    devices: Mapping[str, TallyConfig], scenario: Mapping[str, Any], stop: StopFlag
) -> list[Job]:
    def serve(name: str) -> None:
        SIMULATED.append((name, TallyScenario.model_validate(scenario.get(name) or {}).step))

    return [(name, partial(serve, name)) for name in devices]


def _check(section: Any) -> list[str]:
    TallyScenario.model_validate(section or {})  # raises for a bad section
    return []


TALLY = DriverSpec[TallyConfig](
    "tally",
    (TallyConfig,),
    build=lambda devices, clock: DeviceSet([TallyDriver(n, c, clock) for n, c in devices.items()]),
    simulate=_simulate,
    check_scenario=lambda device, section: _check(section),
)

CONFIG = """\
gateway: {id: gw-1, site: plant}
items:
  PART: {uom: ea}
work_centers:
  CELL-1: {location: CELL-1, item: PART, counters: {good: tally1.count}}
devices:
  tally1: {driver: tally, start: 7}
"""


@pytest.fixture
def tally() -> Any:
    remove = registry.register(TALLY)
    yield TALLY
    remove()


def test_a_driver_registered_in_a_few_lines_is_configured_built_and_simulated(
    tally: DriverSpec[TallyConfig], tmp_path: Path
) -> None:
    loaded = load_text(CONFIG, tmp_path / "line.yaml")
    device = loaded.config.devices["tally1"]
    assert isinstance(device, TallyConfig) and device.start == 7
    assert point_map(loaded.config).counters["tally1.count"].modulus == 2**16

    made = build_drivers(loaded.config.devices, clock=lambda: T0)
    events: list[Event] = []
    stop = threading.Event()
    stop.set()
    for driver in made.drivers:
        driver.run(stop, events.append)
    assert events == [Reading("tally1", "count", 7, T0)]

    assert scenario_problems(loaded.config, {"tally1": {"step": "many"}}) == [
        "tally1.step: Input should be a valid integer, unable to parse string as an integer"
    ]
    SIMULATED.clear()
    for thread in start_all(loaded.config, {"tally1": {"step": 3}}, stop):
        thread.join(5)
    assert SIMULATED == [("tally1", 3)]


def test_a_registered_driver_is_offered_when_a_driver_is_wrong(
    tally: DriverSpec[TallyConfig], tmp_path: Path
) -> None:
    with pytest.raises(ConfigInvalid) as refused:
        load_text(CONFIG.replace("driver: tally", "driver: tallly"), tmp_path / "line.yaml")
    assert str(refused.value.errors[0]).endswith(
        "devices.tally1.driver: unknown driver 'tallly'; expected one of"
        " modbus_tcp, modbus_rtu, serial_scanner, ascii_meter, tally"
    )


def test_without_its_spec_the_driver_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="unknown driver 'tally'"):
        load_text(CONFIG, tmp_path / "line.yaml")


# ----------------------------------------------------------------- the one BOM cycle search


class _Comp(BaseModel):
    item: str


class _Bom(BaseModel):
    components: list[_Comp]


def _boms(**parts: str) -> dict[str, _Bom]:
    return {p: _Bom(components=[_Comp(item=c) for c in cs.split()]) for p, cs in parts.items()}


def test_bom_cycles_follow_phantoms_only() -> None:
    boms = _boms(A="P B", P="Q", Q="A", B="A")
    phantom = {"P", "Q"}.__contains__
    assert list(bom_cycles(boms, phantom, "A")) == [["A", "P", "Q", "A"]]  # B is stock
    assert list(bom_cycles(boms, lambda code: True, "A")) == [
        ["A", "P", "Q", "A"],
        ["A", "B", "A"],
    ]
    assert list(bom_cycles(boms, phantom, "B")) == []
    assert next(bom_cycles(_boms(A="A"), phantom, "A")) == ["A", "A"]
