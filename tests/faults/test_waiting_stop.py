"""SIGTERM while readings wait in a posting window: every unit the PLC counted is in the
journal after a clean stop, and a kill -9 between a reading and its commit loses none."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lineside.simulators.plc import PlcSimulator
from tests.broker import Broker, Consumer
from tests.faults.agent_process import (
    TX,
    AgentProcess,
    assert_exact,
    counter_of,
    finish,
    ledger,
    totals,
    wait_for,
    write_line,
)

LONG_WINDOW = "ledger: {commit_interval_s: 60, post_interval_s: 600}\n"


def long_window_line(tmp: Path, broker: int, plc: int) -> Path:
    config = write_line(tmp, broker, plc)
    config.write_text(config.read_text() + LONG_WINDOW)
    return config


@pytest.mark.slow
def test_sigterm_posts_every_waiting_reading(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    config = long_window_line(tmp_path, broker.port, plc.port)
    agent = AgentProcess(config)
    agent.start()
    wait_for(lambda: counter_of(config, "plc.good") == 0, 60, "the baseline read")
    plc.set_rate(1, "good", 20)
    time.sleep(2.0)
    plc.set_rate(1, "good", 0)
    good = int(plc.value(1, "good"))
    time.sleep(0.5)  # read, and waiting in memory: the window has 10 minutes to go
    assert counter_of(config, "plc.good") == 0
    assert agent.stop() == 0
    assert counter_of(config, "plc.good") == good
    assert totals(ledger(config))[("completion", "FG")] == good


@pytest.mark.slow
def test_kill_9_while_readings_wait_loses_no_unit(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    config = long_window_line(tmp_path, broker.port, plc.port)
    consumer = Consumer(broker.port, [TX], client_id="waiting-erp", persistent=True).start()
    agent = AgentProcess(config)
    agent.start()
    wait_for(lambda: counter_of(config, "plc.good") == 0, 60, "the baseline read")
    plc.set_rate(1, "good", 20)
    time.sleep(1.5)
    agent.kill9()  # what waited is gone; the PLC goes on counting
    assert counter_of(config, "plc.good") == 0
    agent.start()
    time.sleep(1.5)
    counted = int(plc.value(1, "good"))
    assert counted > 20
    config.write_text(config.read_text().replace(LONG_WINDOW, ""))  # defaults to finish
    agent.stop()
    agent.start()
    finish(agent, config, plc)
    consumer.stop()
    assert_exact(config, consumer, int(plc.value(1, "good")), 0)
