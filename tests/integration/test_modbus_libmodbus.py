"""The Modbus drivers against libmodbus, a server the project does not otherwise use.

TCP on a loopback port, RTU over a socat pty pair: the same decoding of every table,
type and word order as against pymodbus' simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lineside.drivers.modbus_driver import ModbusRtuDriver, ModbusTcpDriver, RtuBus, build_rtu_buses
from tests.integration.libmodbus import LibmodbusServer, rtu_server
from tests.integration.modbus_helpers import FAST_BACKOFF, Recorder, rtu_config, running, tcp_config

POINTS: dict[str, dict[str, Any]] = {
    "good": {"address": 0, "type": "uint32"},
    "swapped": {"address": 2, "type": "uint32", "word_order": "little"},
    "litres": {"address": 4, "type": "uint32", "table": "input", "scale": "0.001"},
    "signed": {"address": 6, "type": "int16", "table": "input"},
    "running": {"address": 3, "type": "bool", "table": "coil"},
    "door": {"address": 5, "type": "bool", "table": "discrete"},
}
EXPECTED = {
    "good": 70000,
    "swapped": 70000,
    "litres": Decimal("4294967.295"),
    "signed": -2,
    "running": True,
    "door": True,
}


def load_values(server: LibmodbusServer) -> None:
    server.command("set32 holding 0 70000")
    server.command("set holding 2 4464")  # 70000 = 0x0001_1170, low word first
    server.command("set holding 3 1")
    server.command("set32 input 4 4294967295")
    server.command("set input 6 65534")
    server.command("set coil 3 1")
    server.command("set discrete 5 1")


@pytest.fixture
def tcp_server(libmodbus_server_bin: Path) -> Iterator[LibmodbusServer]:
    with LibmodbusServer.tcp(libmodbus_server_bin) as server:
        yield server


def test_tcp_reads_every_table_and_type_from_libmodbus(tcp_server: LibmodbusServer) -> None:
    load_values(tcp_server)
    recorder = Recorder()
    driver = ModbusTcpDriver("plc", tcp_config(tcp_server.port, POINTS), backoff=FAST_BACKOFF)
    with running(driver, recorder):
        recorder.wait_readings(3 * len(POINTS))
    last = {r.point: r.value for r in recorder.readings()}
    assert last == EXPECTED
    assert all(r.ok for r in recorder.readings())


def test_rtu_reads_every_table_and_type_from_libmodbus_over_a_pty(
    libmodbus_server_bin: Path, tmp_path: Path
) -> None:
    recorder = Recorder()
    with rtu_server(libmodbus_server_bin, tmp_path, unit=8) as (server, port):
        load_values(server)
        config = rtu_config(port, 8, POINTS)
        bus = build_rtu_buses({"doser": config})[port]
        try:
            with running(ModbusRtuDriver("doser", config, bus, backoff=FAST_BACKOFF), recorder):
                recorder.wait_readings(3 * len(POINTS))
        finally:
            bus.close()
    last = {r.point: r.value for r in recorder.readings()}
    assert last == EXPECTED
    assert recorder.statuses() == []
    assert all(r.ok for r in recorder.readings())


def test_rtu_bus_is_closed_by_its_owner(libmodbus_server_bin: Path, tmp_path: Path) -> None:
    """A bus opened on a pty and closed again can be opened afresh (no port left locked)."""
    with rtu_server(libmodbus_server_bin, tmp_path, unit=1) as (server, port):
        server.command("set32 holding 0 12")
        config = rtu_config(port, 1, {"good": POINTS["good"]})
        for _ in range(2):
            bus = RtuBus(port, baudrate=115200, timeout_ms=1000)
            recorder = Recorder()
            with running(ModbusRtuDriver("plc", config, bus), recorder):
                recorder.wait_readings(1)
            bus.close()
            assert recorder.readings()[0].value == 12
