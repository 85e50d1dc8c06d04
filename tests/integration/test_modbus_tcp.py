"""The Modbus TCP driver against a real pymodbus server (the PLC simulator) on loopback."""

from __future__ import annotations

import logging
import math
from decimal import Decimal
from typing import Any

import pytest

from lineside.drivers.base import Backoff, DeviceStatus, Event, PollTime, Reading
from lineside.drivers.modbus.client import ModbusTcpDriver
from lineside.drivers.modbus.codec import plan_reads
from lineside.simulators.plc import PlcSimulator, SimPoint
from tests.integration.modbus_helpers import (
    FAST_BACKOFF,
    Recorder,
    closed_port,
    running,
    tcp_config,
)

D = Decimal
LOGGER = "lineside.drivers.modbus"

COUNTERS: dict[str, dict[str, Any]] = {
    "good": {"address": 100, "type": "uint32"},
    "scrap": {"address": 102, "type": "uint16"},
}


def counter_sim(good: int = 0, good_rate: float = 0.0, scrap: int = 0) -> PlcSimulator:
    return PlcSimulator(
        {
            1: {
                "good": SimPoint(100, "uint32", value=good, rate_per_s=good_rate),
                "scrap": SimPoint(102, "uint16", value=scrap),
            }
        }
    )


def between(events: list[Event], first: Event, last: Event) -> list[Event]:
    return events[events.index(first) + 1 : events.index(last)]


def test_reads_counters_that_advance() -> None:
    recorder = Recorder()
    with counter_sim(good=1000, good_rate=40, scrap=7) as sim:
        driver = ModbusTcpDriver("plc3", tcp_config(sim.port, COUNTERS))
        with running(driver, recorder):
            recorder.wait_for(
                lambda r: any(
                    x.value is not None and x.value >= 1010 for x in r.readings("plc3", "good")
                ),
                "good to advance by 10",
            )
        polls = len(recorder.readings("plc3", "good"))
        # Two adjacent points, one request per poll, one reading per point per poll.
        assert sim.transaction_count == polls
    good = [r.value for r in recorder.readings("plc3", "good")]
    assert all(isinstance(v, int) for v in good)
    ints = [v for v in good if isinstance(v, int)]
    assert ints[0] >= 1000
    assert ints == sorted(ints)
    assert [r.value for r in recorder.readings("plc3", "scrap")] == [7] * polls
    assert all(r.ok and r.device == "plc3" and r.ts.tzinfo is not None for r in recorder.readings())
    assert recorder.statuses() == []


EVERY_TYPE: dict[str, tuple[dict[str, Any], SimPoint, int | Decimal]] = {
    "u16": ({"address": 0}, SimPoint(0, value=65535), 65535),
    "i16": ({"address": 1, "type": "int16"}, SimPoint(1, "int16", value=-2), -2),
    "u32b": ({"address": 2, "type": "uint32"}, SimPoint(2, "uint32", value=70000), 70000),
    "u32l": (
        {"address": 4, "type": "uint32", "word_order": "little"},
        SimPoint(4, "uint32", word_order="little", value=70000),
        70000,
    ),
    "i32l": (
        {"address": 6, "type": "int32", "word_order": "little"},
        SimPoint(6, "int32", word_order="little", value=-70000),
        -70000,
    ),
    "u64b": ({"address": 8, "type": "uint64"}, SimPoint(8, "uint64", value=2**40 + 5), 2**40 + 5),
    "u64l": (
        {"address": 12, "type": "uint64", "word_order": "little"},
        SimPoint(12, "uint64", word_order="little", value=2**63 + 1),
        2**63 + 1,
    ),
    "f32b": (
        {"address": 20, "type": "float32", "table": "input"},
        SimPoint(20, "float32", "input", value=0.1),
        D("0.1"),
    ),
    "f32l": (
        {"address": 22, "type": "float32", "table": "input", "word_order": "little"},
        SimPoint(22, "float32", "input", "little", value=-1234.5),
        D("-1234.5"),
    ),
    "f64l": (
        {"address": 24, "type": "float64", "table": "input", "word_order": "little"},
        SimPoint(24, "float64", "input", "little", value=0.3),
        D("0.3"),
    ),
    "scaled": ({"address": 40, "scale": "0.01"}, SimPoint(40, value=1234), D("12.34")),
    "coil": (
        {"address": 3, "type": "bool", "table": "coil"},
        SimPoint(3, "bool", "coil", value=1),
        1,
    ),
    "coil_off": (
        {"address": 4, "type": "bool", "table": "coil"},
        SimPoint(4, "bool", "coil", value=0),
        0,
    ),
    "di": (
        {"address": 17, "type": "bool", "table": "discrete"},
        SimPoint(17, "bool", "discrete", value=1),
        1,
    ),
}


def test_every_type_and_word_order_over_the_wire() -> None:
    points = {name: spec for name, (spec, _, _) in EVERY_TYPE.items()}
    recorder = Recorder()
    with PlcSimulator({5: {name: sim for name, (_, sim, _) in EVERY_TYPE.items()}}) as sim:
        config = tcp_config(sim.port, points, unit=5)
        with running(ModbusTcpDriver("plc", config), recorder):
            recorder.wait_readings(len(points))
        polls = len(recorder.readings(point="u16"))
        # holding 0..15, holding 40, input 20..27, coils 3..4, discrete 17: five requests.
        assert len(plan_reads(config.points)) == 5
        assert sim.transaction_count == 5 * polls
    first_poll = {r.point: r.value for r in recorder.readings()[: len(points)]}
    assert first_poll == {name: expected for name, (_, _, expected) in EVERY_TYPE.items()}
    assert not any(isinstance(r.value, float) for r in recorder.readings())


def test_exception_responses_fail_the_affected_points_and_polling_goes_on() -> None:
    points = {**COUNTERS, "scrap": {"address": 110, "type": "uint16"}}  # its own request
    recorder = Recorder()
    sim = PlcSimulator(
        {1: {"good": SimPoint(100, "uint32", value=5), "scrap": SimPoint(110, value=3)}}
    )
    with sim, running(ModbusTcpDriver("plc3", tcp_config(sim.port, points)), recorder):
        recorder.wait_readings(2, point="scrap")
        sim.raise_exception(2, seconds=0.5, point="scrap")
        recorder.wait_for(
            lambda r: any(not x.ok for x in r.readings(point="scrap")), "a failed scrap reading"
        )
        failed = next(x for x in recorder.readings(point="scrap") if not x.ok)
        recorder.wait_for(
            lambda r: (
                r.readings(point="scrap")[-1].ok
                and r.index_of(r.readings(point="scrap")[-1]) > r.index_of(failed)
            ),
            "scrap to read again after the exception ends",
        )
        sim.raise_exception(4, seconds=0.3)  # the whole device fails for a while
        recorder.wait_for(lambda r: not r.readings(point="good")[-1].ok, "failed good")
        recorder.wait_for(lambda r: r.readings(point="good")[-1].ok, "good again")
    assert failed.value is None
    assert failed.error == "modbus exception 2 (illegal data address)"
    good = recorder.readings(point="good")
    assert {r.error for r in good if not r.ok} == {"modbus exception 4 (server device failure)"}
    assert all(r.value == 5 for r in good if r.ok)
    # An exception is an answer: the device stays up.
    assert recorder.statuses() == []


def test_an_undecodable_value_fails_that_point_only() -> None:
    recorder = Recorder()
    points: dict[str, dict[str, Any]] = {
        "ok": {"address": 0},
        "level": {"address": 1, "type": "float32"},
    }
    sim = PlcSimulator(
        {1: {"ok": SimPoint(0, value=9), "level": SimPoint(1, "float32", value=math.nan)}}
    )
    with sim, running(ModbusTcpDriver("tank", tcp_config(sim.port, points)), recorder):
        recorder.wait_readings(2, point="level")
    level = recorder.readings(point="level")[0]
    assert (level.ok, level.value, level.error) == (False, None, "not a finite number: nan")
    assert all(r.ok and r.value == 9 for r in recorder.readings(point="ok"))


@pytest.mark.parametrize("host", ["127.0.0.1", "unresolvable.invalid"])
def test_an_unreachable_host_never_raises(host: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    recorder = Recorder()
    config = tcp_config(closed_port(), COUNTERS, host=host, timeout_ms=100)
    driver = ModbusTcpDriver("ghost", config, backoff=Backoff(0.05, 0.1))
    with running(driver, recorder):
        recorder.wait_for(lambda r: len(r.statuses()) == 1, "a down status")
        # Several more failed attempts, all quiet.
        recorder.wait_for(
            lambda _: sum("still down" in m for m in caplog.messages) >= 3, "quiet retries"
        )
    assert [s.state for s in recorder.statuses()] == ["down"]
    assert recorder.readings() == []
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "device down" in warnings[0].getMessage()


def test_an_emit_that_raises_does_not_end_the_loop() -> None:
    recorder = Recorder()
    calls = 0

    def flaky(event: Event) -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise RuntimeError("agent hiccup")
        recorder(event)

    sim = counter_sim(good=4)
    with sim, running(ModbusTcpDriver("plc3", tcp_config(sim.port, COUNTERS)), flaky):
        recorder.wait_readings(4)
    assert all(r.value in (4, 0) for r in recorder.readings())


def test_an_outage_is_down_once_up_once_and_the_other_device_keeps_polling() -> None:
    recorder = Recorder()
    with counter_sim(good=10) as sim_a, counter_sim(good=20, good_rate=50) as sim_b:
        driver_a = ModbusTcpDriver("a", tcp_config(sim_a.port, COUNTERS), backoff=FAST_BACKOFF)
        driver_b = ModbusTcpDriver("b", tcp_config(sim_b.port, COUNTERS), backoff=FAST_BACKOFF)
        with running(driver_a, recorder), running(driver_b, recorder):
            recorder.wait_readings(2, device="a", point="good")
            sim_a.go_offline(1.5)
            recorder.wait_for(lambda r: len(r.statuses("a")) == 1, "a to go down")
            b_at_down = len(recorder.readings("b"))
            sim_a.set(1, "good", 17)  # counted while nobody could read it
            recorder.wait_for(lambda r: len(r.statuses("a")) == 2, "a to come back up")
            b_at_up = len(recorder.readings("b"))
            recorder.wait_readings(len(recorder.readings("a", "good")) + 3, "a", "good")
    down, up = recorder.statuses("a")
    assert (down.state, up.state) == ("down", "up")
    assert down.reason
    assert not [
        e for e in between(recorder.events, down, up) if isinstance(e, Reading) and e.device == "a"
    ]
    after = [
        r
        for r in recorder.events[recorder.index_of(up) :]
        if isinstance(r, Reading) and r.device == "a" and r.point == "good"
    ]
    assert after[0].value == 17 and all(r.value == 17 for r in after)
    # b kept its pace through a's outage (50 ms polls over ~1.5 s: far more than 5).
    assert b_at_up - b_at_down >= 10
    assert recorder.statuses("b") == []


@pytest.mark.slow
def test_plc_offline_for_10_s_then_back(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    recorder = Recorder()
    backoff = Backoff(initial_s=0.5, max_s=2.0)
    with counter_sim(good=100, good_rate=0) as sim:
        driver = ModbusTcpDriver(
            "plc3", tcp_config(sim.port, COUNTERS, poll_ms=100), backoff=backoff
        )
        with running(driver, recorder):
            before = recorder.wait_readings(3, point="good")
            sim.go_offline(10)
            recorder.wait_for(lambda r: len(r.statuses()) == 1, "down", timeout=5)
            sim.set(1, "good", 12345)
            sim.set(1, "scrap", 3)
            recorder.wait_for(lambda r: len(r.statuses()) == 2, "up", timeout=20)
            count = len(recorder.readings(point="good"))
            recorder.wait_readings(count + 5, point="good")
    down, up = recorder.statuses()
    assert (down.state, up.state) == ("down", "up")
    assert 9 <= (up.ts - down.ts).total_seconds() <= 15
    assert {r.value for r in before} == {100}
    assert not [e for e in between(recorder.events, down, up) if isinstance(e, Reading)]
    after = [e for e in recorder.events[recorder.index_of(up) :] if isinstance(e, Reading)]
    assert {(r.point, r.value) for r in after} == {("good", 12345), ("scrap", 3)}
    assert all(
        isinstance(e, Reading | PollTime) for e in recorder.events[recorder.index_of(up) + 1 :]
    )
    ours = [r for r in caplog.records if r.name == LOGGER]
    assert [r.getMessage() for r in ours if r.levelno == logging.WARNING] == [
        f"plc3: device down: {down.reason} (retrying with backoff)"
    ]
    assert sum("device up again" in r.getMessage() for r in ours if r.levelno == logging.INFO) == 1
    assert sum("still down" in r.getMessage() for r in ours if r.levelno == logging.DEBUG) >= 3
    assert all(e.ok for e in recorder.events if isinstance(e, Reading))
    assert all(isinstance(e, DeviceStatus | Reading | PollTime) for e in recorder.events)


def test_a_unit_the_gateway_cannot_reach_is_down() -> None:
    """Exception 11 is the gateway saying the device behind it does not answer: the device
    is down (device_down), not a point that failed."""
    recorder = Recorder()
    sim = counter_sim()
    with sim, running(ModbusTcpDriver("plc9", tcp_config(sim.port, COUNTERS, unit=9)), recorder):
        recorder.wait_for(lambda r: len(r.statuses()) == 1, "device_down")
    assert recorder.readings() == []
    assert [(s.state, s.reason) for s in recorder.statuses()] == [
        (
            "down",
            "modbus exception 11 (gateway target device failed to respond):"
            " the gateway cannot reach it",
        )
    ]
