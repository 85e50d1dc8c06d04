"""MQTT 5: a message the broker refuses (ACL) stays unsent, is retried with a backoff (no
tight loop), and goes out once the broker allows it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.commands import Receive
from lineside.agent.config import LoadedConfig
from lineside.agent.ledger.store import connect
from lineside.agent.sync import Sync, sync_status
from tests.broker import Broker, Consumer, wait_until
from tests.conftest import StepClock

P = "lineside/v1/plant-a/press-3"
pytestmark = pytest.mark.broker
DENY_TX = f"topic readwrite {P}/status\ntopic readwrite {P}/alerts\ntopic read {P}/tx\n"
ALLOW_ALL = "topic readwrite #\n"


def test_a_refused_message_stays_unsent_and_goes_out_once_allowed(
    broker_factory: Callable[..., Broker], sync_config: Callable[..., LoadedConfig],
    clock: StepClock, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lineside.sync")
    acl = tmp_path / "acl"
    acl.write_text(DENY_TX)
    broker = broker_factory(extra=(f"acl_file {acl}",))
    config = sync_config(broker.port, protocol='"5"')
    ledger = open_ledger(config, clock)
    for n in range(3):
        ledger.execute(Receive(key=f"r{n}", ts=clock(), item="BOLT-M8", qty=Decimal(1),
                               location="LINE-3"))
    central = Consumer(broker.port, [f"{P}/tx"]).start()
    sync = Sync(config, None, config.data_dir / LEDGER_FILE, reconnect_min_s=0.2,
                reconnect_max_s=1.0)
    sync.start()
    try:
        wait_until(lambda: sync.reconnects >= 2, 20, "two refused sessions")
        assert "the broker refused a message" in caplog.text and "ACL" in caplog.text
        db = connect(config.data_dir / LEDGER_FILE)
        assert sync_status(db)["backlog"] == 3
        assert sync.counters()["acks"] == 0 and not central.on(f"{P}/tx")
        # Backoff, not a tight loop: a handful of attempts in the time it took.
        assert sync.counters()["messages_published"] <= 2 * (sync.reconnects + 1)
        acl.write_text(ALLOW_ALL)
        broker.reload()
        wait_until(lambda: bool(central.on(f"{P}/tx")), 20, "the message once allowed")
        wait_until(lambda: sync_status(db)["backlog"] == 0, 10, "the backlog to clear")
    finally:
        sync.stop(5)
        central.stop()
    assert [len(p["transactions"]) for p in central.json_on(f"{P}/tx")] == [3]
    assert central.json_on(f"{P}/tx")[0]["seq"] == 1
