"""`lineside central run` against a real mosquitto and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.broker import Broker, Consumer, wait_until
from tests.integration.central_helpers import (
    CentralProcess,
    central_config,
    landed_ids,
    tx_payload,
)

pytestmark = pytest.mark.broker
PREFIX = "lineside/v1/plant-a"


def publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id="test-gateways", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(10)


@pytest.fixture
def central(tmp_path: Path, broker: Broker, pg_dsn: str) -> Any:
    made: list[CentralProcess] = []

    def start(client_id: str = "central-1", dsn: str = pg_dsn, **replay: Any) -> CentralProcess:
        path, health = central_config(tmp_path, broker.port, dsn, client_id, **replay)
        proc = CentralProcess(path, health)
        made.append(proc)
        proc.start()
        wait_until(proc.connected, 30, f"{client_id} connected")
        return proc

    yield start
    for proc in made:
        proc.stop()


def test_every_transaction_lands_once_whatever_the_order_and_repeats(
    central: Any, broker: Broker, pg_dsn: str
) -> None:
    proc = central()
    client = publisher(broker.port)
    expected: list[str] = []
    messages: list[tuple[str, bytes]] = []
    for gateway in ("press-1", "press-2"):
        for seq in range(1, 21):
            body, ids = tx_payload(gateway, seq)
            expected += ids
            messages.append((f"{PREFIX}/{gateway}/tx", body))
    for topic, body in reversed(messages):
        publish(client, topic, body)
    for topic, body in messages[::3]:  # sent again, as after a gateway's reconnect
        publish(client, topic, body)
    wait_until(lambda: len(landed_ids(pg_dsn)) >= len(expected), 30, "every transaction")
    wait_until(lambda: proc.metric("lineside_central_duplicates_total") == 14 * 3, 10,
               "the repeats counted")
    assert sorted(landed_ids(pg_dsn)) == sorted(expected)
    assert proc.metric("lineside_central_transactions_total") == len(expected)
    assert proc.metric("lineside_central_messages_total", outcome="repeat") == 14
    assert proc.metric("lineside_central_missing_seqs") == 0
    client.loop_stop()


def test_junk_is_kept_as_rejected_and_the_consumer_goes_on(
    central: Any, broker: Broker, pg_dsn: str
) -> None:
    proc = central()
    client = publisher(broker.port)
    publish(client, f"{PREFIX}/press-1/tx", b"not json")
    publish(client, f"{PREFIX}/press-1/tx", b'{"gateway":"press-1","seq":1,"transactions":'
                                            b'[{"id":"x","qty":12}]}')
    # A time of the right shape that is no time: PostgreSQL refuses it, this message alone.
    month_13 = tx_payload("press-1", 3)[0].replace(b"2026-01-05", b"2026-13-05")
    body, ids = tx_payload("press-1", 2)
    publish(client, f"{PREFIX}/press-1/tx", month_13)
    publish(client, f"{PREFIX}/press-1/tx", body)
    wait_until(lambda: landed_ids(pg_dsn) == ids, 30, "the good message")
    wait_until(lambda: proc.metric("lineside_central_messages_total", outcome="rejected") == 3,
               10, "three rejections")
    client.loop_stop()


def test_a_gap_is_asked_for_again_and_a_replay_fills_it(
    central: Any, broker: Broker, pg_dsn: str
) -> None:
    proc = central()
    requests = Consumer(broker.port, [f"{PREFIX}/+/cmd/replay"]).start()
    client = publisher(broker.port)
    bodies = {seq: tx_payload("press-1", seq) for seq in range(1, 6)}
    for seq in (1, 2, 4, 5):  # seq 3 lost on the way
        publish(client, f"{PREFIX}/press-1/tx", bodies[seq][0])
    wait_until(lambda: requests.on(f"{PREFIX}/press-1/cmd/replay"), 30, "a replay request")
    asks = [json.loads(p) for p in requests.on(f"{PREFIX}/press-1/cmd/replay")]
    gap = [a for a in asks if a.get("to_seq") is not None]
    assert gap and gap[0]["from_seq"] == 3 and gap[0]["to_seq"] == 3, asks
    assert proc.metric("lineside_central_missing_seqs", gateway="press-1") == 1
    props = mqtt.Properties(mqtt.PacketTypes.PUBLISH)
    props.UserProperty = ("lineside-replay", gap[0]["request_id"])
    sent = client.publish(f"{PREFIX}/press-1/tx", bodies[3][0], qos=1, properties=props)
    sent.wait_for_publish(10)
    reply = {"request_id": gap[0]["request_id"], "ok": True, "error": None,
             "resent": [[3, 3]], "not_held": [], "last_seq": 5}
    publish(client, f"{PREFIX}/press-1/reply/replay", json.dumps(reply).encode())
    wait_until(lambda: proc.metric("lineside_central_missing_seqs") == 0, 30, "the gap closed")
    assert sorted(landed_ids(pg_dsn)) == sorted(i for b in bodies.values() for i in b[1])
    assert proc.metric("lineside_central_replayed_messages_total") == 1
    assert proc.metric("lineside_central_gaps_total") == 1
    requests.stop()
    client.loop_stop()


def test_nothing_is_acknowledged_to_the_broker_before_it_is_committed(
    central: Any, broker: Broker, pg_dsn: str
) -> None:
    import psycopg

    proc = central()
    client = publisher(broker.port)
    first, first_ids = tx_payload("press-1", 1)
    publish(client, f"{PREFIX}/press-1/tx", first)
    wait_until(lambda: landed_ids(pg_dsn) == first_ids, 30, "the first message")
    with psycopg.connect(pg_dsn) as blocker:
        # The writer waits for this lock: received, not committed, so not acknowledged.
        blocker.execute("LOCK TABLE lineside_messages IN ACCESS EXCLUSIVE MODE")
        body, ids = tx_payload("press-1", 2)
        publish(client, f"{PREFIX}/press-1/tx", body)
        wait_until(lambda: proc.metric("lineside_central_lag_seconds") > 0.5, 30,
                   "the message waiting for the database")
        proc.kill()
        blocker.rollback()
    assert landed_ids(pg_dsn) == first_ids
    again = central()  # the same client id: the broker still holds the unacknowledged message
    wait_until(lambda: sorted(landed_ids(pg_dsn)) == sorted(first_ids + ids), 30,
               "the message delivered again and landed")
    assert again.metric("lineside_central_transactions_total") == len(ids)
    client.loop_stop()
