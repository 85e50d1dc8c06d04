"""The agent with real simulated devices: counts made while it was down, and a lot label
scanned at the line consumed first by the next backflush."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.agent.config import load
from lineside.agent.runtime import Agent
from lineside.simulators.endpoint import TcpEndpoint
from lineside.simulators.plc import PlcSimulator, SimPoint
from lineside.simulators.scanner import ScannerSimulator
from tests.broker import Broker, wait_until

CONFIG = """
gateway: {{id: gw-dev, site: test, data_dir: ./var}}
ledger: {{post_interval_s: 1}}  # postings within seconds: the test waits for them
mqtt: {{port: {broker}}}
items:
  FG:    {{uom: ea}}
  STEEL: {{uom: kg, decimals: 3, gtin: "09521234543213"}}
boms: {{FG: {{components: [{{item: STEEL, qty: 0.5}}]}}}}
work_centers:
  PRESS: {{location: LINE, item: FG, counters: {{good: plc.good}}}}
devices:
  plc: {{driver: modbus_tcp, host: 127.0.0.1, port: {plc}, poll_ms: 100,
         points: {{good: {{address: 10, type: uint32}}}}}}
  scanner: {{driver: serial_scanner, port: "{scanner}", work_center: PRESS}}
"""


@pytest.fixture
def plc() -> Iterator[PlcSimulator]:
    sim = PlcSimulator({1: {"good": SimPoint(10, "uint32", value=7000)}}, port=0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def scanner() -> Iterator[ScannerSimulator]:
    with ScannerSimulator(TcpEndpoint()) as sim:
        yield sim


def committed(agent: Agent, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows as committed: the writer's own connection would also show a transaction it
    has not finished (a completion journaled before its stock moves are)."""
    conn = sqlite3.connect(agent.db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def completions(agent: Agent) -> int:
    rows = committed(agent, "SELECT qty FROM journal WHERE kind = 'completion'")
    return sum(int(str(r[0])) for r in rows)


def start(path: Path) -> Agent:
    agent = Agent(load(path))
    agent.start()
    return agent


def test_units_counted_while_down_post_once_and_scanned_lots_go_first(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, scanner: ScannerSimulator
) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(CONFIG.format(broker=broker.port, plc=plc.port, scanner=scanner.url))
    agent = start(path)
    wait_until(
        lambda: (
            agent.devices.get("plc") is not None
            and agent.devices["plc"].last_values.get("good") == "7000"
        ),
        20,
        "baseline",
    )
    agent.stop()

    plc.advance(1, "good", 500)  # the agent is down; the PLC keeps counting
    agent = start(path)
    try:
        wait_until(lambda: completions(agent) == 500, 20, "the 500 units made while down")
        assert agent.ledger is not None
        steel = committed(agent, "SELECT lot, qty FROM stock WHERE item = 'STEEL'")
        assert dict(steel) == {"": "-250.000"}  # nothing was staged yet

        wait_until(
            lambda: (
                agent.devices.get("scanner") is not None and agent.devices["scanner"].up is True
            ),
            20,
            "the scanner connected",
        )
        scanner.send("]C1010952123454321310HEAT-9\x1d3103400000")  # 400 kg, lot HEAT-9
        wait_until(lambda: _lot(agent, "HEAT-9") is not None, 20, "the lot staged")
        plc.advance(1, "good", 100)
        wait_until(lambda: completions(agent) == 600, 20, "100 more units")
        # 400 kg arrived; 250 kg had been used before it was booked in (the negative
        # without a lot is settled from it), then 100 units took 50 kg from it
        assert _lot(agent, "HEAT-9") == Decimal("100.000")
        assert _lot(agent, "") == Decimal("0.000")
        assert completions(agent) == 600  # once, not again
    finally:
        agent.stop()


def _lot(agent: Agent, lot: str) -> Decimal | None:
    rows = committed(agent, "SELECT qty FROM stock WHERE item = 'STEEL' AND lot = ?", lot)
    return None if not rows else Decimal(str(rows[0][0]))
