"""kill -9 of a publishing process, then a restart: nothing missing, seq continuous, a re-sent
message repeats its seq with identical bytes. Rows are written by this (another) process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.config import LoadedConfig
from lineside.agent.ledger.store import connect
from lineside.agent.sync import sync_status
from tests.broker import Broker, Consumer, tx_check, wait_until
from tests.conftest import StepClock
from tests.integration.test_sync_outage import journal_ids, receive_many

P = "lineside/v1/plant-a/press-3"
pytestmark = pytest.mark.broker


def start_publisher(config: LoadedConfig, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lineside.agent.sync.publisher_main", "-c", str(config.path),
             "--reconnect-max", "0.5"],
            stdout=out, stderr=subprocess.STDOUT,
        )


def messages(consumer: Consumer) -> list[bytes]:
    return consumer.on(f"{P}/tx")


def distinct_ids(consumer: Consumer) -> set[str]:
    """Repeats count once: the stored messages that were never acknowledged are sent again."""
    return {t["id"] for m in messages(consumer) for t in json.loads(m)["transactions"]}


@pytest.mark.slow
def test_kill_9_while_publishing_then_restart_loses_nothing(
    broker: Broker, sync_config: Callable[..., LoadedConfig], clock: StepClock, tmp_path: Path
) -> None:
    # Small messages and a small window: the kill lands while messages are in flight.
    config = sync_config(broker.port, batch_max=2, inflight_max=2)
    ledger = open_ledger(config, clock)
    receive_many(ledger, 0, 12_000)
    consumer = Consumer(broker.port, [f"{P}/tx", f"{P}/status"]).start()
    log = tmp_path / "publisher.log"
    child = start_publisher(config, log)
    # This process writes more rows while the child publishes (as the CLI would).
    written: list[int] = []

    def write_more() -> None:
        receive_many(ledger, 12_000, 13_000)
        written.append(1_000)

    writer = threading.Thread(target=write_more)
    writer.start()
    try:
        wait_until(lambda: len(messages(consumer)) >= 500, 60, "the publisher to get going")
        os.kill(child.pid, signal.SIGKILL)  # within a poll (20 ms) of message 500 of 6,500
        assert child.wait(10) == -signal.SIGKILL
        seen_at_kill = len(messages(consumer))
        assert seen_at_kill < 6_500  # the kill landed while it was publishing
        writer.join(60)
        assert written == [1_000]
        # The broker publishes the will: the gateway is marked offline.
        wait_until(lambda: consumer.json_on(f"{P}/status")[-1]["online"] is False, 10, "will")
        receive_many(ledger, 13_000, 13_500)
        child = start_publisher(config, log)
        wait_until(lambda: len(distinct_ids(consumer)) >= 13_500, 120,
                   "every transaction after the restart")
        child.send_signal(signal.SIGTERM)
        assert child.wait(20) == 0
    finally:
        if child.poll() is None:
            child.kill()
        consumer.stop()

    txs, repeats = tx_check(messages(consumer))
    assert [t["id"] for t in txs] == journal_ids(ledger.conn)
    status = sync_status(connect(config.data_dir / LEDGER_FILE))
    assert status["backlog"] == 0
    assert consumer.json_on(f"{P}/status")[-1]["online"] is False  # clean stop said so itself
    print(f"killed after {seen_at_kill} messages; {repeats} re-sent after the restart")
