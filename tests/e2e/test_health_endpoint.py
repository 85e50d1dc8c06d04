"""The health endpoint of a running agent under idle connections: threads stay bounded."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from lineside.agent.health import MAX_CONNECTIONS
from tests.broker import Broker, free_port, wait_until
from tests.e2e.agent_run import http, running_agent

CONFIG = """
gateway: {{id: gw-health, site: test, data_dir: ./var}}
mqtt: {{host: 127.0.0.1, port: {broker}}}
health: {{listen: "127.0.0.1:{health}"}}
"""


def threads_of(proc: subprocess.Popen[str]) -> int:
    status = Path(f"/proc/{proc.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def test_idle_connections_do_not_each_take_a_thread(tmp_path: Path, broker: Broker) -> None:
    health = free_port()
    url = f"http://127.0.0.1:{health}/healthz"
    config = tmp_path / "line.yaml"
    config.write_text(CONFIG.format(broker=broker.port, health=health))
    with running_agent(config) as agent:
        agent.wait_ready()
        wait_until(lambda: http(url)[0] == 200, 30, "healthy")
        before = threads_of(agent.proc)
        idle = [socket.create_connection(("127.0.0.1", health), timeout=5) for _ in range(200)]
        try:
            time.sleep(1.0)  # the agent accepts them meanwhile
            during = threads_of(agent.proc)
            print(f"agent threads: {before} before, {during} with 200 idle connections")
            assert during <= before + MAX_CONNECTIONS  # before: one more per connection
        finally:
            for sock in idle:
                sock.close()
        wait_until(lambda: http(url)[0] == 200, 30, "healthy again")
        wait_until(lambda: threads_of(agent.proc) <= before + 1, 30, "their threads gone")
    assert "Traceback" not in agent.log
