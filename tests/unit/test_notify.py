"""The systemd notify protocol against a real datagram socket."""

from __future__ import annotations

import socket
from pathlib import Path

from lineside.agent.notify import Notifier


def test_ready_watchdog_and_status_reach_the_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(5)
        notifier = Notifier(path)
        assert notifier.ready("2/2 devices up")
        assert server.recv(4096) == b"READY=1\nSTATUS=2/2 devices up"
        assert notifier.watchdog()
        assert server.recv(4096) == b"WATCHDOG=1"
        assert notifier.stopping()
        assert server.recv(4096) == b"STOPPING=1"


def test_without_notify_socket_nothing_is_sent(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled and not notifier.ready("x")
    assert not Notifier(str(Path("/nonexistent/socket"))).watchdog()


def test_watchdog_interval_comes_from_systemd(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert Notifier("x").watchdog_s == 30.0


def test_a_full_receiver_never_blocks_the_sender(tmp_path: Path) -> None:
    path = str(tmp_path / "full.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)  # nobody reads: the queue fills up
        notifier = Notifier(path)
        results = [notifier.watchdog() for _ in range(5000)]
        assert results[0] and not results[-1]  # refused once full, and returned at once
