"""`lineside run` as a subprocess against a simulated PLC and a real mosquitto.

One long scenario, as a technician would live it: start (READY=1, WATCHDOG=1), production
reaches the broker, SIGHUP adds a device, a broken config is refused while the old keeps
running, /metrics parses, /healthz follows the broker, SIGTERM exits 0 within 5 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lineside.simulators.plc import PlcSimulator, SimPoint
from tests.broker import Broker, Consumer, free_port, wait_until
from tests.e2e.agent_run import NotifySocket, http

CONFIG = """
gateway: {{id: gw-e2e, site: test, data_dir: ./var}}
mqtt: {{host: 127.0.0.1, port: {broker}, topic_prefix: lineside/v1}}
items:
  FG:    {{uom: ea, cost: 2}}
  SHEET: {{uom: kg, decimals: 3, cost: 1}}
boms:
  FG: {{components: [{{item: SHEET, qty: 0.5}}]}}
work_centers:
  CELL-1: {{location: L1, item: FG, counters: {{good: plc1.good}}}}
{extra_wc}
devices:
  plc1:
    driver: modbus_tcp
    host: 127.0.0.1
    port: {plc1}
    poll_ms: 100
    points: {{good: {{address: 10, type: uint32}}}}
{extra_dev}
health: {{listen: "127.0.0.1:{health}", broker_down_after_s: 2}}
log: {{format: json, level: info}}
ledger: {{commit_interval_s: 0.05, post_interval_s: 0}}  # the test watches each poll's units
"""
EXTRA_WC = "  CELL-2: {location: L2, item: FG, counters: {good: plc2.good}}"
EXTRA_DEV = """  plc2:
    driver: modbus_tcp
    host: 127.0.0.1
    port: {plc2}
    poll_ms: 100
    points: {{good: {{address: 10, type: uint32}}}}"""


def plc() -> PlcSimulator:
    sim = PlcSimulator({1: {"good": SimPoint(10, "uint32", value=1000)}}, port=0)
    sim.start()
    return sim


@pytest.fixture
def plcs() -> Iterator[tuple[PlcSimulator, PlcSimulator]]:
    sims = (plc(), plc())
    yield sims
    for sim in sims:
        sim.stop()


def completions(consumer: Consumer, topic: str, work_center: str) -> int:
    """Units completed at work_center as a consumer counts them: each tx id once."""
    seen = {
        tx["id"]: tx
        for message in consumer.json_on(topic)
        for tx in message["transactions"]
        if tx["kind"] == "completion" and tx["work_center"] == work_center
    }
    return sum(int(tx["qty"]) for tx in seen.values())


@pytest.mark.slow
def healthz_disk(port: int) -> dict[str, Any]:
    """The write rates the daemon serves in /healthz."""
    body: dict[str, Any] = json.loads(http(f"http://127.0.0.1:{port}/healthz")[1])
    return dict(body["disk"])


def test_daemon_end_to_end(
    tmp_path: Path, broker: Broker, plcs: tuple[PlcSimulator, PlcSimulator]
) -> None:
    plc1, plc2 = plcs
    health = free_port()
    ports = {"broker": broker.port, "plc1": plc1.port, "health": health}
    config = tmp_path / "line.yaml"
    write: Callable[[str], None] = config.write_text
    write(CONFIG.format(**ports, extra_wc="", extra_dev=""))
    notify = NotifySocket(tmp_path / "notify.sock")
    consumer = Consumer(broker.port, ["lineside/v1/test/gw-e2e/#"]).start()
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1500000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lineside.agent.cli", "run", "-c", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    topic = "lineside/v1/test/gw-e2e/tx"
    try:
        wait_until(lambda: notify.saw("READY=1"), 30, "READY=1")
        wait_until(lambda: notify.saw("WATCHDOG=1"), 10, "WATCHDOG=1")

        # production reaches the broker: the first read is a baseline, then +25 units
        time.sleep(1.0)
        plc1.advance(1, "good", 25)
        wait_until(lambda: completions(consumer, topic, "CELL-1") == 25, 20, "25 completions")

        # SIGHUP with a second device: it is polled and posts too
        write(CONFIG.format(**ports, extra_wc=EXTRA_WC, extra_dev=EXTRA_DEV.format(plc2=plc2.port)))
        proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: "plc2" in json.loads(http(f"http://127.0.0.1:{health}/healthz")[1])["devices"],
            20,
            "plc2 known after reload",
        )
        time.sleep(1.0)
        plc2.advance(1, "good", 7)
        wait_until(lambda: completions(consumer, topic, "CELL-2") == 7, 20, "7 on CELL-2")

        # SIGHUP with a broken config: refused, the old one keeps counting
        write("gateway: {id: gw-e2e, site: test}\nitems: {FG: {uom: ea, cost: -1}}\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        plc1.advance(1, "good", 5)
        wait_until(lambda: completions(consumer, topic, "CELL-1") == 30, 20, "30 after refusal")
        assert proc.poll() is None

        # /metrics parses; /healthz follows the broker
        status, body = http(f"http://127.0.0.1:{health}/metrics")
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert (
            status == 200
            and {"lineside_transactions", "lineside_outbox_backlog", "lineside_device_up"} <= names
        )
        samples = {
            f.name: f.samples[0].value
            for f in text_string_to_metric_families(body.decode())
            if f.name in ("lineside_disk_written_bytes", "lineside_ledger_bytes")
        }
        assert samples["lineside_disk_written_bytes"] > 0 and samples["lineside_ledger_bytes"] > 0
        wait_until(
            lambda: healthz_disk(health)["written_bytes_per_s"] is not None,
            15,
            "a write rate once the gauges were sampled twice",
        )
        assert http(f"http://127.0.0.1:{health}/healthz")[0] == 200
        broker.stop()
        wait_until(
            lambda: http(f"http://127.0.0.1:{health}/healthz")[0] == 503,
            30,
            "503 with the broker gone",
        )
        broker.start()
        wait_until(
            lambda: http(f"http://127.0.0.1:{health}/healthz")[0] == 200,
            60,
            "200 with the broker back",
        )

        # SIGTERM: exit 0 within 5 s
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0  # systemd's contract, not a speed target
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
        print(err[-4000:])
        consumer.stop()
        notify.sock.close()
    assert "reload refused" in err
    assert "Traceback" not in err
