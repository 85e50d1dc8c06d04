"""The ASCII dosing meter driver against a simulated pump on real ptys and TCP sockets."""

from __future__ import annotations

import itertools
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from serial_helpers import Events, in_thread, running

from lineside.drivers.dosing.config import AsciiMeterConfig
from lineside.drivers.dosing.driver import AsciiMeterDriver
from lineside.simulators.dosing import PumpSimulator, simulate_device
from lineside.simulators.endpoint import PtyEndpoint, TcpEndpoint
from lineside.simulators.scanner import ScannerSimulator


def meter_config(port: str, **extra: Any) -> AsciiMeterConfig:
    values: dict[str, Any] = {
        "driver": "ascii_meter", "port": port, "point": "total",
        "reconnect_min_ms": 50, "reconnect_max_ms": 400,
    }
    return AsciiMeterConfig(**(values | extra))


def shown(pump: PumpSimulator, k: int) -> Decimal:
    """What line k displays, in the pump's unit."""
    factor = 1000 if pump.settings.unit == "mL" else 1
    step = Decimal(1).scaleb(-pump.settings.decimals)
    return (pump.total_at(k) * factor).quantize(step, rounding=ROUND_DOWN)


def assert_consecutive_totals(events: Events, expected: list[Decimal]) -> None:
    """The readings are a run of consecutive pump lines (lines before the connection are lost)."""
    values = [r.value for r in events.readings()]
    assert all(type(v) is Decimal for v in values)
    start = expected.index(values[0])
    assert values == expected[start : start + len(values)]


def test_pump_litres_read_as_millilitres_over_a_pty(tmp_path: Path) -> None:
    pump = PumpSimulator(
        PtyEndpoint(link=tmp_path / "doser3"), rate_l_per_s=Decimal("0.05"), interval_ms=50
    )
    config = meter_config(pump.url, unit="ml")
    with pump, running(AsciiMeterDriver("doser3", config)) as (events, _):
        events.wait_for(lambda e: len(e.readings()) >= 5, "5 readings")
    assert_consecutive_totals(events, [shown(pump, k) * 1000 for k in range(pump.lines_due + 1)])
    reading = events.readings()[0]
    assert (reading.device, reading.point, reading.ok) == ("doser3", "total", True)
    assert events.states()[0] == "up"


def test_pump_millilitres_read_as_litres_over_tcp() -> None:
    pump = PumpSimulator(
        TcpEndpoint(), rate_l_per_s=Decimal("0.0125"), interval_ms=50, unit="mL", decimals=1,
        start_l=Decimal("2.5"),
    )
    with pump, running(AsciiMeterDriver("doser3", meter_config(pump.url, unit="l"))) as (events, _):
        events.wait_for(lambda e: len(e.readings()) >= 5, "5 readings")
    expected = [shown(pump, k) / 1000 for k in range(pump.lines_due + 1)]
    assert_consecutive_totals(events, expected)
    assert all(v >= Decimal("2.5") for v in (r.value for r in events.readings()))


def test_malformed_lines_are_skipped_and_units_converted(tmp_path: Path) -> None:
    # the scanner simulator is a plain line sender: handy for hand-written meter lines
    with ScannerSimulator(PtyEndpoint(link=tmp_path / "doser3"), terminator="CRLF") as sim:
        config = meter_config(sim.url, unit="l")
        with running(AsciiMeterDriver("doser3", config)) as (events, _):
            events.wait_states("up")
            for line in ["TOT=1.5 L", "garbage", "TOT=2 mL", "TOT=abc L", "TOT=3", "TOT=4.25 l"]:
                sim.send(line)
            sim.send_junk(2000, seed=5)
            sim.send("TOT=5.000 L", fresh_line=True)
            events.wait_for(lambda e: len(e.readings()) >= 5, "5 readings")
    values = [r.value for r in events.readings()]
    assert values == [Decimal("1.5"), Decimal("0.002"), Decimal(3), Decimal("4.25"), Decimal(5)]
    assert all(type(v) is Decimal for v in values)


def test_a_custom_pattern(tmp_path: Path) -> None:
    with ScannerSimulator(PtyEndpoint(link=tmp_path / "doser3"), terminator="\\x03") as sim:
        config = meter_config(
            sim.url, terminator="\\x03", pattern=r"^VOL (?P<value>\d+,\d+) (?P<unit>ml|l)$",
            unit="ml",
        )
        with running(AsciiMeterDriver("doser3", config)) as (events, _):
            events.wait_states("up")
            sim.send("VOL 12,5 l")
            events.wait_for(lambda e: len(e.readings()) >= 1, "a reading")
    assert [r.value for r in events.readings()] == [Decimal("12500.0")]


def test_pump_unplug_and_replug(tmp_path: Path) -> None:
    pump = PumpSimulator(
        PtyEndpoint(link=tmp_path / "doser3"), rate_l_per_s=Decimal(1), interval_ms=50
    )
    with pump, running(AsciiMeterDriver("doser3", meter_config(pump.url))) as (events, _):
        events.wait_for(lambda e: len(e.readings()) >= 2, "2 readings")
        pump.unplug()
        events.wait_states("up", "down")
        before = len(events.readings())
        pump.replug()
        events.wait_states("up", "down", "up")
        events.wait_for(lambda e: len(e.readings()) >= before + 2, "readings after replug")
    values = [r.value for r in events.readings()]
    assert values == sorted(values)  # the totalizer kept counting while unplugged


def test_simulate_device_serves_the_configured_path(tmp_path: Path) -> None:
    config = meter_config(str(tmp_path / "by-id" / "doser3"), unit="ml")
    section = {"rate_l_per_s": "0.5", "interval_ms": 50}
    with (
        in_thread(simulate_device, "doser3", config, section),
        running(AsciiMeterDriver("doser3", config)) as (events, _),
    ):
        events.wait_for(lambda e: len(e.readings()) >= 3, "3 readings")
    values = [r.value for r in events.readings()]
    steps = {b - a for a, b in itertools.pairwise(values)}
    assert steps == {Decimal(25)}  # 0.5 L/s × 50 ms = 25 mL per line
    assert not (tmp_path / "by-id" / "doser3").exists()  # the symlink goes with the simulator
