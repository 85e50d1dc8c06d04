"""The Agent in-process with real parts: a driver that always raises harms nobody else."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lineside.agent.config import load
from lineside.agent.runtime import Agent
from lineside.drivers.base import Emit, StopFlag
from lineside.drivers.registry import DeviceSet, build_drivers
from lineside.simulators.plc import PlcSimulator, SimPoint
from tests.broker import Broker, Consumer, wait_until

CONFIG = """
gateway: {{id: gw-rt, site: test, data_dir: ./var}}
ledger: {{post_interval_s: 1}}  # postings within seconds: the test waits for them
mqtt: {{port: {broker}}}
items: {{FG: {{uom: ea}}, SHEET: {{uom: kg, decimals: 3}}}}
boms: {{FG: {{components: [{{item: SHEET, qty: 0.5}}]}}}}
work_centers:
  CELL-1: {{location: L1, item: FG, counters: {{good: plc1.good}}}}
devices:
  plc1: {{driver: modbus_tcp, host: 127.0.0.1, port: {plc}, poll_ms: 100,
          points: {{good: {{address: 10, type: uint32}}}}}}
"""


class RaisingDriver:
    """A driver with a bug: every run raises at once."""

    name = "broken"

    def __init__(self) -> None:
        self.runs = 0

    def run(self, stop: StopFlag, emit: Emit) -> None:
        self.runs += 1
        raise RuntimeError("bug in a driver")


@pytest.fixture
def plc() -> Iterator[PlcSimulator]:
    sim = PlcSimulator({1: {"good": SimPoint(10, "uint32", value=500)}}, port=0)
    sim.start()
    yield sim
    sim.stop()


def test_a_crashing_driver_stops_neither_other_devices_nor_sync(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(CONFIG.format(broker=broker.port, plc=plc.port))
    broken = RaisingDriver()

    def factory(devices: dict[str, Any], clock: Any) -> DeviceSet:
        made = build_drivers(devices, clock)
        made.drivers.append(broken)
        return made

    consumer = Consumer(broker.port, ["lineside/v1/test/gw-rt/#"]).start()
    agent = Agent(load(path), driver_factory=factory)
    agent.start()
    try:
        wait_until(
            lambda: (
                agent.devices.get("plc1") is not None
                and "good" in agent.devices["plc1"].last_values
            ),
            20,
            "first reading",
        )
        plc.advance(1, "good", 40)
        wait_until(lambda: broken.runs >= 3, 30, "the broken driver restarted")

        def units() -> int:
            return sum(
                int(tx["qty"])
                for m in consumer.json_on("lineside/v1/test/gw-rt/tx")
                for tx in m["transactions"]
                if tx["kind"] == "completion"
            )

        wait_until(lambda: units() == 40, 20, "40 units at the central subscriber")
        alerts = consumer.json_on("lineside/v1/test/gw-rt/alerts")
        wait_until(
            lambda: any(
                a["kind"] == "device_down" and a["device"] == "broken"
                for a in consumer.json_on("lineside/v1/test/gw-rt/alerts")
            ),
            20,
            "device_down alert for the broken driver",
        )
        assert not any(a.get("device") == "plc1" for a in alerts)
        ok, body = agent.health()
        assert ok, body
    finally:
        agent.stop()
        consumer.stop()


def test_a_handler_bug_is_isolated_and_the_writer_goes_on(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from lineside.agent.commands import Complete, Notice
    from lineside.agent.handlers import HANDLERS

    path = tmp_path / "line.yaml"
    path.write_text(CONFIG.format(broker=broker.port, plc=plc.port))
    agent = Agent(load(path))
    agent.start()
    try:
        assert agent.ledger is not None

        def buggy(ctx: Any, uow: Any, cmd: Any) -> None:
            raise ZeroDivisionError("a bug")

        monkeypatch.setitem(HANDLERS, Notice, buggy)
        now = datetime.now(UTC)
        agent._write(
            [
                Notice(key="", ts=now, kind="x"),
                Complete(key="ok-1", ts=now, work_center="CELL-1", good=3),
            ]
        )
        qty = agent.ledger.conn.execute("SELECT qty FROM stock WHERE item = 'FG'").fetchone()[0]
        assert qty == "3"
        assert agent._writer is not None and agent._writer.is_alive()
    finally:
        agent.stop()


def test_every_thread_the_agent_starts_is_watched(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    """A thread that health does not know of could die unnoticed: there is none."""
    path = tmp_path / "line.yaml"
    path.write_text(CONFIG.format(broker=broker.port, plc=plc.port))
    before = set(threading.enumerate())
    agent = Agent(load(path))
    agent.start()
    try:
        wait_until(lambda: agent.sync is not None and agent.sync.connected, 20, "connected")
        started = {t.name for t in set(threading.enumerate()) - before}
        watched = {loop.thread.name for loop in agent.loops()}
        assert started == watched == {
            "ledger-writer",
            "device-plc1",
            "lineside-sync",
            "lineside-sync-store",
            "lineside-sync-worker",
        }
        assert agent.loop_problems() == []
    finally:
        agent.stop()
    assert agent.loop_problems() == []  # stopped on purpose: nothing died


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_writer_that_dies_makes_the_agent_unhealthy(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(CONFIG.format(broker=broker.port, plc=plc.port))
    agent = Agent(load(path))

    def bug(event: Any) -> None:
        raise RuntimeError("a bug outside any command")

    monkeypatch.setattr(agent, "_command_for", bug)
    agent.start()
    try:
        assert agent._writer is not None
        agent._writer.join(20)  # the first reading ends it
        ok, body = agent.health()
        assert not ok
        assert any("thread ledger-writer has stopped" in p for p in body["problems"]), body
    finally:
        agent.stop()
