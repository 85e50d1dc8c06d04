"""Store and forward through a broker outage: nothing missing, seq gapless, repeats identical."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.commands import Receive
from lineside.agent.config import LoadedConfig
from lineside.agent.handlers import Ledger
from lineside.agent.ledger.store import connect
from lineside.agent.sync import Sync, sync_status
from tests.broker import Broker, Consumer, tx_check, wait_until
from tests.conftest import StepClock

P = "lineside/v1/plant-a/press-3"
pytestmark = pytest.mark.broker


def receive_many(ledger: Ledger, start: int, stop: int, batch: int = 200) -> None:
    """Real ledger transactions: one receipt (one outbox row) per key."""
    for first in range(start, stop, batch):
        commands = [
            Receive(key=f"rcv-{n}", ts=ledger.clock(), item="BOLT-M8", qty=Decimal(n + 1),
                    location="LINE-3")
            for n in range(first, min(stop, first + batch))
        ]
        assert all(r.ok for r in ledger.execute_batch(list(commands)))


def journal_ids(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT id FROM journal ORDER BY seq")]


def received_ids(consumer: Consumer) -> set[str]:
    return {tx["id"] for p in consumer.json_on(f"{P}/tx") for tx in p["transactions"]}


@pytest.mark.slow
def test_ten_thousand_transactions_cross_a_broker_outage(
    broker_factory: Callable[..., Broker],
    sync_config: Callable[..., LoadedConfig],
    clock: StepClock,
) -> None:
    total = 10_000
    # The central consumer has a persistent session on a persistent broker: what the broker
    # acknowledged before it stopped is still delivered to it after the restart.
    broker = broker_factory(persistence=True)
    config = sync_config(broker.port)
    ledger = open_ledger(config, clock)
    consumer = Consumer(broker.port, [f"{P}/tx"], client_id="central-erp", persistent=True)
    consumer.start()
    sync = Sync(config, ledger, config.data_dir / LEDGER_FILE, reconnect_min_s=0.1,
                reconnect_max_s=0.5)
    sync.start()
    try:
        wait_until(lambda: sync.connected, 10, "the agent to connect")
        receive_many(ledger, 0, total // 3)
        broker.stop()  # the middle third is written while the broker is down
        wait_until(lambda: not sync.connected, 10, "the agent to see the outage")
        receive_many(ledger, total // 3, 2 * total // 3)
        assert not sync.connected
        broker.start()
        receive_many(ledger, 2 * total // 3, total)
        wait_until(lambda: len(received_ids(consumer)) >= total, 60, "all 10,000 transactions")
    finally:
        sync.stop(5)
        consumer.stop()

    txs, repeats = tx_check(consumer.on(f"{P}/tx"))
    assert [t["id"] for t in txs] == journal_ids(ledger.conn)  # all, in ledger order, once
    assert sync.reconnects >= 1
    status = sync_status(ledger.conn)
    assert status["backlog"] == 0 and status["unacked_messages"] == 0
    assert status["next_seq"] == json_last_seq(consumer) + 1
    print(f"repeats after the outage: {repeats}")  # at-least-once: allowed, identical


def json_last_seq(consumer: Consumer) -> int:
    return max(p["seq"] for p in consumer.json_on(f"{P}/tx"))


def test_a_backlog_is_read_in_pages_and_kept_across_restarts(
    broker: Broker, sync_config: Callable[..., LoadedConfig], clock: StepClock
) -> None:
    """Two agent runs on one ledger: seq continues, nothing published twice after an ack."""
    config = sync_config(broker.port, batch_max=7, inflight_max=3)
    ledger = open_ledger(config, clock)
    db = config.data_dir / LEDGER_FILE
    consumer = Consumer(broker.port, [f"{P}/tx"]).start()
    receive_many(ledger, 0, 100)
    for run in range(2):
        sync = Sync(config, ledger, db)
        sync.start()
        want = 100 * (run + 1)
        wait_until(lambda: len(received_ids(consumer)) >= want, 20, "the backlog")  # noqa: B023
        sync.stop(5)
        receive_many(ledger, 100 * (run + 1), 100 * (run + 2))
    consumer.stop()
    txs, repeats = tx_check(consumer.on(f"{P}/tx"))
    assert repeats == 0  # clean stops: every message was acknowledged and recorded
    assert [t["id"] for t in txs] == journal_ids(ledger.conn)[:200]
    assert max(len(p["transactions"]) for p in consumer.json_on(f"{P}/tx")) == 7
    assert sync_status(connect(db))["backlog"] == 100  # the third hundred waits


def test_stop_time_is_bounded_when_the_broker_is_gone(
    broker: Broker, sync_config: Callable[..., LoadedConfig], tmp_path: Path
) -> None:
    config = sync_config(broker.port)
    sync = Sync(config, None, config.data_dir / LEDGER_FILE)
    sync.start()
    wait_until(lambda: sync.connected, 10, "connect")
    broker.stop(kill=True)
    started = datetime.now()
    sync.stop(1)
    assert (datetime.now() - started).total_seconds() < 10
