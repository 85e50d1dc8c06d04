"""`lineside run` as a child process with a stand-in for systemd's notify socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.broker import wait_until


def http(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.received: list[str] = []

    def _drain(self) -> None:
        while True:
            try:
                self.received.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                break

    def saw(self, line: str) -> bool:
        self._drain()
        return any(line in message.splitlines() for message in self.received)

    def count(self, line: str) -> int:
        """How many messages so far held line."""
        self._drain()
        return sum(line in message.splitlines() for message in self.received)


@dataclass
class RunningAgent:
    """The agent process, its notify socket, and (once it has stopped) its log."""

    proc: subprocess.Popen[str]
    notify: NotifySocket
    log: str = ""

    def wait_ready(self) -> None:
        wait_until(lambda: self.notify.saw("READY=1"), 30, "READY=1")

    def reload(self, timeout_s: float = 60) -> None:
        """SIGHUP, and wait for the READY=1 that ends the reload (applied or refused)."""
        ready = self.notify.count("READY=1")
        self.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.notify.count("READY=1") > ready, timeout_s, "READY=1 again")


@contextmanager
def running_agent(
    config: Path, *, watchdog_usec: int = 1_500_000, prelude: str = ""
) -> Iterator[RunningAgent]:
    """`lineside run -c config`, stopped with SIGTERM at the end of the block.

    prelude is Python run in the agent process before it starts (a fault to inject), so
    that the agent itself, not a model of it, is under test.
    """
    notify = NotifySocket(config.parent / "notify.sock")
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify.path,
        "WATCHDOG_USEC": str(watchdog_usec),
        "PYTHONUNBUFFERED": "1",
    }
    boot = "\n".join(
        [
            prelude,
            "import sys",
            "from lineside.agent.cli import main",
            "sys.exit(main(sys.argv[1:]))",
        ]
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", boot, "run", "-c", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    agent = RunningAgent(proc, notify)
    try:
        yield agent
    finally:
        proc.terminate()
        try:
            _, agent.log = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # never leave it running (one grew to 19 GB)
            proc.kill()
            _, agent.log = proc.communicate(timeout=15)
            agent.log += "\n(killed: it did not stop within 15 s of SIGTERM)\n"
        print(agent.log[-3000:])
        notify.sock.close()
