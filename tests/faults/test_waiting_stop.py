"""SIGTERM while readings wait in a posting window: every unit the PLC counted is in the
journal after a clean stop, and a kill -9 between a reading and its commit loses none."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lineside.simulators.plc import PlcSimulator
from tests.broker import Broker, Consumer
from tests.faults import agent_process as line

LONG_WINDOW = "ledger: {commit_interval_s: 60, post_interval_s: 600}\n"


def counting(tmp: Path, broker: Broker, plc: PlcSimulator) -> tuple[Path, line.AgentProcess]:
    """An agent on a 10-minute window, past its baseline read, the PLC counting 20/s."""
    config = line.write_line(tmp, broker.port, plc.port)
    config.write_text(config.read_text() + LONG_WINDOW)
    agent = line.AgentProcess(config)
    agent.start()
    line.wait_for(lambda: line.counter_of(config, "plc.good") == 0, 60, "the baseline read")
    plc.set_rate(1, "good", 20)
    return config, agent


@pytest.mark.slow
def test_sigterm_posts_every_waiting_reading(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    config, agent = counting(tmp_path, broker, plc)
    time.sleep(2.0)
    plc.set_rate(1, "good", 0)
    good = int(plc.value(1, "good"))
    time.sleep(0.5)  # read, and waiting in memory: the window has minutes to go
    assert line.counter_of(config, "plc.good") == 0
    assert agent.stop() == 0
    assert line.counter_of(config, "plc.good") == good
    assert line.totals(line.ledger(config))[("completion", "FG")] == good


@pytest.mark.slow
def test_kill_9_while_readings_wait_loses_no_unit(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    consumer = Consumer(broker.port, [line.TX], client_id="waiting-erp", persistent=True).start()
    config, agent = counting(tmp_path, broker, plc)
    time.sleep(1.5)
    agent.kill9()  # what waited is gone; the PLC goes on counting
    assert line.counter_of(config, "plc.good") == 0
    agent.start()  # its first reading is committed at once, then readings wait again
    time.sleep(1.5)
    assert agent.stop() == 0
    assert (line.counter_of(config, "plc.good") or 0) > 20
    config.write_text(config.read_text().replace(LONG_WINDOW, ""))  # the defaults to finish
    agent.start()
    line.finish(agent, config, plc)
    consumer.stop()
    line.assert_exact(config, consumer, int(plc.value(1, "good")), 0)
