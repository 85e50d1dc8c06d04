"""Modbus config validation, RTU port sharing and reconnect backoff: no I/O."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from lineside.drivers.base import Backoff
from lineside.drivers.modbus.client import (
    ModbusRtuDriver,
    ModbusTcpDriver,
    RtuBus,
    build_modbus_drivers,
    build_rtu_buses,
)
from lineside.drivers.modbus.config import (
    ModbusPoint,
    ModbusRtuConfig,
    ModbusTcpConfig,
    rtu_port_conflicts,
)
from lineside.drivers.modbus.frames import describe_exception
from lineside.drivers.scanner.config import SerialScannerConfig


def rtu(port: str = "/dev/ttyUSB0", unit: int = 1, **settings: Any) -> ModbusRtuConfig:
    return ModbusRtuConfig.model_validate(
        {
            "driver": "modbus_rtu",
            "port": port,
            "unit": unit,
            "points": {"total": {"address": 1, "type": "float32", "table": "input"}},
            **settings,
        }
    )


def tcp(**settings: Any) -> ModbusTcpConfig:
    return ModbusTcpConfig.model_validate(
        {
            "driver": "modbus_tcp",
            "host": "10.0.0.5",
            "points": {"good": {"address": 100}},
            **settings,
        }
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "bool"}, "type bool needs table coil or discrete"),
        ({"table": "coil"}, "table coil holds bits: use type bool"),
        ({"table": "discrete", "type": "uint32"}, "table discrete holds bits"),
        ({"address": 65535, "type": "uint32"}, "runs past 65535"),
        ({"scale": 0}, "greater than 0"),
        ({"word_order": "middle"}, "'big' or 'little'"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_points_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModbusPoint.model_validate({"address": 0, **fields})


def test_good_points_and_their_widths() -> None:
    assert ModbusPoint(address=65535).span() == 1
    assert ModbusPoint(address=65532, type="uint64").span() == 4
    assert ModbusPoint.model_validate({"address": 7, "type": "bool", "table": "coil"}).span() == 1
    assert ModbusPoint(address=0, type="uint32").counter_width() == 32


def test_devices_on_one_port_must_share_the_line_settings_and_not_the_unit() -> None:
    devices = {
        "doser3": rtu(unit=7, baudrate=19200, parity="E"),
        "doser4": rtu(unit=8, baudrate=9600, parity="E"),
        "doser5": rtu(unit=7, baudrate=19200, parity="N"),
        "other": rtu(port="/dev/ttyUSB1", unit=7),
    }
    problems = rtu_port_conflicts(devices)
    assert [(p.device, p.key) for p in problems] == [
        ("doser4", "baudrate"),
        ("doser5", "parity"),
        ("doser5", "unit"),
    ]
    assert str(problems[0]) == (
        "devices.doser4.baudrate: baudrate 9600 differs from 19200 of device doser3 on the "
        "same port /dev/ttyUSB0: one serial line has one baudrate"
    )
    assert "already used by device doser3" in problems[2].message
    with pytest.raises(ValueError, match=r"doser4\.baudrate"):
        build_rtu_buses(devices)


def test_one_bus_per_port_paced_by_its_slowest_device() -> None:
    buses = build_rtu_buses(
        {
            "a": rtu(unit=1, pause_ms=5, timeout_ms=300, baudrate=19200, parity="E"),
            "b": rtu(unit=2, pause_ms=40, timeout_ms=800, baudrate=19200, parity="E"),
            "c": rtu(port="socket://127.0.0.1:1", unit=1),
        }
    )
    assert sorted(buses) == ["/dev/ttyUSB0", "socket://127.0.0.1:1"]
    bus = buses["/dev/ttyUSB0"]
    assert (bus.baudrate, bus.parity, bus.pause_ms, bus.timeout_ms) == (19200, "E", 40, 800)


def test_building_drivers_opens_nothing() -> None:
    # The port does not exist: construction must not notice, only run() would.
    drivers, buses = build_modbus_drivers(
        {
            "plc3": tcp(),
            "doser3": rtu(port="/dev/does-not-exist", unit=7),
            "doser4": rtu(port="/dev/does-not-exist", unit=8),
            "scanner3": SerialScannerConfig(
                driver="serial_scanner", port="/dev/x", work_center="W"
            ),
        }
    )
    assert [type(d) for d in drivers] == [ModbusTcpDriver, ModbusRtuDriver, ModbusRtuDriver]
    assert [d.name for d in drivers] == ["plc3", "doser3", "doser4"]
    assert list(buses) == ["/dev/does-not-exist"]


def test_an_rtu_driver_refuses_the_bus_of_another_port() -> None:
    with pytest.raises(ValueError, match="on port /dev/ttyUSB0"):
        ModbusRtuDriver("doser3", rtu(), RtuBus("/dev/ttyUSB9"))


def test_backoff_doubles_up_to_its_cap() -> None:
    assert list(itertools.islice(Backoff().delays(), 7)) == [0.5, 1, 2, 4, 8, 10, 10]
    assert list(itertools.islice(Backoff(0.1, 0.5).delays(), 4)) == [0.1, 0.2, 0.4, 0.5]


def test_exception_codes_are_named() -> None:
    assert describe_exception(2) == "modbus exception 2 (illegal data address)"
    assert describe_exception(99) == "modbus exception 99 (unknown code)"
