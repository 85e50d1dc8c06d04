"""The PLC simulator itself: its listener, its scenarios, and simulate_device end to end."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from lineside.drivers.modbus.client import ModbusRtuDriver, ModbusTcpDriver, build_rtu_buses
from lineside.drivers.modbus.config import ModbusRtuConfig, ModbusTcpConfig
from lineside.simulators.plc import PlcSimulator, SimPoint, simulate_device, simulate_devices
from tests.integration.modbus_helpers import (
    FAST_BACKOFF,
    Recorder,
    closed_port,
    rtu_config,
    running,
    tcp_config,
)


def connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def answers(port: int) -> bool:
    """A whole Modbus exchange, so the server has surely taken the connection in.

    (A bare connect can race the listener's close: asyncio 3.11 then drops the
    half-accepted socket with an error of its own.)
    """
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    try:
        return not client.read_holding_registers(0, count=1, device_id=1).isError()
    except ModbusException:
        return False
    finally:
        client.close()  # type: ignore[no-untyped-call]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.02)


def test_offline_refuses_connections_then_listens_on_the_same_port() -> None:
    with PlcSimulator({1: {"good": SimPoint(0)}}) as sim:
        port = sim.port
        assert port > 0 and answers(port) and sim.online
        sim.go_offline(0.5)
        assert not sim.online
        assert not connects(port)  # refused at once, not a hang
        wait_until(lambda: sim.online, "listener back")
        assert sim.port == port and answers(port)


def test_stop_ends_the_thread_and_frees_the_port() -> None:
    sim = PlcSimulator({1: {"good": SimPoint(0)}})
    sim.start()
    port = sim.port
    sim.stop()
    sim.stop()  # twice is fine
    assert not connects(port)
    assert not any(t.name == "sim-plc" for t in threading.enumerate())


def test_exception_for_an_unknown_point_or_code_is_refused() -> None:
    sim = PlcSimulator({1: {"good": SimPoint(0)}, 2: {"good": SimPoint(0)}})
    with pytest.raises(KeyError, match="no point 'bad'"):
        sim.raise_exception(2, 1, unit=1, point="bad")
    with pytest.raises(ValueError, match="say which unit"):
        sim.raise_exception(2, 1, point="good")
    with pytest.raises(ValueError, match="no Modbus exception code 9"):
        sim.raise_exception(9, 1)


@contextmanager
def simulating(target: Callable[[threading.Event], None]) -> Iterator[None]:
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            target(stop)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and failures == []


def test_simulate_device_plays_a_scenario_for_the_driver() -> None:
    points: dict[str, dict[str, Any]] = {
        "good": {"address": 100, "type": "uint16"},
        "scrap": {"address": 102, "type": "uint32", "word_order": "little"},
    }
    config: ModbusTcpConfig = tcp_config(closed_port(), points)
    scenario = {
        "points": {"good": {"value": 10, "rate_per_s": 20}, "scrap": {"value": 5}},
        "events": [
            {"at_s": 0.3, "point": "good", "set": 65530},
            {"at_s": 0.3, "point": "scrap", "reset": True},
            {"at_s": 1.2, "exception": 2, "duration_s": 0.3, "point": "scrap"},
        ],
    }
    recorder = Recorder()
    with simulating(lambda stop: simulate_device("plc3", config, scenario, stop)):
        driver = ModbusTcpDriver("plc3", config, backoff=FAST_BACKOFF)
        with running(driver, recorder):
            recorder.wait_for(
                lambda r: any(
                    x.value is not None and x.value >= 65530 for x in r.readings(point="good")
                ),
                "the set",
            )
            recorder.wait_for(
                lambda r: (v := r.readings(point="good")[-1].value) is not None and v < 100,
                "the rollover",
            )
            recorder.wait_for(
                lambda r: any(not x.ok for x in r.readings(point="scrap")), "the exception"
            )
    good = [r.value for r in recorder.readings(point="good") if r.ok]
    assert good[0] is not None and good[0] >= 10
    assert max(v for v in good if v is not None) <= 65535
    scrap = [r.value for r in recorder.readings(point="scrap") if r.ok]
    assert scrap[-1] == 0 and set(scrap) <= {5, 0}  # 5 until the reset at 0.3 s
    assert all(r.ok for r in recorder.readings(point="good"))


def test_simulate_devices_serves_rtu_units_sharing_a_socket_port() -> None:
    url = f"socket://127.0.0.1:{closed_port()}"
    points = {"total_l": {"address": 1, "type": "float32", "table": "input"}}
    configs: dict[str, ModbusRtuConfig] = {
        "doser3": rtu_config(url, 7, points),
        "doser4": rtu_config(url, 8, points),
    }
    scenario = {
        "doser3": {"points": {"total_l": {"value": 100, "rate_per_s": 0.5}}},
        "doser4": {"points": {"total_l": {"value": 2.5}}},
    }
    recorder = Recorder()
    bus = build_rtu_buses(configs)[url]
    try:
        with simulating(lambda stop: simulate_devices(configs, scenario, stop)):
            drivers = [ModbusRtuDriver(n, c, bus, backoff=FAST_BACKOFF) for n, c in configs.items()]
            with running(drivers[0], recorder), running(drivers[1], recorder):
                recorder.wait_readings(5, "doser3")
                recorder.wait_readings(5, "doser4")
    finally:
        bus.close()
    totals = [r.value for r in recorder.readings("doser3") if r.ok]
    assert all(isinstance(v, Decimal) and v >= 100 for v in totals)
    assert {r.value for r in recorder.readings("doser4") if r.ok} == {Decimal("2.5")}
