"""A thread of the agent that dies makes it unhealthy: /healthz, `lineside status`, watchdog.

The agent process runs with one fault injected (its retention pruning raises, as a
retention of 1000000 days once did with OverflowError), so the sync store thread dies
60 s after start (here 3 s). Until then the agent is healthy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.broker import Broker, free_port, wait_until
from tests.e2e.agent_run import http, running_agent

CONFIG = """
gateway: {{id: gw-live, site: test, data_dir: ./var}}
mqtt: {{host: 127.0.0.1, port: {broker}}}
items: {{FG: {{uom: ea}}}}
health: {{listen: "127.0.0.1:{health}"}}
log: {{format: keyvalue, level: info}}
"""
PRUNE_RAISES = """
import lineside.agent.sync.store_loop as store_loop
def prune(conn, retention_days, now=None):
    raise OverflowError("date value out of range")
store_loop.prune = prune
store_loop.PRUNE_FIRST_S = 3.0
"""


def healthz(port: int) -> tuple[int, dict[str, object]]:
    status, body = http(f"http://127.0.0.1:{port}/healthz")
    return status, json.loads(body)


def test_a_dead_sync_thread_is_unhealthy_everywhere(tmp_path: Path, broker: Broker) -> None:
    health = free_port()
    config = tmp_path / "line.yaml"
    config.write_text(CONFIG.format(broker=broker.port, health=health))
    with running_agent(config, watchdog_usec=600_000, prelude=PRUNE_RAISES) as agent:
        agent.wait_ready()
        wait_until(lambda: agent.notify.saw("WATCHDOG=1"), 10, "WATCHDOG=1")
        wait_until(lambda: healthz(health)[0] == 200, 20, "healthy while the thread lives")

        wait_until(lambda: healthz(health)[0] == 503, 30, "503 once the store thread died")
        status, body = healthz(health)
        assert status == 503
        problems = body["problems"]
        assert isinstance(problems, list)
        assert any("lineside-sync-store" in p for p in problems), problems

        status_cli = subprocess.run(
            [sys.executable, "-m", "lineside.agent.cli", "status", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status_cli.returncode == 0, status_cli.stderr
        assert "UNHEALTHY" in status_cli.stdout
        assert "thread lineside-sync-store has stopped" in status_cli.stdout
        assert "disk: ledger " in status_cli.stdout and " free on " in status_cli.stdout

        # The watchdog is no longer fed: a main loop tick is 0.2 s, so 2 s would hold ten.
        time.sleep(1.0)  # a ping sent just before the thread died may still be in flight
        fed = agent.notify.count("WATCHDOG=1")
        time.sleep(2.0)
        assert agent.notify.count("WATCHDOG=1") == fed
        assert agent.proc.poll() is None  # unhealthy, not gone: systemd's watchdog restarts it
    assert "the sync store thread failed" in agent.log
