"""A scanner unplugged and replugged under a running agent, and a disk that fills up."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from lineside.agent.config import load
from lineside.agent.runtime import Agent
from lineside.simulators.endpoint import TcpEndpoint
from lineside.simulators.plc import PlcSimulator
from lineside.simulators.scanner import ScannerSimulator
from tests.broker import Broker, Consumer
from tests.faults.agent_process import PER_UNIT, AgentProcess, counter, ledger, totals, wait_for

SCANNER_LINE = """
gateway: {{id: gw-scan, site: test, data_dir: ./var}}
mqtt: {{port: {broker}}}
items: {{STEEL: {{uom: kg, decimals: 3, gtin: "09521234543213"}}}}
work_centers: {{PRESS: {{location: LINE}}}}
devices:
  scanner: {{driver: serial_scanner, port: "{url}", work_center: PRESS,
             reconnect_min_ms: 100, reconnect_max_ms: 500}}
"""
LOT_LABEL = "]C1010952123454321310LOT-{n}\x1d3103001000"  # 1.000 kg of lot LOT-n


def _health_devices(agent: AgentProcess) -> str:
    """The scanner's connection shows in the agent's log (the driver logs its port opening)."""
    return agent.log.read_text() if agent.log.exists() else ""


@pytest.fixture
def scanner() -> Iterator[ScannerSimulator]:
    with ScannerSimulator(TcpEndpoint()) as sim:
        yield sim


@pytest.mark.slow
def test_scanner_unplugged_and_replugged(
    tmp_path: Path, broker: Broker, scanner: ScannerSimulator
) -> None:
    config = tmp_path / "line.yaml"
    config.write_text(SCANNER_LINE.format(broker=broker.port, url=scanner.url))
    consumer = Consumer(broker.port, ["lineside/v1/test/gw-scan/alerts"]).start()
    agent = AgentProcess(config)
    agent.start()
    try:

        def lots() -> set[str]:
            if not (tmp_path / "var" / "ledger.sqlite").exists():
                return set()
            rows = ledger(config).execute("SELECT lot FROM journal WHERE kind = 'receipt'")
            return {r[0] for r in rows}

        wait_for(lambda: "scanner: up" in _health_devices(agent), 30, "the scanner connected")
        scanner.send(LOT_LABEL.format(n=1))
        wait_for(lambda: "LOT-1" in lots(), 30, "the first label")
        scanner.unplug()

        def kinds() -> list[str]:
            return [a["kind"] for a in consumer.json_on("lineside/v1/test/gw-scan/alerts")]

        wait_for(lambda: "device_down" in kinds(), 30, "device_down")
        scanner.replug()
        wait_for(lambda: "device_up" in kinds(), 30, "device_up")
        scanner.send(LOT_LABEL.format(n=2), fresh_line=True)
        wait_for(lambda: "LOT-2" in lots(), 30, "a label read after the replug")
        assert agent.stop() == 0
    finally:
        consumer.stop()
    stock = dict(ledger(config).execute("SELECT lot, qty FROM stock").fetchall())
    assert stock == {"LOT-1": "1.000", "LOT-2": "1.000"}  # each label once


def _try_mount_tmpfs(path: Path, size: str) -> str | None:
    path.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if result.returncode == 0 else (result.stderr.strip() or "mount failed")


def _line(tmp_path: Path, broker: Broker, plc: PlcSimulator, data_dir: Path) -> Path:
    from tests.faults.agent_process import write_line

    config = write_line(tmp_path, broker.port, plc.port)
    config.write_text(config.read_text().replace("data_dir: ./var", f"data_dir: {data_dir}"))
    return config


def _assert_exact(conn_path: Path, good: int) -> None:
    conn = sqlite3.connect(conn_path)
    booked = totals(conn)
    assert booked[("completion", "FG")] == good
    for item, per_unit in PER_UNIT.items():
        step = Decimal("0.001") if item == "SHEET" else Decimal(1)
        assert -booked[("backflush", item)] == (per_unit * good).quantize(step, ROUND_HALF_UP)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.slow
def test_disk_full_on_a_real_small_filesystem(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    mount = tmp_path / "small"
    why = _try_mount_tmpfs(mount, "3m")
    if why is not None:
        pytest.skip(
            f"cannot mount a small tmpfs here ({why}); "
            "test_disk_full_at_the_ledger_boundary covers this without mounting"
        )
    try:
        config = _line(tmp_path, broker, plc, mount / "var")
        agent = AgentProcess(config)
        agent.start()
        db = mount / "var" / "ledger.sqlite"
        wait_for(
            lambda: db.exists() and counter(sqlite3.connect(db), "plc.good") == 0,
            60,
            "the baseline",
        )
        plc.set_rate(1, "good", 20)
        time.sleep(1.0)
        filler = mount / "filler"
        with filler.open("wb") as out:  # fill the disk to the last block
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError:
                pass
        wait_for(
            lambda: "LEDGER NOT WRITABLE" in agent.log.read_text(),
            60,
            "the agent to say the ledger is full",
        )
        time.sleep(2.0)  # production goes on while the disk is full
        filler.unlink()
        plc.set_rate(1, "good", 0)
        good = int(plc.value(1, "good"))
        wait_for(lambda: counter(sqlite3.connect(db), "plc.good") == good, 60, "catching up")
        assert agent.stop() == 0
        log = agent.log.read_text()
        assert "ledger writable again" in log
        assert f"LEDGER NOT WRITABLE (the disk is full: no space left on {mount / 'var'}" in log
        assert f"Free disk space on {mount / 'var'}." in log
        assert "cannot rollback" not in log
        _assert_exact(db, good)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=10)


@pytest.mark.slow
def test_disk_full_at_the_ledger_boundary(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    """SQLite's own full-database error (max_page_count), the same SQLITE_FULL a full disk
    gives, at the ledger's write boundary of an agent running in-process."""
    config = _line(tmp_path, broker, plc, tmp_path / "var")
    # every poll commits, so the ledger runs out of pages within the test's seconds
    immediate = "ledger: {commit_interval_s: 0.05, post_interval_s: 0}\n"
    config.write_text(config.read_text() + immediate)
    agent = Agent(load(config))
    agent.start()
    try:
        assert agent.ledger is not None
        conn = agent.ledger.conn
        wait_for(
            lambda: "plc" in agent.devices and "good" in agent.devices["plc"].last_values,
            30,
            "reads",
        )
        plc.set_rate(1, "good", 20)
        time.sleep(1.0)
        with agent.ledger._lock:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
        wait_for(lambda: agent.ledger_error is not None, 30, "the ledger to fill up")
        ok, body = agent.health()
        assert not ok and any(
            p.startswith("ledger not writable: the disk is full") for p in body["problems"]
        )
        time.sleep(1.0)
        with agent.ledger._lock:
            conn.execute("PRAGMA max_page_count = 1073741823")
        plc.set_rate(1, "good", 0)
        good = int(plc.value(1, "good"))
        wait_for(lambda: counter(conn, "plc.good") == good, 30, "catching up")
        wait_for(lambda: agent.ledger_error is None, 30, "writable again")
    finally:
        agent.stop()
    _assert_exact(tmp_path / "var" / "ledger.sqlite", good)
