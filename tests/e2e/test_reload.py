"""SIGHUP to a running agent: what is refused is refused whole, and nothing stalls."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.broker import Broker, free_port, wait_until
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
