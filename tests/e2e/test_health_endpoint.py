"""The health endpoint of a running agent under idle connections: threads stay bounded."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from lineside.agent.health import MAX_CONNECTIONS
from tests.broker import Broker, free_port, wait_until
from tests.e2e.agent_run import NotifySocket, http, start_agent

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
    config = tmp_path / "line.yaml"
    config.write_text(CONFIG.format(broker=broker.port, health=health))
    notify = NotifySocket(tmp_path / "notify.sock")
    proc = start_agent(config, notify)
    idle: list[socket.socket] = []
    try:
        wait_until(lambda: notify.saw("READY=1"), 30, "READY=1")
        wait_until(lambda: http(f"http://127.0.0.1:{health}/healthz")[0] == 200, 30, "healthy")
        before = threads_of(proc)
        started = time.monotonic()
        for _ in range(200):
            idle.append(socket.create_connection(("127.0.0.1", health), timeout=5))
        print(f"connected after {time.monotonic() - started:.1f} s")
        time.sleep(1.0)  # the agent accepts them meanwhile
        during = threads_of(proc)
        print(f"agent threads: {before} before, {during} with 200 idle connections")
        assert during <= before + MAX_CONNECTIONS  # before: one more thread per connection
        assert proc.poll() is None
    finally:
        for sock in idle:
            sock.close()
    closed = time.monotonic()
    try:
        wait_until(
            lambda: http(f"http://127.0.0.1:{health}/healthz")[0] == 200, 30, "healthy again"
        )
        print(f"healthy again after {time.monotonic() - closed:.1f} s")
        wait_until(lambda: threads_of(proc) <= before + 1, 30, "the connection threads gone")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        notify.sock.close()
    assert "Traceback" not in err, err[-3000:]
