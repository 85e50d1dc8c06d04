"""kill -9 of `lineside run` with Sparkplug on: the broker publishes the NDEATH with the
session's bdSeq, the restarted node's bdSeq is one more, and P/tx stays exact."""

from __future__ import annotations

from pathlib import Path

from lineside.simulators.plc import PlcSimulator
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
from tests.sparkplug_host import SparkplugHost, bdseq

GROUP, NODE = "plant-k", "gw-chaos"


def test_kill_9_the_will_carries_the_last_bdseq_and_the_next_session_the_one_after(
    tmp_path: Path, broker: Broker, plc: PlcSimulator
) -> None:
    config = write_line(tmp_path, broker.port, plc.port)
    with config.open("a") as out:
        out.write(f"sparkplug: {{group_id: {GROUP}, interval_s: 0.2}}\n")
    host = SparkplugHost(broker.port, GROUP).start()
    central = Consumer(broker.port, [TX], client_id="erp", persistent=True).start()
    agent = AgentProcess(config)
    try:
        agent.start()
        (first,) = host.wait("NBIRTH", node=NODE, timeout_s=60)
        wait_for(lambda: counter_of(config, "plc.good") == 0, 60, "the baseline read")
        plc.set_rate(1, "good", 30)
        plc.set_rate(1, "scrap", 3)
        host.wait("DDATA", 3, node=NODE)
        agent.kill9()
        (will,) = host.wait("NDEATH", node=NODE)  # published by the broker, not the agent
        agent.start()
        births = host.wait("NBIRTH", 2, node=NODE, timeout_s=60)
        host.wait("DBIRTH", 2, node=NODE)
        finish(agent, config, plc)
        good, scrap = int(plc.value(1, "good")), int(plc.value(1, "scrap"))
        assert_exact(config, central, good, scrap)
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.kill9()
        host.stop()
        central.stop()
    assert bdseq(will) == bdseq(first) and "seq" not in will.payload
    assert bdseq(births[1]) == (bdseq(first) + 1) % 256
    assert births[1].payload["seq"] == 0
    clean = host.of("NDEATH", NODE)[-1]  # the SIGTERM stop's own NDEATH
    assert clean is not will and bdseq(clean) == bdseq(births[1])
