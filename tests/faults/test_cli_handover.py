"""A CLI command while readings wait in the running agent: the agent commits what waits
first, so an order closed or started with `lineside order` keeps the units counted
before it, and a cycle count is compared with a book that includes them."""

from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.simulators.plc import PlcSimulator
from tests.broker import Broker
from tests.faults import agent_process as line

LONG_WINDOW = "ledger: {commit_interval_s: 60, post_interval_s: 600}\n"
AT_LINE = ("--location", "L1", "--lot", "B1")


def cli(config: Path, *argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lineside.agent.cli", *argv, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def count_and_wait(plc: PlcSimulator, seconds: float) -> int:
    """The PLC counts for a while and stops; the agent has read the last value, which waits
    in its memory (the window has minutes to go). Returns the PLC's count."""
    plc.set_rate(1, "good", 20)
    time.sleep(seconds)
    plc.set_rate(1, "good", 0)
    good = int(plc.value(1, "good"))
    time.sleep(0.5)
    return good


def completed_by_order(config: Path) -> dict[str | None, Decimal]:
    conn = line.ledger(config)
    try:
        rows = conn.execute(
            "SELECT order_no, qty FROM journal WHERE kind = 'completion' AND item = 'FG'"
        ).fetchall()
    finally:
        conn.close()
    out: dict[str | None, Decimal] = {}
    for order, qty in rows:
        out[order] = out.get(order, Decimal(0)) + Decimal(qty)
    return out


@pytest.mark.slow
def test_an_order_closed_and_started_by_the_cli_keeps_the_units_counted_before_it(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    config = line.write_line(tmp_path, broker.port, plc.port)
    config.write_text(config.read_text() + LONG_WINDOW)
    agent = line.AgentProcess(config)
    agent.start()
    try:
        line.wait_for(lambda: line.counter_of(config, "plc.good") == 0, 60, "the baseline read")
        cli(config, "order", "start", "--work-center", "CELL", "--order", "A", "--item", "FG")
        first = count_and_wait(plc, 1.5)
        assert line.counter_of(config, "plc.good") == 0  # still waiting in the agent
        cli(config, "order", "close", "--order", "A")
        cli(config, "order", "start", "--work-center", "CELL", "--order", "B", "--item", "FG")
        second = count_and_wait(plc, 1.0)
    finally:
        assert agent.stop() == 0
    assert first > 0 and second > first
    # every unit counted before A was closed is A's; the rest are B's, none without an order
    assert completed_by_order(config) == {"A": Decimal(first), "B": Decimal(second - first)}


@pytest.mark.slow
def test_a_cycle_count_by_the_cli_is_compared_with_the_units_the_agent_holds(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    config = line.write_line(tmp_path, broker.port, plc.port)
    config.write_text(config.read_text() + LONG_WINDOW)
    cli(config, "receive", "--item", "BOLT", "--qty", "1000", *AT_LINE)
    agent = line.AgentProcess(config)
    agent.start()
    try:
        line.wait_for(lambda: line.counter_of(config, "plc.good") == 0, 60, "the baseline read")
        good = count_and_wait(plc, 1.0)
        on_shelf = 1000 - 4 * good  # 4 bolts a unit: what a person counts at the line
        cli(config, "count", "--item", "BOLT", "--qty", str(on_shelf), *AT_LINE)
    finally:
        assert agent.stop() == 0
    conn = line.ledger(config)
    try:
        book = conn.execute(
            "SELECT qty FROM stock WHERE item = 'BOLT' AND location = 'L1' AND lot = 'B1'"
        ).fetchone()[0]
        adjusted = conn.execute("SELECT COUNT(*) FROM journal WHERE kind = 'adjustment'")
        adjustments = adjusted.fetchone()[0]
    finally:
        conn.close()
    # the count found what the book said once the waiting units were posted: no difference
    assert Decimal(book) == on_shelf
    assert adjustments == 0
