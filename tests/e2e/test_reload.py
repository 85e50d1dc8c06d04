"""SIGHUP to a running agent: what is refused is refused whole, and nothing stalls."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.broker import Broker, Consumer, free_port, wait_until
from tests.conftest import REPO
from tests.e2e.agent_run import NotifySocket, http, start_agent

CONFIG = """
gateway: {{id: gw-reload, site: test, data_dir: ./var}}
mqtt: {{host: 127.0.0.1, port: {broker}}}
items:
  FG: {{uom: ea}}
health: {{listen: "127.0.0.1:{health}"}}
log: {{format: keyvalue, level: info}}
"""


def many_items(count: int) -> str:
    """A large valid items section: parsing it takes seconds, as on a big line."""
    return "".join(
        f"  PART-{n:06d}: {{uom: kg, decimals: 3, cost: 1.25, description: Part {n}}}\n"
        for n in range(count)
    )


def messages_between(notify: NotifySocket, first: str, then: str) -> list[str]:
    """The notify messages after the last `first` and before the next `then`."""
    notify.saw(first)
    received = notify.received
    start = max(i for i, m in enumerate(received) if first in m.splitlines())
    end = next(i for i in range(start, len(received)) if then in received[i].splitlines())
    return received[start + 1 : end]


def test_reading_a_large_config_does_not_stop_the_watchdog(tmp_path: Path, broker: Broker) -> None:
    health = free_port()
    config = tmp_path / "line.yaml"
    text = CONFIG.format(broker=broker.port, health=health)
    config.write_text(text)
    notify = NotifySocket(tmp_path / "notify.sock")
    proc = start_agent(config, notify, watchdog_usec=600_000)
    try:
        wait_until(lambda: notify.saw("READY=1"), 30, "READY=1")
        ready = notify.count("READY=1")
        config.write_text(
            text.replace("  FG: {uom: ea}\n", "  FG: {uom: ea}\n" + many_items(12_000))
        )
        assert config.stat().st_size > 800_000  # near the 1 MiB limit
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: notify.count("READY=1") > ready, 120, "READY=1 after the reload")
        between = messages_between(notify, "RELOADING=1", "READY=1")
        print(f"{between.count('WATCHDOG=1')} watchdog pings while reloading")
        assert "WATCHDOG=1" in between, between  # before: the main loop read the file
        assert http(f"http://127.0.0.1:{health}/healthz")[0] == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        print(err[-3000:])
        notify.sock.close()
    assert "config reloaded" in err


def command_reply(consumer: Consumer, name: str, **fields: str) -> dict[str, object]:
    """Send a command until its reply comes (the agent may not have subscribed yet)."""
    prefix = "lineside/v1/test/gw-reload"
    payload = json.dumps({"request_id": "r1", **fields})
    deadline = time.monotonic() + 30
    while not consumer.json_on(f"{prefix}/reply/{name}"):
        assert time.monotonic() < deadline, f"no reply to {name} within 30 s"
        consumer.client.publish(f"{prefix}/cmd/{name}", payload, qos=1)
        time.sleep(1.0)
    reply: dict[str, object] = consumer.json_on(f"{prefix}/reply/{name}")[0]
    return reply


NEW_MQTT = """mqtt:
  host: 127.0.0.1
  port: {broker}
  username: gw-reload
  password_file: {password}
  {tls}
"""


@pytest.mark.parametrize(
    ("password", "tls", "key", "message"),
    [
        ("missing.password", "", "mqtt.password_file", "No such file"),
        ("mqtt.password", "tls: {ca_file: line.yaml}", "mqtt.tls.ca_file", "not a PEM"),
    ],
    ids=["password-unreadable", "ca-not-pem"],
)
def test_a_reload_with_an_unusable_mqtt_file_is_refused_whole(
    tmp_path: Path, broker: Broker, password: str, tls: str, key: str, message: str
) -> None:
    """Before: SyncSetupError on the main thread ended the process, the old sync stopped."""
    health = free_port()
    config = tmp_path / "line.yaml"
    text = CONFIG.format(broker=broker.port, health=health)
    config.write_text(text)
    (tmp_path / "mqtt.password").write_text("s3cret\n")
    notify = NotifySocket(tmp_path / "notify.sock")
    consumer = Consumer(broker.port, ["lineside/v1/test/gw-reload/#"]).start()
    proc = start_agent(config, notify)
    try:
        wait_until(lambda: notify.saw("READY=1"), 30, "READY=1")
        ready = notify.count("READY=1")
        old_mqtt = f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}\n"
        assert old_mqtt in text
        new_mqtt = NEW_MQTT.format(broker=broker.port, password=password, tls=tls)
        # A new item in the same reload: refused with the rest.
        changed = text.replace(old_mqtt, new_mqtt).replace(
            "  FG: {uom: ea}\n", "  FG: {uom: ea}\n  NEW: {uom: kg}\n"
        )
        config.write_text(changed)
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: notify.count("READY=1") > ready, 30, "READY=1 after the reload")
        assert proc.poll() is None
        assert http(f"http://127.0.0.1:{health}/healthz")[0] == 200

        # The old config runs on: its sync still takes commands, with the old items.
        reply = command_reply(consumer, "receipt", item="NEW", location="L1", qty="1")
        assert reply["ok"] is False and "NEW" in reply["error"], reply
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        print(err[-3000:])
        consumer.stop()
        notify.sock.close()
    name = key.rsplit(".", 1)[1] + ":"
    line = next(n for n, text in enumerate(changed.splitlines(), 1) if name in text)
    assert f"reload refused: {config}:{line}: {key}: " in err and message in err
    assert "config reload refused (1 errors): still running the old one" in err
    assert "config reloaded" not in err
    assert "Traceback" not in err


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x.split()[1] for x in status.splitlines() if x.startswith("VmHWM:"))) / 1024


def test_an_alias_bomb_in_the_live_config_is_refused_without_growing(
    tmp_path: Path, broker: Broker
) -> None:
    """Before: the agent grew to 1.8 GB and its main loop stopped for 20 s."""
    health = free_port()
    config = tmp_path / "line.yaml"
    text = CONFIG.format(broker=broker.port, health=health)
    config.write_text(text)
    notify = NotifySocket(tmp_path / "notify.sock")
    proc = start_agent(config, notify)
    try:
        wait_until(lambda: notify.saw("READY=1"), 30, "READY=1")
        ready = notify.count("READY=1")
        before = peak_rss_mb(proc.pid)
        bomb = (REPO / "tests" / "data" / "bad_configs" / "alias_bomb.yaml").read_text()
        config.write_text(
            text + "".join(x + "\n" for x in bomb.splitlines() if x.startswith("lol"))
        )
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: notify.count("READY=1") > ready, 60, "READY=1 after the reload")
        after = peak_rss_mb(proc.pid)
        print(f"agent peak RSS {before:.0f} MB before the SIGHUP, {after:.0f} MB after")
        assert after < before + 50
        assert http(f"http://127.0.0.1:{health}/healthz")[0] == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        notify.sock.close()
    assert "(yaml): aliases expand the document by" in err
    assert "config reload refused (1 errors)" in err
