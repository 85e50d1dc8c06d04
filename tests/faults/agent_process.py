"""Run `lineside run` as a real process for fault tests: start, kill -9, stop."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from lineside.simulators.plc import PlcSimulator
from tests.broker import Consumer, tx_check

LINE = """
gateway: {{id: gw-chaos, site: test, data_dir: ./var}}
mqtt: {{host: 127.0.0.1, port: {broker}, batch_max: 50}}
items:
  FG:    {{uom: ea, cost: 2}}
  SHEET: {{uom: kg, decimals: 3, cost: 1.25}}
  BOLT:  {{uom: ea, cost: 0.05}}
boms:
  FG: {{components: [{{item: SHEET, qty: 0.8755}}, {{item: BOLT, qty: 4}}]}}
work_centers:
  CELL: {{location: L1, item: FG, counters: {{good: plc.good, scrap: plc.scrap}},
          max_delta: 100000}}
devices:
  plc:
    driver: modbus_tcp
    host: 127.0.0.1
    port: {plc}
    poll_ms: 50
    timeout_ms: 300
    points:
      good:  {{address: 10, type: uint32}}
      scrap: {{address: 12, type: uint16}}
log: {{format: keyvalue, level: warning}}
"""
PER_UNIT = {"SHEET": Decimal("0.8755"), "BOLT": Decimal(4)}


def write_line(tmp: Path, broker: int, plc: int) -> Path:
    path = tmp / "line.yaml"
    path.write_text(LINE.format(broker=broker, plc=plc))
    return path


class AgentProcess:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "agent.log"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lineside.agent.cli", "run", "-c", str(self.config)],
                stdout=out,
                stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


def ledger(config: Path) -> sqlite3.Connection:
    return sqlite3.connect(config.parent / "var" / "ledger.sqlite", timeout=30)


def counter_of(config: Path, point: str) -> int | None:
    """The ledger's last-seen value of point, or None before the agent has made the ledger."""
    if not (config.parent / "var" / "ledger.sqlite").exists():
        return None
    conn = ledger(config)
    try:
        return counter(conn, point)
    finally:
        conn.close()


def counter(conn: sqlite3.Connection, point: str) -> int | None:
    try:
        row = conn.execute("SELECT value FROM counters WHERE point = ?", (point,)).fetchone()
    except sqlite3.OperationalError:  # not created yet
        return None
    return None if row is None else int(row[0])


def totals(conn: sqlite3.Connection) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = {}
    for kind, item, qty in conn.execute("SELECT kind, item, qty FROM journal"):
        out[(kind, item)] = out.get((kind, item), Decimal(0)) + Decimal(qty)
    return out


def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


TX = "lineside/v1/test/gw-chaos/tx"


def finish(agent: AgentProcess, config: Path, plc: PlcSimulator) -> None:
    """Stop the line, let the agent read the last values and drain the outbox, stop it."""
    plc.set_rate(1, "good", 0)
    plc.set_rate(1, "scrap", 0)
    good, scrap = int(plc.value(1, "good")), int(plc.value(1, "scrap"))
    conn = ledger(config)
    wait_for(
        lambda: counter(conn, "plc.good") == good and counter(conn, "plc.scrap") == scrap,
        60,
        "the agent to read the last values",
    )
    wait_for(
        lambda: (
            conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_ts IS NULL").fetchone()[0] == 0
        ),
        120,
        "the outbox to drain",
    )
    assert agent.stop() == 0


def assert_exact(config: Path, consumer: Consumer, good: int, scrap: int) -> None:
    """The ledger holds exactly good and scrap units × the BOM, every transaction reached
    the consumer once (after de-duplication) in the ledger's order, and SQLite is sound."""
    conn = ledger(config)
    booked = totals(conn)
    assert booked[("completion", "FG")] == good
    for item, per_unit in PER_UNIT.items():
        exact = per_unit * (good + scrap)
        posted = -(
            booked.get(("backflush", item), Decimal(0)) + booked.get(("scrap", item), Decimal(0))
        )
        assert posted == exact.quantize(
            Decimal("0.001") if item == "SHEET" else Decimal(1), ROUND_HALF_UP
        )
    received, _ = tx_check(consumer.on(TX))
    journal = [row[0] for row in conn.execute("SELECT id FROM journal ORDER BY seq")]
    assert [tx["id"] for tx in received] == journal
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
