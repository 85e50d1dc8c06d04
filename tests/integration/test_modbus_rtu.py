"""The Modbus RTU driver and its shared bus, over RTU framing on a socket:// port."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusSerialClient

from lineside.drivers.base import Reading
from lineside.drivers.modbus.client import ModbusRtuDriver, RtuBus, build_rtu_buses
from lineside.simulators.plc import PlcSimulator, SimPoint
from tests.integration.modbus_helpers import FAST_BACKOFF, Recorder, rtu_config, running

POINTS: dict[str, dict[str, Any]] = {
    "total_l": {"address": 1, "type": "float32", "table": "input"},
    "strokes": {"address": 10, "type": "uint32"},
}


def two_doser_sim(**options: Any) -> PlcSimulator:
    return PlcSimulator(
        {
            7: {
                "total_l": SimPoint(1, "float32", "input", value=12.5),
                "strokes": SimPoint(10, "uint32", value=700),
            },
            8: {
                "total_l": SimPoint(1, "float32", "input", value=80.25),
                "strokes": SimPoint(10, "uint32", value=800),
            },
        },
        framer="rtu",
        **options,
    )


@pytest.fixture
def buses() -> Iterator[list[RtuBus]]:
    """Buses a test builds, closed after it (the drivers never close a shared bus)."""
    made: list[RtuBus] = []
    yield made
    for bus in made:
        bus.close()


def test_two_units_on_one_port_are_never_overlapped(buses: list[RtuBus]) -> None:
    recorder = Recorder()
    with two_doser_sim() as sim:
        configs = {
            "doser3": rtu_config(sim.url, 7, POINTS, pause_ms=5),
            "doser4": rtu_config(sim.url, 8, POINTS, pause_ms=5),
        }
        bus = build_rtu_buses(configs)[sim.url]
        buses.append(bus)
        drivers = [ModbusRtuDriver(n, c, bus) for n, c in configs.items()]
        with running(drivers[0], recorder), running(drivers[1], recorder):
            for name in configs:
                recorder.wait_readings(60, device=name, timeout=20)
        assert sim.violations == []
        # Each point is its own request here (input vs holding): one transaction per
        # reading, all through one lock, each separated from the next by the pause.
        transactions = sim.transactions
        assert len(transactions) == sim.transaction_count == len(recorder.readings()) >= 120
        assert {t.unit for t in transactions} == {7, 8}
        gaps = [b.start - a.end for a, b in itertools.pairwise(transactions)]
        assert min(gaps) >= 0.005
    # Every answer went to the unit that asked (12.5 and 80.25 are exact in float32).
    assert {(r.device, r.point, r.value) for r in recorder.readings()} == {
        ("doser3", "total_l", Decimal("12.5")),
        ("doser3", "strokes", 700),
        ("doser4", "total_l", Decimal("80.25")),
        ("doser4", "strokes", 800),
    }


def test_the_simulator_catches_clients_that_bypass_the_bus_lock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="lineside.simulators.plc")
    with two_doser_sim(response_delay_ms=30) as sim:
        start = threading.Barrier(2)
        failures: list[BaseException] = []

        def hammer(unit: int) -> None:
            # Its own connection to the line, no RtuBus: what two careless masters do.
            client = ModbusSerialClient(sim.url, baudrate=115200, timeout=2, retries=0)
            try:
                client.connect()
                start.wait()
                for _ in range(8):
                    client.read_holding_registers(10, count=2, device_id=unit)
            except BaseException as exc:
                failures.append(exc)
            finally:
                client.close()  # type: ignore[no-untyped-call]

        threads = [threading.Thread(target=hammer, args=(u,)) for u in (7, 8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert failures == []
        violations = sim.violations
    assert violations, "two unlocked masters on one line must collide"
    assert {frozenset((v.unit, v.other_unit)) for v in violations} == {frozenset((7, 8))}
    assert any("OVERLAP" in r.getMessage() for r in caplog.records)


def test_an_exception_on_one_unit_leaves_the_other_alone(buses: list[RtuBus]) -> None:
    recorder = Recorder()
    with two_doser_sim() as sim:
        configs = {
            "doser3": rtu_config(sim.url, 7, POINTS),
            "doser4": rtu_config(sim.url, 8, POINTS),
        }
        bus = build_rtu_buses(configs)[sim.url]
        buses.append(bus)
        with (
            running(ModbusRtuDriver("doser3", configs["doser3"], bus), recorder),
            running(ModbusRtuDriver("doser4", configs["doser4"], bus), recorder),
        ):
            recorder.wait_readings(2, device="doser3")
            sim.raise_exception(6, seconds=0.5, unit=7)
            recorder.wait_for(
                lambda r: any(not x.ok for x in r.readings("doser3")), "a failed doser3 reading"
            )
            recorder.wait_for(lambda r: r.readings("doser3")[-1].ok, "doser3 read again")
    failed = [r for r in recorder.readings("doser3") if not r.ok]
    assert {r.error for r in failed} == {"modbus exception 6 (server device busy)"}
    assert all(r.ok for r in recorder.readings("doser4"))
    assert recorder.statuses() == []
    assert sim.violations == []


def test_the_bus_goes_down_and_comes_back_for_every_device_on_it(buses: list[RtuBus]) -> None:
    recorder = Recorder()
    with two_doser_sim() as sim:
        configs = {
            "doser3": rtu_config(sim.url, 7, POINTS),
            "doser4": rtu_config(sim.url, 8, POINTS),
        }
        bus = build_rtu_buses(configs)[sim.url]
        buses.append(bus)
        drivers = [ModbusRtuDriver(n, c, bus, backoff=FAST_BACKOFF) for n, c in configs.items()]
        with running(drivers[0], recorder), running(drivers[1], recorder):
            recorder.wait_readings(2, device="doser3")
            recorder.wait_readings(2, device="doser4")
            sim.go_offline(1.0)
            recorder.wait_for(lambda r: len(r.statuses()) == 2, "both devices down")
            sim.set(7, "strokes", 777)
            recorder.wait_for(lambda r: len(r.statuses()) == 4, "both devices up")
            recorder.wait_for(
                lambda r: r.readings("doser3", "strokes")[-1].value == 777, "the new value"
            )
    for name in configs:
        states = [s.state for s in recorder.statuses(name)]
        assert states == ["down", "up"]
        down, up = recorder.statuses(name)
        events = recorder.events
        quiet = events[events.index(down) + 1 : events.index(up)]
        assert not [e for e in quiet if isinstance(e, Reading) and e.device == name]
    assert sim.violations == []


def test_a_silent_unit_goes_down_alone_and_the_other_keeps_polling(buses: list[RtuBus]) -> None:
    recorder = Recorder()
    with two_doser_sim() as sim:
        # A short timeout: a silent unit holds the line for timeout × (retries + 1).
        configs = {
            "doser3": rtu_config(sim.url, 7, POINTS, timeout_ms=150),
            "doser4": rtu_config(sim.url, 8, POINTS, timeout_ms=150),
        }
        bus = build_rtu_buses(configs)[sim.url]
        buses.append(bus)
        drivers = [ModbusRtuDriver(n, c, bus, backoff=FAST_BACKOFF) for n, c in configs.items()]
        with running(drivers[0], recorder), running(drivers[1], recorder):
            recorder.wait_readings(2, device="doser4")
            sim.silence(8, 1.5)
            recorder.wait_for(lambda r: len(r.statuses("doser4")) == 1, "doser4 down")
            doser3_at_down = len(recorder.readings("doser3"))
            recorder.wait_for(lambda r: len(r.statuses("doser4")) == 2, "doser4 up")
            doser3_at_up = len(recorder.readings("doser3"))
    assert [s.state for s in recorder.statuses("doser4")] == ["down", "up"]
    assert recorder.statuses("doser4")[0].reason == (
        "unit 8: read holding 10+2: no answer within timeout_ms 150 (asked 2 times)"
    )
    assert recorder.statuses("doser3") == []
    assert all(r.ok for r in recorder.readings())
    # doser3 went on polling through doser4's timeouts (>= 5 polls of 2 points in ~1.2 s).
    assert doser3_at_up - doser3_at_down >= 10
    assert sim.violations == []


def test_a_port_that_cannot_be_opened_says_why(tmp_path: Path, buses: list[RtuBus]) -> None:
    """The operating system's errno reaches the device_down reason, not only a library log."""
    not_a_tty = tmp_path / "ttyUSB0"
    not_a_tty.write_text("")
    config = rtu_config(str(not_a_tty), 7, POINTS)
    bus = build_rtu_buses({"doser3": config})[str(not_a_tty)]
    buses.append(bus)
    recorder = Recorder()
    with running(ModbusRtuDriver("doser3", config, bus, backoff=FAST_BACKOFF), recorder):
        recorder.wait_for(lambda r: len(r.statuses()) == 1, "device_down")
    reason = recorder.statuses()[0].reason
    assert reason.startswith(f"serial port {not_a_tty}: "), reason
    assert "(25, 'Inappropriate ioctl for device')" in reason, reason
