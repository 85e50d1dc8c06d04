"""Outages in the middle of production: broker flapping, the PLC offline, a counter reset
and a rollover. The agent runs as a real process; the end state must be exact."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lineside.simulators.plc import PlcSimulator, SimPoint
from tests.broker import Broker, Consumer, tx_check
from tests.faults.agent_process import (
    TX,
    AgentProcess,
    assert_exact,
    counter_of,
    finish,
    ledger,
    wait_for,
    write_line,
)

ALERTS = "lineside/v1/test/gw-chaos/alerts"
SCRAP0 = 65530  # a uint16 scrap counter that rolls over during every run


@pytest.fixture
def plc() -> Iterator[PlcSimulator]:
    sim = PlcSimulator(
        {
            1: {
                "good": SimPoint(10, "uint32", value=0),
                "scrap": SimPoint(12, "uint16", value=SCRAP0),
            }
        },
        port=0,
    )
    sim.start()
    yield sim
    sim.stop()


def start_line(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> tuple[Path, AgentProcess, Consumer]:
    config = write_line(tmp_path, broker.port, plc.port)
    consumer = Consumer(broker.port, [TX, ALERTS], client_id="erp", persistent=True).start()
    agent = AgentProcess(config)
    agent.start()
    wait_for(lambda: counter_of(config, "plc.scrap") == SCRAP0, 60, "the baseline read")
    plc.set_rate(1, "good", 25)
    plc.set_rate(1, "scrap", 2)
    return config, agent, consumer


@pytest.mark.slow
def test_broker_flapping(
    tmp_path: Path, broker_factory: Callable[..., Broker], plc: PlcSimulator
) -> None:
    broker = broker_factory(persistence=True)  # the consumer's session survives restarts
    config, agent, consumer = start_line(tmp_path, broker, plc)
    rng = random.Random(7)
    for _ in range(6):
        time.sleep(rng.uniform(0.5, 1.5))
        broker.stop()
        time.sleep(rng.uniform(0.2, 2.0))
        broker.start()
    finish(agent, config, plc)
    wait_for(
        lambda: (
            len(tx_check(consumer.on(TX))[0])
            == ledger(config).execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        ),
        60,
        "the consumer to get everything",
    )
    consumer.stop()
    scrap = (int(plc.value(1, "scrap")) - SCRAP0) % 65536
    assert_exact(config, consumer, int(plc.value(1, "good")), scrap)


@pytest.mark.slow
def test_plc_offline_reset_and_rollover_mid_run(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    config, agent, consumer = start_line(tmp_path, broker, plc)
    time.sleep(1.0)
    plc.go_offline(3)  # the PLC keeps counting while unreachable
    time.sleep(4.5)
    # a reset: the counter drops to 0 after the agent has seen its last value
    plc.set_rate(1, "good", 0)
    before_reset = int(plc.value(1, "good"))
    wait_for(lambda: counter_of(config, "plc.good") == before_reset, 30, "the pre-reset value")
    plc.reset(1, "good")
    plc.set_rate(1, "good", 25)
    time.sleep(1.0)
    finish(agent, config, plc)
    consumer.stop()
    good = before_reset + int(plc.value(1, "good"))
    scrap = (int(plc.value(1, "scrap")) - SCRAP0) % 65536
    assert int(plc.value(1, "scrap")) < SCRAP0  # it did roll over
    alerts = [a["kind"] for a in consumer.json_on(ALERTS)]
    assert "counter_reset" in alerts and "device_down" in alerts and "device_up" in alerts
    assert_exact(config, consumer, good, scrap)
