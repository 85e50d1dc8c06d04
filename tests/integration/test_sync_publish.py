"""The publisher against a real mosquitto, over MQTT 3.1.1 and 5: every topic of the contract,
validated against its JSON Schema as a central system would receive it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal

import pytest

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.commands import Complete, Receive
from lineside.agent.config import LoadedConfig
from lineside.agent.sync import Sync
from lineside.agent.sync.contract import Contract
from tests.broker import Broker, Consumer, tx_check, wait_until
from tests.conftest import StepClock

P = "lineside/v1/plant-a/press-3"
pytestmark = pytest.mark.broker


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_transactions_alerts_status_and_stock_follow_the_contract(
    broker: Broker, sync_config: Callable[..., LoadedConfig], clock: StepClock, protocol: str
) -> None:
    config = sync_config(broker.port, protocol=f'"{protocol}"', batch_max=3,
                         stock_interval_s=0.1)
    ledger = open_ledger(config, clock)
    central = Consumer(broker.port, [f"{P}/#"]).start()
    sync = Sync(config, ledger, config.data_dir / LEDGER_FILE)
    sync.start()
    try:
        wait_until(lambda: sync.connected, 10, "connect")
        ledger.execute(Receive(key="r1", ts=clock(), item="BOLT-M8", qty=Decimal(10),
                               location="LINE-3", lot="L1"))
        for n in range(3):  # no steel in stock: negative_stock alerts, in order
            ledger.execute(Complete(key=f"c{n}", ts=clock(), work_center="PRESS-3", good=5))
        journal = ledger.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        wait_until(lambda: sum(len(p["transactions"]) for p in central.json_on(f"{P}/tx"))
                   >= journal, 10, "every transaction")
        wait_until(lambda: bool(central.on(f"{P}/stock")), 10, "a stock snapshot")
    finally:
        sync.stop(5)
        central.stop()

    contract = Contract()
    schema_of = {"tx": "tx", "alerts": "alert", "status": "status", "stock": "stock"}
    for topic, payload, _ in central.messages:
        name = schema_of[topic.rsplit("/", 1)[-1]]
        assert contract.errors(name, json.loads(payload)) == [], (topic, payload)
    txs, _ = tx_check(central.on(f"{P}/tx"))
    ids = [r[0] for r in ledger.conn.execute("SELECT id FROM journal ORDER BY seq")]
    assert [t["id"] for t in txs] == ids
    assert all(len(p["transactions"]) <= 3 for p in central.json_on(f"{P}/tx"))
    outbox_alerts = [json.loads(r[0]) for r in ledger.conn.execute(
        "SELECT payload FROM outbox WHERE stream = 'alert' ORDER BY id")]
    assert outbox_alerts and central.json_on(f"{P}/alerts") == outbox_alerts
    statuses = central.json_on(f"{P}/status")
    assert statuses[0]["online"] is True and statuses[-1]["online"] is False
    # What a late subscriber finds: retained status (offline, said by the clean stop).
    late = Consumer(broker.port, [f"{P}/status", f"{P}/stock"]).start()
    try:
        wait_until(lambda: len(late.messages) == 2, 10, "the retained status and stock")
        assert late.json_on(f"{P}/status") == [statuses[-1]]
        assert all(retained for _, _, retained in late.messages)
    finally:
        late.stop()


def test_an_outbox_written_by_another_process_is_published(
    broker: Broker, sync_config: Callable[..., LoadedConfig], clock: StepClock
) -> None:
    """The CLI writes with its own connection while the agent runs: picked up by polling."""
    config = sync_config(broker.port)
    central = Consumer(broker.port, [f"{P}/tx"]).start()
    sync = Sync(config, None, config.data_dir / LEDGER_FILE)
    sync.start()
    try:
        wait_until(lambda: sync.connected, 10, "connect")
        cli = subprocess.run(
            [sys.executable, "-m", "lineside.agent.cli", "receive", "-c", str(config.path),
             "--item", "BOLT-M8", "--qty", "12", "--location", "LINE-3"],
            capture_output=True, text=True, timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        wait_until(lambda: bool(central.on(f"{P}/tx")), 10, "the CLI's receipt on P/tx")
    finally:
        sync.stop(5)
        central.stop()
    assert central.json_on(f"{P}/tx")[0]["transactions"][0]["qty"] == "12"
