"""`lineside tail` against a real broker: what a central system sees, checked and printed."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from decimal import Decimal

import pytest

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.commands import Receive
from lineside.agent.config import LoadedConfig
from lineside.agent.sync import Sync, tail_main
from tests.broker import Broker, free_port, wait_until
from tests.conftest import StepClock

pytestmark = pytest.mark.broker


def test_tail_prints_json_lines_and_stops_after_count(
    broker: Broker, sync_config: Callable[..., LoadedConfig], clock: StepClock
) -> None:
    config = sync_config(broker.port, batch_max=2)
    ledger = open_ledger(config, clock)
    sync = Sync(config, None, config.data_dir / LEDGER_FILE)
    sync.start()
    out = io.StringIO()
    done: dict[str, int] = {}
    tail = threading.Thread(target=lambda: done.update(rc=tail_main(config, True, 5, 30,
                                                                    out=out)))
    try:
        wait_until(lambda: sync.connected, 10, "the agent")
        tail.start()
        # The retained status is the first thing a new subscriber gets: tail is listening.
        wait_until(lambda: '"type": "status"' in out.getvalue(), 10, "tail to subscribe")
        for n in range(5):
            ledger.execute(Receive(key=f"r{n}", ts=clock(), item="BOLT-M8", qty=Decimal(n + 1),
                                   location="LINE-3"))
        tail.join(30)
    finally:
        sync.stop(5)
    assert done == {"rc": 0}
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    txs = [line for line in lines if line["type"] == "tx"]
    assert sum(len(line["transactions"]) for line in txs) == 5
    assert [line["check"] for line in txs] == ["first"] + ["ok"] * (len(txs) - 1)
    assert [line["seq"] for line in txs] == list(range(1, len(txs) + 1))


def test_tail_without_a_broker_says_so_and_returns_1(
    sync_config: Callable[..., LoadedConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    assert tail_main(sync_config(port), False, None, 5) == 1
    assert f"cannot connect to the broker at mqtt://127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize("as_json", [False, True])
def test_tail_prints_a_malformed_tx_as_invalid_and_goes_on(
    broker: Broker, sync_config: Callable[..., LoadedConfig], as_json: bool
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    config = sync_config(broker.port)
    topic = "lineside/v1/plant-a/press-3/tx"
    out = io.StringIO()
    done: dict[str, int] = {}
    tail = threading.Thread(target=lambda: done.update(rc=tail_main(config, as_json, 1, 30,
                                                                    out=out)))
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="impostor")
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    bad = [
        {"gateway": "press-3", "seq": 1, "transactions": 5},
        {"gateway": "press-3", "seq": 2, "transactions": [{"id": "x", "kind": None, "qty": []}]},
        {"gateway": "press-3", "seq": 3, "transactions": [7, None]},
    ]
    good = {"gateway": "press-3", "seq": 4, "transactions": [{
        "id": "t1", "ts": "2026-01-05T06:00:01.000Z", "kind": "receipt", "item": "BOLT-M8",
        "location": "LINE-3", "qty": "1", "uom": "ea", "lot": None, "order": None,
        "work_center": None, "cost": "0.05", "cause": "test"}]}
    tail.start()
    try:
        def published_until_tail_listens() -> bool:
            sender.publish("lineside/v1/plant-a/press-3/status", b'{"online": true}')
            return "status" in out.getvalue()

        wait_until(published_until_tail_listens, 10, "tail to subscribe")
        for payload in [*bad, good]:
            sender.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
        tail.join(30)
    finally:
        sender.disconnect()
        sender.loop_stop()
    assert done == {"rc": 0}  # it went on to the good message and counted it
    text = out.getvalue()
    if as_json:
        lines = [json.loads(line) for line in text.splitlines()]
        assert [line["check"] for line in lines if line["type"] == "tx"][-4:] == [
            "invalid", "invalid", "invalid", "first"]
    else:
        assert text.count("INVALID") == 3, text
