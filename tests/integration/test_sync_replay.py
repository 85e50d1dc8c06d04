"""P/cmd/replay against a real mosquitto: the stored P/tx messages of a range again, with
the same seq and bytes, and an honest answer for what the gateway no longer holds."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.config import LoadedConfig
from lineside.agent.ledger.outbox import mark_sent
from lineside.agent.ledger.store import connect
from lineside.agent.sync import Sync, prune
from lineside.agent.sync.contract import Contract
from lineside.clock import utc_now
from tests.broker import Broker, Consumer, wait_until
from tests.conftest import StepClock
from tests.integration.test_sync_outage import receive_many

P = "lineside/v1/plant-a/press-3"
pytestmark = pytest.mark.broker


@pytest.fixture
def gateway(
    broker: Broker, sync_config: Callable[..., LoadedConfig], clock: StepClock
) -> Iterator[tuple[Sync, Consumer, LoadedConfig]]:
    """A publisher (no ledger, as publisher_main runs) that has sent 30 messages of 5."""
    config = sync_config(broker.port, protocol='"5"', batch_max=5)
    ledger = open_ledger(config, clock)
    receive_many(ledger, 0, 150)
    ledger.conn.close()
    central = Consumer(broker.port, [f"{P}/tx", f"{P}/reply/replay"],
                       protocol=mqtt.MQTTv5).start()
    sync = Sync(config, None, config.data_dir / LEDGER_FILE)
    sync.start()
    wait_until(lambda: len(central.on(f"{P}/tx")) >= 30 and sync.counters()["acks"] >= 30,
               30, "the first 30 messages")
    wait_until(lambda: sync.commands_ready, 10, "the replay subscription")
    yield sync, central, config
    sync.stop(5)
    central.stop()


def ask(port: int, **body: Any) -> str:
    request_id = body.setdefault("request_id", f"r-{uuid.uuid4().hex[:8]}")
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(f"{P}/cmd/replay", json.dumps(body), qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    return str(request_id)


def answer(central: Consumer, request_id: str) -> dict[str, Any]:
    def found() -> list[dict[str, Any]]:
        return [r for r in central.json_on(f"{P}/reply/replay") if r["request_id"] == request_id]

    wait_until(lambda: bool(found()), 30, f"the answer to {request_id}")
    (reply,) = found()
    assert Contract().errors("reply.replay", reply) == []
    return reply


def test_a_range_comes_again_with_the_same_seq_and_bytes(
    gateway: tuple[Sync, Consumer, LoadedConfig], broker: Broker
) -> None:
    sync, central, _ = gateway
    first = {json.loads(p)["seq"]: p for p in central.on(f"{P}/tx")}
    request_id = ask(broker.port, from_seq=3, to_seq=7)
    reply = answer(central, request_id)
    assert reply == {"request_id": request_id, "ok": True, "error": None, "from_seq": 3,
                     "to_seq": 7, "resent": [[3, 7]], "not_held": [], "last_seq": 30}
    tx = central.on(f"{P}/tx")
    again = tx[30:]
    assert [json.loads(p)["seq"] for p in again] == [3, 4, 5, 6, 7]
    assert again == [first[s] for s in range(3, 8)]  # byte for byte
    assert sync.counters()["replayed_messages"] == 5


def test_an_answer_is_bounded_and_says_where_it_stopped(
    gateway: tuple[Sync, Consumer, LoadedConfig], broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lineside.agent.sync import replay

    monkeypatch.setattr(replay, "MAX_MESSAGES", 4)
    _, central, _ = gateway
    reply = answer(central, ask(broker.port, from_seq=20))
    assert (reply["to_seq"], reply["resent"], reply["last_seq"]) == (23, [[20, 23]], 30)
    beyond = answer(central, ask(broker.port, from_seq=31))
    assert (beyond["ok"], beyond["to_seq"], beyond["resent"]) == (True, 30, [])


def test_a_pruned_range_is_answered_honestly(
    gateway: tuple[Sync, Consumer, LoadedConfig], broker: Broker
) -> None:
    _, central, config = gateway
    conn = connect(config.data_dir / LEDGER_FILE)
    mark_sent(conn)
    # Retention passed for everything acknowledged. Prune keeps the newest message and
    # outbox row, but message 30 without its other four rows is no longer held either.
    prune(conn, 0, utc_now() + timedelta(seconds=1))
    conn.close()
    reply = answer(central, ask(broker.port, from_seq=1, to_seq=30))
    assert (reply["ok"], reply["resent"], reply["not_held"]) == (True, [], [[1, 30]])
    assert reply["last_seq"] == 30


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"from_seq": 0}, "from_seq: less than 1"),
        ({"from_seq": "3"}, "from_seq: must be a whole number"),
        ({"from_seq": 5, "to_seq": 4}, "to_seq: less than from_seq"),
        ({"from_seq": 1, "tooo": 4}, "unknown key 'tooo'"),
    ],
)
def test_a_bad_request_is_refused_with_a_reason(
    gateway: tuple[Sync, Consumer, LoadedConfig], broker: Broker, body: dict[str, Any],
    error: str,
) -> None:
    _, central, _ = gateway
    reply = answer(central, ask(broker.port, **body))
    assert reply["ok"] is False and error in reply["error"], reply
