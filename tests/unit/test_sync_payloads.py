"""Every payload lineside publishes validates against its JSON Schema (lineside/schemas/).

The payloads are made by the real code paths: ledger transactions and alerts of every kind
through the handlers (on an in-memory ledger), P/tx messages built by the publisher's store,
status, stock and replies by their builders.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lineside.agent import reports
from lineside.agent.commands import (
    Complete,
    Count,
    CounterReading,
    MeterReading,
    Receive,
    Result,
    Reverse,
    StartOrder,
)
from lineside.agent.config import load
from lineside.agent.handlers import Ledger
from lineside.agent.ledger.outbox import OutboxStore
from lineside.agent.ledger.store import connect
from lineside.agent.sync import payloads
from lineside.agent.sync.contract import OUT_SCHEMAS, Contract, load_schema
from tests.conftest import StepClock, write_config

TS = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def busy_ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    """An in-memory ledger that has seen every kind of transaction and several alerts."""
    config = load(write_config(tmp_path_factory.mktemp("cfg")))
    ledger = Ledger(connect(Path(":memory:")), config.config, StepClock())
    clock = ledger.clock

    def run(command: Any) -> Result:
        result = ledger.execute(command)
        assert result.ok, result.error
        return result

    run(Receive(key="r1", ts=clock(), item="BOLT-M8", qty=Decimal(100), location="LINE-3",
                lot="L-1"))
    run(Complete(key="c1", ts=clock(), work_center="PRESS-3", good=10, scrap=1))
    run(Complete(key="c2", ts=clock(), work_center="PRESS-3", good=5, stage="paint"))
    run(StartOrder(key="o1", ts=clock(), order="PO-7", work_center="PRESS-3", item="BRKT-100"))
    run(Complete(key="c3", ts=clock(), work_center="PRESS-3", good=3))
    run(Count(key="n1", ts=clock(), item="BOLT-M8", qty=Decimal(50), location="LINE-3"))
    run(MeterReading(key="m1", ts=clock(), point="doser3.total_l", value=Decimal("10.0")))
    run(MeterReading(key="m2", ts=clock(), point="doser3.total_l", value=Decimal("10.75")))
    run(CounterReading(key="p1", ts=clock(), point="plc3.good", value=500))
    run(CounterReading(key="p2", ts=clock(), point="plc3.good", value=20))  # a reset
    receipt = ledger.conn.execute("SELECT id FROM journal WHERE kind = 'receipt'").fetchone()
    run(Reverse(key="v1", ts=clock(), tx_id=receipt[0]))
    return ledger


def test_every_transaction_message_fits_the_tx_schema(busy_ledger: Ledger) -> None:
    store = OutboxStore(busy_ledger.conn, "press-3", batch_max=4)
    messages = store.prepare(1000)
    contract = Contract()
    kinds: set[str] = set()
    for message in messages:
        data = json.loads(message.payload)
        assert contract.errors("tx", data) == [], data
        kinds.update(tx["kind"] for tx in data["transactions"])
    assert {"receipt", "backflush", "completion", "scrap", "adjustment", "reversal",
            "measured"} <= kinds


def test_every_alert_fits_the_alert_schema(busy_ledger: Ledger) -> None:
    store = OutboxStore(busy_ledger.conn, "press-3", batch_max=4)
    alerts = [json.loads(a.payload) for a in store.unsent_alerts(0, 1000)]
    assert {"negative_stock", "counter_reset"} <= {a["kind"] for a in alerts}
    contract = Contract()
    for alert in alerts:
        assert contract.errors("alert", alert) == [], alert


def test_status_stock_and_replies_fit_their_schemas(busy_ledger: Ledger) -> None:
    contract = Contract()
    for status in (payloads.status_online("0.1.0", TS), payloads.status_offline("0.1.0", TS),
                   payloads.status_will("0.1.0")):
        assert contract.errors("status", json.loads(status)) == []
    balances = reports.stock(busy_ledger.conn, busy_ledger.master, empty=True)
    assert any(b["lot"] for b in balances) and any(b["lot"] is None for b in balances)
    stock = json.loads(payloads.stock("press-3", TS, balances))
    assert contract.errors("stock", stock) == []
    for reply in (Result(ok=True).reply("a"), Result(ok=False, error="no").reply("b")):
        assert contract.errors("reply", json.loads(payloads.reply(**reply))) == []


def test_schemas_are_valid_and_refuse_what_they_should() -> None:
    contract = Contract()
    for name in OUT_SCHEMAS:
        contract.validator(name)  # checks the schema itself
        assert load_schema(name)["$schema"].endswith("2020-12/schema")
    assert contract.errors("tx", {"gateway": "g", "seq": 0, "transactions": []})
    tx = {"id": "x", "ts": "2026-01-05T06:00:00.000Z", "kind": "receipt", "item": "A",
          "location": "L", "qty": "1.5", "uom": "ea", "lot": None, "order": None,
          "work_center": None, "cost": "0", "cause": ""}
    assert contract.errors("tx", {"gateway": "g", "seq": 1, "transactions": [tx]}) == []
    assert contract.errors("tx", {"gateway": "g", "seq": 1,
                                  "transactions": [{**tx, "qty": 1.5}]})
