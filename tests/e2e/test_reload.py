"""SIGHUP to a running agent: what is refused is refused whole, and nothing stalls."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.broker import Broker, Consumer, free_port
from tests.conftest import REPO
from tests.e2e.agent_run import NotifySocket, http, running_agent

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
    with running_agent(config, watchdog_usec=600_000) as agent:
        agent.wait_ready()
        config.write_text(
            text.replace("  FG: {uom: ea}\n", "  FG: {uom: ea}\n" + many_items(12_000))
        )
        assert config.stat().st_size > 800_000  # near the 1 MiB limit
        agent.reload(timeout_s=120)
        between = messages_between(agent.notify, "RELOADING=1", "READY=1")
        print(f"{between.count('WATCHDOG=1')} watchdog pings while reloading")
        assert "WATCHDOG=1" in between, between  # before: the main loop read the file
        assert http(f"http://127.0.0.1:{health}/healthz")[0] == 200
    assert "config reloaded" in agent.log


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
    consumer = Consumer(broker.port, ["lineside/v1/test/gw-reload/#"]).start()
    try:
        with running_agent(config) as agent:
            agent.wait_ready()
            old_mqtt = f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}\n"
            assert old_mqtt in text
            new_mqtt = NEW_MQTT.format(broker=broker.port, password=password, tls=tls)
            # A new item in the same reload: refused with the rest.
            changed = text.replace(old_mqtt, new_mqtt).replace(
                "  FG: {uom: ea}\n", "  FG: {uom: ea}\n  NEW: {uom: kg}\n"
            )
            config.write_text(changed)
            agent.reload()
            assert agent.proc.poll() is None
            assert http(f"http://127.0.0.1:{health}/healthz")[0] == 200

            # The old config runs on: its sync still takes commands, with the old items.
            reply = command_reply(consumer, "receipt", item="NEW", location="L1", qty="1")
            assert reply["ok"] is False and "NEW" in reply["error"], reply
    finally:
        consumer.stop()
    name = key.rsplit(".", 1)[1] + ":"
    line = next(n for n, text in enumerate(changed.splitlines(), 1) if name in text)
    log = agent.log
    assert f"reload refused: {config}:{line}: {key}: " in log and message in log
    assert "config reload refused (1 errors): still running the old one" in log
    assert "config reloaded" not in log
    assert "Traceback" not in log


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
    with running_agent(config) as agent:
        agent.wait_ready()
        before = peak_rss_mb(agent.proc.pid)
        bomb = (REPO / "tests" / "data" / "bad_configs" / "alias_bomb.yaml").read_text()
        config.write_text(
            text + "".join(x + "\n" for x in bomb.splitlines() if x.startswith("lol"))
        )
        agent.reload()
        after = peak_rss_mb(agent.proc.pid)
        print(f"agent peak RSS {before:.0f} MB before the SIGHUP, {after:.0f} MB after")
        assert after < before + 50
        assert http(f"http://127.0.0.1:{health}/healthz")[0] == 200
    assert "(yaml): aliases expand the document by" in agent.log
    assert "config reload refused (1 errors)" in agent.log
