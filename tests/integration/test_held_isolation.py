"""A held event that repeats is held again, and never stops the ledger writer for others.

The agent runs whole with two PLCs: the first repeats a held transition (the issue's two
ways in), the second is healthy and counts 250 units meanwhile, which must all post.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import Command, CounterReading
from lineside.agent.config import load
from lineside.agent.handlers import ledger_failure
from lineside.agent.runtime import Agent
from lineside.agent.writer import what_to_do
from lineside.simulators.plc import PlcSimulator, SimPoint
from tests.broker import Broker, wait_until
from tests.conftest import StepClock

LINE = """
gateway: {{id: gw-held, site: test, data_dir: ./var}}
ledger: {{post_interval_s: 1}}  # postings within seconds: the test waits for them
mqtt: {{port: {broker}}}
items:
  FA:    {{uom: ea}}
  FB:    {{uom: ea}}
  STEEL: {{uom: kg, decimals: 3}}
boms:
  FA: {{components: [{{item: STEEL, qty: 0.5}}]}}
  FB: {{components: [{{item: STEEL, qty: 0.5}}]}}
work_centers:
  A: {{location: LA, item: FA, counters: {{good: plca.good}}, on_shortage: hold,
      max_delta: 5000}}
  B: {{location: LB, item: FB, counters: {{good: plcb.good}}}}
devices:
  plca: {{driver: modbus_tcp, host: 127.0.0.1, port: {a}, poll_ms: 50,
          points: {{good: {{address: 10, type: uint32}}}}}}
  plcb: {{driver: modbus_tcp, host: 127.0.0.1, port: {b}, poll_ms: 50,
          points: {{good: {{address: 10, type: uint32}}}}}}
"""
HEALTHY_UNITS = 250
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)

# The first PLC's counter, value after value; each is read before the next is set.
WAYS_IN = {
    # on_shortage: hold and no stock: 0->1 and 1->2 held, a restart, then 1->2 again
    "shortage after a restart": ([0, 1, 2, 0, 1, 2], {"shortage": 4}),
    # max_delta 5000: 109->100000 held, back to 109 (a reset, whose 109 units wait for
    # stock), then 109->100000 again
    "implausible jump twice": ([109, 100000, 109, 100000], {"implausible": 2, "shortage": 1}),
}


@pytest.fixture
def plcs() -> Iterator[tuple[PlcSimulator, PlcSimulator]]:
    sims = [PlcSimulator({1: {"good": SimPoint(10, "uint32", value=0)}}, port=0) for _ in "ab"]
    for sim in sims:
        sim.start()
    yield sims[0], sims[1]
    for sim in sims:
        sim.stop()


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def last_value(db: Path, point: str) -> Callable[[], str | None]:
    def read() -> str | None:
        rows = query(db, f"SELECT value FROM counters WHERE point = '{point}'")
        return str(rows[0][0]) if rows else None

    return read


def healthy_units_posted(plcb: PlcSimulator, db: Path) -> int:
    """Let the healthy PLC (counting since the caller set its rate) reach HEALTHY_UNITS,
    stop it, and wait until the ledger has read its last count; returns that count."""
    wait_until(lambda: plcb.value(1, "good") >= HEALTHY_UNITS, 20, "plcb's units")
    plcb.set_rate(1, "good", 0)
    made = int(plcb.value(1, "good"))
    wait_until(lambda: last_value(db, "plcb.good")() == str(made), 20, "plcb's last count")
    return made


def completed(db: Path, item: str) -> int:
    rows = query(db, f"SELECT qty FROM journal WHERE kind = 'completion' AND item = '{item}'")
    return sum(int(str(q[0])) for q in rows)


@pytest.mark.parametrize("way", sorted(WAYS_IN))
def test_a_repeated_held_event_is_held_again_and_the_other_plc_keeps_posting(
    way: str,
    tmp_path: Path,
    broker: Broker,
    plcs: tuple[PlcSimulator, PlcSimulator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="lineside")
    plca, plcb = plcs
    values, holds = WAYS_IN[way]
    config = tmp_path / "line.yaml"
    config.write_text(LINE.format(broker=broker.port, a=plca.port, b=plcb.port))
    db = tmp_path / "var" / "ledger.sqlite"
    plca.set(1, "good", values[0])
    agent = Agent(load(config))
    agent.start()
    try:
        wait_until(lambda: last_value(db, "plcb.good")() == "0", 20, "plcb's baseline")
        plcb.set_rate(1, "good", 100)  # the healthy PLC counts meanwhile
        for value in values:
            plca.set(1, "good", value)
            wait_until(lambda v=value: last_value(db, "plca.good")() == str(v), 20, f"{value}")  # type: ignore[misc]
        made = healthy_units_posted(plcb, db)
        ok, body = agent.health()
    finally:
        agent.stop()
    assert completed(db, "FB") == made
    kinds = [str(r[0]).split()[0].rstrip(":") for r in query(db, "SELECT reason FROM held")]
    assert {k: kinds.count(k) for k in kinds} == holds
    assert ok, body["problems"]
    assert not [r for r in caplog.records if "NOT WRITABLE" in r.getMessage()]


def test_a_command_that_breaks_a_constraint_is_refused_alone_with_its_cause(
    tmp_path: Path,
    broker: Broker,
    plcs: tuple[PlcSimulator, PlcSimulator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The mechanism, whatever the constraint: here a trigger of the test's own refuses the
    first PLC's counter from 5 on, as a unique index refused the repeated hold."""
    caplog.set_level(logging.WARNING, logger="lineside")
    plca, plcb = plcs
    config = tmp_path / "line.yaml"
    config.write_text(LINE.format(broker=broker.port, a=plca.port, b=plcb.port))
    db = tmp_path / "var" / "ledger.sqlite"
    agent = Agent(load(config))
    agent.start()
    try:
        wait_until(lambda: last_value(db, "plca.good")() == "0", 20, "plca's baseline")
        conn = sqlite3.connect(db)
        conn.execute(
            "CREATE TRIGGER refuse_plca BEFORE UPDATE ON counters"
            " WHEN NEW.point = 'plca.good' AND CAST(NEW.value AS INTEGER) >= 5"
            " BEGIN SELECT RAISE(ABORT, 'the test refuses plca'); END"
        )
        conn.close()
        plca.set(1, "good", 7)
        plcb.set_rate(1, "good", 100)  # the healthy PLC counts meanwhile
        made = healthy_units_posted(plcb, db)
        ok, body = agent.health()
    finally:
        agent.stop()
    assert last_value(db, "plca.good")() == "0"  # refused: the PLC keeps the count
    assert completed(db, "FB") == made
    assert ok, body["problems"]
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "NOT WRITABLE" in m]
    assert any(
        "CounterReading plca.good refused: IntegrityError: the test refuses plca" in m
        for m in messages
    ), messages


def test_a_full_ledger_is_not_a_command_s_refusal(tmp_path: Path) -> None:
    """SQLITE_FULL (here SQLite's own limit, the error a full disk gives) is no command's
    fault: the batch fails whole, nothing is refused, and the advice names the disk."""
    config = tmp_path / "line.yaml"
    config.write_text(LINE.format(broker=1883, a=1502, b=1503))
    ledger = open_ledger(load(config), StepClock())
    try:
        ledger.execute_batch([CounterReading(key="plcb.good", ts=T0, point="plcb.good", value=0)])
        pages = ledger.conn.execute("PRAGMA page_count").fetchone()[0]
        ledger.conn.execute(f"PRAGMA max_page_count = {pages}")
        batch: list[Command] = [
            CounterReading(key="plcb.good", ts=T0, point="plcb.good", value=n) for n in (1, 2)
        ]
        with pytest.raises(sqlite3.OperationalError) as failed:
            for _ in range(200):  # until the pages are used up
                batch = [replace(c, value=int(c.value) + 2) for c in batch]  # type: ignore[arg-type]
                ledger.execute_batch(batch)
        assert ledger_failure(failed.value)
        assert what_to_do(failed.value, tmp_path) == f"Free disk space on {tmp_path}."
    finally:
        ledger.conn.close()
