"""Counters and meters as devices really count, through the ledger on a real SQLite file.

Integer meters wrap at their point's width (the modulus is 2^width x scale), a rollover
is told from a reset by the rate the line can make, and a negative meter total is a bad
reading. The readings come one second apart (StepClock), as a poll would give them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import CounterReading, MeterReading, Result
from lineside.agent.config import load
from lineside.agent.handlers import Ledger
from lineside.agent.runtime import Agent
from lineside.drivers.base import Reading
from tests.broker import Broker, wait_until
from tests.conftest import StepClock

LINE = """
gateway: {id: gw-wrap, site: test, data_dir: ./var}
ledger: {post_interval_s: 1}  # postings within seconds: the test waits for them
items:
  FG:     {uom: ea}
  BOLT:   {uom: ea}
  WATER:  {uom: l, decimals: 1}
  RESIN:  {uom: l, decimals: 3}
  OIL:    {uom: l, decimals: 3}
boms: {FG: {components: [{item: BOLT, qty: 1}]}}
work_centers:
  PRESS: {location: L1, item: FG, counters: {good: plc.good, scrap: plc.scrap}}
meters:
  water: {point: plc.water, item: WATER, work_center: PRESS}
  resin: {point: plc.resin, item: RESIN, work_center: PRESS}
  oil:   {point: plc.oil, item: OIL, work_center: PRESS}
devices:
  plc:
    driver: modbus_tcp
    host: 127.0.0.1
    points:
      good:  {address: 0, type: uint32}
      scrap: {address: 2, type: uint16}
      water: {address: 10, type: uint16, scale: 0.1}
      resin: {address: 12, type: uint32, scale: 0.001}
      oil:   {address: 14, type: float32}
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    config = tmp_path / "line.yaml"
    config.write_text(LINE)
    led = open_ledger(load(config), StepClock())
    yield led
    led.conn.close()


def read(ledger: Ledger, point: str, value: int | Decimal) -> Result:
    ref = f"plc.{point}"
    if isinstance(value, Decimal):
        return ledger.execute(MeterReading(key=ref, ts=ledger.clock(), point=ref, value=value))
    return ledger.execute(CounterReading(key=ref, ts=ledger.clock(), point=ref, value=value))


def measured(ledger: Ledger, item: str) -> Decimal:
    rows = ledger.conn.execute(
        "SELECT qty FROM journal WHERE kind = 'measured' AND item = ?", (item,)
    )
    return -sum((Decimal(r[0]) for r in rows), Decimal(0))


def units(ledger: Ledger, role: str = "completion") -> int:
    rows = ledger.conn.execute("SELECT qty FROM journal WHERE kind = ?", (role,))
    return abs(sum(int(r[0]) for r in rows))  # scrap is booked negative


def alerts(ledger: Ledger) -> list[str]:
    rows = ledger.conn.execute("SELECT payload FROM outbox WHERE stream = 'alert'")
    return [str(r[0]) for r in rows]


def test_a_uint16_meter_in_tenths_of_a_litre_wraps_exactly(ledger: Ledger) -> None:
    raw = 64000
    read(ledger, "water", Decimal(raw) / 10)  # the baseline: 6400.0 l
    for _ in range(200):  # 200 strokes of 3.7 l, across the wrap at 65536 (6553.6 l)
        raw = (raw + 37) % 65536
        assert read(ledger, "water", Decimal(raw) / 10).ok
    assert measured(ledger, "WATER") == Decimal("740.0")
    assert not [a for a in alerts(ledger) if "counter_reset" in a]


def test_a_uint32_meter_in_millilitres_wraps_exactly(ledger: Ledger) -> None:
    raw = 2**32 - 25_000
    read(ledger, "resin", Decimal(raw) / 1000)
    for _ in range(10):  # 10 doses of 7.5 l, across the wrap at 4294967.296 l
        raw = (raw + 7_500) % 2**32
        assert read(ledger, "resin", Decimal(raw) / 1000).ok
    assert measured(ledger, "RESIN") == Decimal("75.000")
    assert not [a for a in alerts(ledger) if "counter_reset" in a]


def test_a_uint16_reset_from_40029_is_a_reset_with_an_alert(ledger: Ledger) -> None:
    read(ledger, "scrap", 40000)
    read(ledger, "scrap", 40029)
    result = read(ledger, "scrap", 8)
    assert "counter_reset" in [a["kind"] for a in result.alerts]
    assert units(ledger, "scrap") == 29 + 8  # counted from 0, not 25,515 phantom units


def test_a_real_uint16_rollover_is_still_a_rollover(ledger: Ledger) -> None:
    for value in (65530, 65535, 4, 9):
        read(ledger, "scrap", value)
    assert units(ledger, "scrap") == 15
    assert not [a for a in alerts(ledger) if "counter_reset" in a]


def test_a_negative_meter_total_is_a_bad_reading_not_consumption(ledger: Ledger) -> None:
    for value in ("5", "-5", "6"):
        read(ledger, "oil", Decimal(value))
    assert measured(ledger, "OIL") == Decimal("1.000")


def test_elapsed_time_is_measured_from_the_last_read_not_the_last_change(
    ledger: Ledger,
) -> None:
    """An idle counter read 100 times (100 s) then dropping to 8 was reset: 100 s of idling
    give no room for a rollover of 25,515 units."""
    read(ledger, "scrap", 40029)
    for _ in range(100):
        read(ledger, "scrap", 40029)
    result = read(ledger, "scrap", 8)
    assert "counter_reset" in [a["kind"] for a in result.alerts]


def test_nothing_is_written_for_a_refused_negative_total(ledger: Ledger) -> None:
    read(ledger, "oil", Decimal("5"))
    assert not read(ledger, "oil", Decimal("-5")).ok
    (value,) = ledger.conn.execute("SELECT value FROM counters WHERE point = 'plc.oil'").fetchone()
    assert value == "5"
    assert isinstance(ledger.conn, sqlite3.Connection)


def test_a_meter_reading_negative_every_poll_is_logged_once(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the agent's own entry for drivers: the refusal is a warning once, its
    repeats are debug, and the first good reading after them says so."""
    caplog.set_level(logging.INFO, logger="lineside.agent")
    config = tmp_path / "line.yaml"
    config.write_text(
        LINE.replace(
            "gateway: {id: gw-wrap, site: test, data_dir: ./var}",
            f"gateway: {{id: gw-wrap, site: test, data_dir: ./var}}\nmqtt: {{port: {broker.port}}}",
        )
    )
    agent = Agent(load(config))
    agent.start()
    try:
        start = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
        for n, value in enumerate(("5", "-5", "-5.5", "-6", "7")):
            ts = start + timedelta(seconds=n)
            agent.emit(Reading("plc", "oil", Decimal(value), ts))
            wait_until(lambda: agent.events.empty(), 10, "the writer took it")
        db = tmp_path / "var" / "ledger.sqlite"
        wait_until(lambda: counter_value(db, "plc.oil") == "7", 10, "the good reading")
    finally:
        agent.stop()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    refused = [m for m in messages if m.startswith("refused MeterReading")]
    assert len(refused) == 1, refused
    assert "read a negative total -5" in refused[0]
    assert "plc.oil: readings taken again" in messages


def counter_value(db: Path, point: str) -> str | None:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT value FROM counters WHERE point = ?", (point,)).fetchone()
        return None if row is None else str(row[0])
    finally:
        conn.close()
