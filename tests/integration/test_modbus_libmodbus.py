"""The Modbus drivers against libmodbus, a server the project does not otherwise use.

TCP on a loopback port, RTU over a socat pty pair: the same decoding of every table,
type and word order as against pymodbus' simulator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lineside.agent.config import load
from lineside.agent.runtime import Agent
from lineside.drivers.base import PollTime
from lineside.drivers.modbus.client import (
    ModbusRtuDriver,
    ModbusTcpDriver,
    RtuBus,
    build_modbus_drivers,
    build_rtu_buses,
)
from tests.broker import wait_until
from tests.conftest import write_config
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


def polls(recorder: Recorder) -> list[PollTime]:
    return [e for e in recorder.events if isinstance(e, PollTime)]


def slow_polls(agent: Agent) -> float:
    for line in agent.metrics.render().decode().splitlines():
        if line.startswith('lineside_slow_polls_total{device="plc"}'):
            return float(line.split()[-1])
    return 0.0


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


def test_a_poll_slower_than_poll_ms_is_counted_and_warned_of_once(
    tcp_server: LibmodbusServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Two requests answered in 60 ms each cannot be polled every 50 ms."""
    caplog.set_level(logging.WARNING, logger="lineside.drivers.modbus")
    tcp_server.command("delay 60")
    points = {"good": POINTS["good"], "litres": POINTS["litres"]}
    recorder = Recorder()
    driver = ModbusTcpDriver("plc", tcp_config(tcp_server.port, points, poll_ms=50))
    with running(driver, recorder):
        recorder.wait_for(lambda r: len(polls(r)) >= 4, "4 polls")
    assert all(p.slow and p.seconds > 0.05 for p in polls(recorder))
    slow = [r.getMessage() for r in caplog.records if "longer than poll_ms 50" in r.getMessage()]
    assert len(slow) == 1, slow
    assert slow[0].startswith("plc: a poll of 2 requests took ")


def test_the_agent_shows_slow_polls_as_a_metric(
    tmp_path: Path, tcp_server: LibmodbusServer
) -> None:
    tcp_server.command("delay 60")
    loaded = load(
        write_config(
            tmp_path,
            "gateway: {id: gw, site: s, data_dir: ./var}\n"
            f"devices: {{plc: {{driver: modbus_tcp, host: 127.0.0.1, port: {tcp_server.port},"
            " poll_ms: 50, points: {good: {address: 0, type: uint32}}}}\n",
        )
    )
    agent = Agent(loaded)
    driver = ModbusTcpDriver("plc", loaded.config.devices["plc"])  # type: ignore[arg-type]
    with running(driver, agent.emit):
        wait_until(lambda: slow_polls(agent) >= 3, 10, "3 slow polls counted")
    assert b"lineside_poll_seconds_bucket" in agent.metrics.render()


def test_a_second_connection_the_plc_does_not_serve_says_so(tcp_server: LibmodbusServer) -> None:
    """libmodbus here serves one connection at a time, as many small PLCs do: the second
    device's connection is accepted and never answered."""
    configs = {
        name: tcp_config(tcp_server.port, {"good": POINTS["good"]}, timeout_ms=200)
        for name in ("first", "second")
    }
    drivers, _ = build_modbus_drivers(configs)
    first, second = drivers
    recorder = Recorder()
    with running(first, recorder):
        recorder.wait_readings(1, device="first")
        with running(second, recorder):
            recorder.wait_for(lambda r: len(r.statuses("second")) == 1, "the second down")
    reason = recorder.statuses("second")[0].reason
    assert reason.startswith("no answer within timeout_ms 200; 127.0.0.1:"), reason
    assert "serve only one Modbus TCP connection at a time" in reason
    assert reason.endswith("device first connects to it too")
    assert recorder.statuses("first") == []
