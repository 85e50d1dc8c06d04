"""A slow RTU device whose late answers must never be taken for the next request's.

The issue's line, at a quarter of its timings: unit 8 answers in 25 ms and every 15th
answer in 300 ms, with timeout_ms 250 and poll_ms 62; a uint32 counter in holding 0-1
(max_delta 5000) and a uint32 meter in input 4-5 (scale 0.001). The server is libmodbus
on a pty pair; the agent runs whole, with its ledger and a real broker.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.agent.config import load
from lineside.agent.runtime import Agent
from tests.broker import Broker, wait_until
from tests.integration.libmodbus import rtu_server

LINE = """
gateway: {{id: gw-rtu, site: test, data_dir: ./var}}
mqtt: {{port: {broker}}}
items:
  FG:    {{uom: ea}}
  BOLT:  {{uom: ea}}
  PAINT: {{uom: l, decimals: 3}}
boms: {{FG: {{components: [{{item: BOLT, qty: 1}}]}}}}
work_centers:
  LINE: {{location: L1, item: FG, counters: {{good: doser.good}}, max_delta: 5000}}
meters:
  pump: {{point: doser.total_l, item: PAINT, work_center: LINE}}
devices:
  doser:
    driver: modbus_rtu
    port: "{port}"
    baudrate: 115200
    unit: 8
    timeout_ms: 250
    poll_ms: 62
    pause_ms: 5
    points:
      good:    {{address: 0, type: uint32}}
      total_l: {{address: 4, type: uint32, table: input, scale: 0.001}}
"""
UNITS = 300
ML_PER_UNIT = 10  # the meter's raw step: 0.010 l


def booked(db: Path) -> tuple[int, Decimal]:
    conn = sqlite3.connect(db)
    try:
        units = conn.execute("SELECT qty FROM journal WHERE kind = 'completion'").fetchall()
        litres = conn.execute("SELECT qty FROM journal WHERE kind = 'measured'").fetchall()
        return sum(int(u[0]) for u in units), -sum((Decimal(x[0]) for x in litres), Decimal(0))
    finally:
        conn.close()


def stored(agent: Agent, point: str) -> str | None:
    return agent.devices["doser"].last_values.get(point) if "doser" in agent.devices else None


def test_late_rtu_answers_never_swap_values_and_the_totals_are_exact(
    libmodbus_server_bin: Path, tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lineside")
    with rtu_server(libmodbus_server_bin, tmp_path, unit=8) as (server, port):
        server.command("delay 25")
        config = tmp_path / "line.yaml"
        config.write_text(LINE.format(broker=broker.port, port=port))
        agent = Agent(load(config))
        agent.start()
        try:
            wait_until(lambda: stored(agent, "total_l") == "0.000", 20, "the baseline")
            server.command("late 300 15")
            for _ in range(UNITS):
                server.command("add32 holding 0 1")
                server.command(f"add32 input 4 {ML_PER_UNIT}")
                time.sleep(0.01)
            # a few more late answers once the counts stand still
            time.sleep(1.0)
            wait_until(
                lambda: stored(agent, "good") == str(UNITS) and stored(agent, "total_l") == "3.000",
                30,
                "the last counts read",
            )
            late = int(server.command("answers")) // 15
        finally:
            agent.stop()
    assert late >= 5, "the test must see late answers"
    assert booked(tmp_path / "var" / "ledger.sqlite") == (UNITS, Decimal("3.000"))
    conn = sqlite3.connect(tmp_path / "var" / "ledger.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM held").fetchone()[0] == 0
    alerts = [r[0] for r in conn.execute("SELECT payload FROM outbox WHERE stream = 'alert'")]
    assert not [a for a in alerts if "counter_reset" in a or "implausible" in a]
    warnings = [r.getMessage() for r in caplog.records if r.name == "lineside.drivers.modbus"]
    assert any("timeout_ms 250" in w and "discarded" in w for w in warnings), warnings
