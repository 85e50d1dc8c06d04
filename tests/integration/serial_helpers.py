"""Helpers for the serial driver tests: run a driver in a thread, wait for what it emits."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from lineside.drivers.base import DeviceStatus, Driver, Event, Reading, Scan

DEADLINE_S = 15.0


class Events:
    """A thread-safe emit callback that tests can wait on."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def all(self) -> list[Event]:
        with self._cond:
            return list(self._events)

    def scans(self) -> list[str]:
        return [e.data for e in self.all() if isinstance(e, Scan)]

    def readings(self) -> list[Reading]:
        return [e for e in self.all() if isinstance(e, Reading)]

    def states(self) -> list[str]:
        return [e.state for e in self.all() if isinstance(e, DeviceStatus)]

    def wait_for(
        self, check: Callable[[Events], bool], what: str, timeout: float = DEADLINE_S
    ) -> None:
        """Wait until check(self) holds; fail with what was seen when the deadline passes."""
        with self._cond:
            ok = self._cond.wait_for(lambda: check(self), timeout)
        assert ok, f"timed out after {timeout} s waiting for {what}; saw {self.all()!r}"

    def wait_states(self, *states: str, timeout: float = DEADLINE_S) -> None:
        self.wait_for(lambda e: e.states() == list(states), f"states {states}", timeout)

    def wait_scans(self, count: int, timeout: float = DEADLINE_S) -> list[str]:
        self.wait_for(lambda e: len(e.scans()) >= count, f"{count} scans", timeout)
        return self.scans()


@contextmanager
def running(driver: Driver) -> Iterator[tuple[Events, threading.Event]]:
    """Run driver.run in a thread; on exit stop it and check that it stopped promptly."""
    events = Events()
    stop = threading.Event()
    thread = threading.Thread(target=driver.run, args=(stop, events), daemon=True)
    thread.start()
    try:
        yield events, stop
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive(), "driver did not stop within 5 s"


@contextmanager
def in_thread(target: Callable[..., Any], *args: Any) -> Iterator[threading.Event]:
    """Run target(*args, stop) in a thread until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(*args, stop), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive(), f"{target.__name__} did not stop within 5 s"


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
