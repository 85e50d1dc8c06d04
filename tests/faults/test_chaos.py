"""Chaos: the agent killed with kill -9 at random moments while the PLC counts.

At the end the ledger equals the PLC's counts × the BOM exactly, every transaction reached
the consumer, seq is gapless, and SQLite's integrity check is ok. The line runs on the
`ledger:` defaults: readings wait in memory and post in windows, and every kill loses
what waited. LINESIDE_CHAOS_KILLS
asks for more kills (default 20).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineside.simulators.plc import PlcSimulator, SimPoint
from tests.broker import Broker, Consumer
from tests.faults.agent_process import (
    TX,
    AgentProcess,
    assert_exact,
    counter_of,
    finish,
    wait_for,
    write_line,
)

KILLS = int(os.environ.get("LINESIDE_CHAOS_KILLS", "20"))
GOOD0, SCRAP0 = 1000, 65500  # scrap is a uint16 that rolls over during the run


@pytest.fixture
def plc() -> Iterator[PlcSimulator]:
    sim = PlcSimulator(
        {
            1: {
                "good": SimPoint(10, "uint32", value=GOOD0),
                "scrap": SimPoint(12, "uint16", value=SCRAP0),
            }
        },
        port=0,
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    config = write_line(tmp_path, broker.port, plc.port)
    consumer = Consumer(broker.port, [TX], client_id="chaos-erp", persistent=True).start()
    agent = AgentProcess(config)
    rng = random.Random(20261125)
    agent.start()
    wait_for(lambda: counter_of(config, "plc.good") == GOOD0, 60, "the baseline read")
    plc.set_rate(1, "good", 40)
    plc.set_rate(1, "scrap", 3)
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.4, 2.5))  # random moments: starting, polling, publishing
        agent.kill9()
        time.sleep(rng.uniform(0.0, 0.8))  # the PLC goes on counting while the agent is down
        agent.start()
    finish(agent, config, plc)
    consumer.stop()

    good = int(plc.value(1, "good")) - GOOD0
    scrap = (int(plc.value(1, "scrap")) - SCRAP0) % 65536
    assert good > 100 and scrap > 5, (good, scrap)  # the run really produced
    assert_exact(config, consumer, good, scrap)
