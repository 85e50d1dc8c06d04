"""kill -9 of the agent during a burst of MQTT commands, then a restart.

A command is acknowledged to the broker (PUBACK) only once its ledger transaction, or its
remembered refusal, has committed; so whatever the kill interrupted, the broker delivers
again to the restarted agent, which applies it once (its request_id is remembered).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.broker import Broker, Consumer, wait_until
from tests.faults.agent_process import AgentProcess, ledger

pytestmark = pytest.mark.broker

P = "lineside/v1/test/gw-cmd"
BURST = 3_000
CONFIG = """
gateway: {{id: gw-cmd, site: test, data_dir: ./var}}
mqtt: {{host: 127.0.0.1, port: {broker}}}
items:
  BOLT: {{uom: ea, cost: 0.05}}
work_centers:
  CELL: {{location: L1}}
log: {{format: keyvalue, level: warning}}
"""


class Sender:
    """A central system publishing commands with QoS 1; counts what the broker took."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-erp")
        self.client.max_inflight_messages_set(100)
        self.acked: set[int] = set()
        self.lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, *args: object) -> None:
        with self.lock:
            self.acked.add(mid)

    def send(self, name: str, payload: dict[str, object]) -> int:
        info = self.client.publish(f"{P}/cmd/{name}", json.dumps(payload), qos=1)
        return int(info.mid)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def sender(broker: Broker) -> Iterator[Sender]:
    s = Sender(broker.port)
    yield s
    s.stop()


def replies(central: Consumer) -> list[dict[str, object]]:
    return [json.loads(p) for t, p, _ in list(central.messages) if t.startswith(f"{P}/reply/")]


@pytest.mark.slow
def test_kill_9_during_a_command_burst_applies_every_delivered_command_once(
    tmp_path: Path, broker: Broker, sender: Sender
) -> None:
    config = tmp_path / "line.yaml"
    config.write_text(CONFIG.format(broker=broker.port))
    central = Consumer(broker.port, [f"{P}/reply/#"]).start()
    agent = AgentProcess(config)
    agent.start()
    try:
        # The agent is up and subscribed once it answers a probe.
        def probe_answered() -> bool:
            sender.send("order.close", {"request_id": "probe", "order": "NONE"})
            return any(r["request_id"] == "probe" for r in replies(central))

        wait_until(probe_answered, 60, "the agent to answer a probe")
        mids = [
            sender.send("receipt", {"request_id": f"r{n}", "item": "BOLT", "qty": "1",
                                    "location": "L1"})
            for n in range(BURST)
        ]
        wait_until(lambda: len(replies(central)) >= 300, 60, "the burst to get going")
        agent.kill9()
        answered_at_kill = len(replies(central))
        wait_until(lambda: sender.acked >= set(mids), 60, "the broker to take every command")
        agent.start()

        def applied() -> int:
            conn = ledger(config)
            try:
                return int(conn.execute(
                    "SELECT COUNT(*) FROM events WHERE key LIKE 'mqtt:r%'").fetchone()[0])
            finally:
                conn.close()

        # Before the fix, what the killed agent had acknowledged but not yet applied was
        # gone: the deadline passes, and the counts below say how many.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: applied() >= BURST, 120, "every command to be applied")
        with contextlib.suppress(AssertionError):
            wait_until(lambda: {f"r{n}" for n in range(BURST)}
                       <= {str(r["request_id"]) for r in replies(central)}, 10, "the replies")
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.stop()
        central.stop()

    conn = ledger(config)
    events = [r[0] for r in conn.execute(
        "SELECT event FROM journal WHERE kind = 'receipt' AND item = 'BOLT'")]
    delivered = {f"mqtt:r{n}" for n in range(BURST)}
    assert len(sender.acked & set(mids)) == BURST  # the broker took all of them
    assert len(events) == len(set(events)), "a command was applied twice"
    assert set(events) == delivered, (
        f"{len(delivered - set(events))} of {BURST} delivered commands were never applied"
        f" ({answered_at_kill} answered before the kill)")
    stock = conn.execute("SELECT qty FROM stock WHERE item = 'BOLT' AND location = 'L1'")
    assert stock.fetchone()[0] == str(BURST)
    answered = {str(r["request_id"]) for r in replies(central)}
    assert {f"r{n}" for n in range(BURST)} <= answered, "a command applied was never answered"
    for reply in replies(central):
        if reply["request_id"] == "probe":
            continue
        assert reply["ok"] is True, reply
        assert events.count(f"mqtt:{reply['request_id']}") == 1
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
