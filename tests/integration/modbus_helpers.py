"""Shared by the Modbus integration tests: an event recorder and a driver running in a thread.

Everything here is real: drivers run their own threads against a simulator on a free
loopback port. Waiting is always "until a condition holds, or a generous deadline".
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from lineside.drivers.base import Backoff, DeviceStatus, Driver, Event, Reading
from lineside.drivers.modbus.config import ModbusRtuConfig, ModbusTcpConfig

# Short reconnect delays keep outage tests quick; the shape (doubling, capped) is the real one.
FAST_BACKOFF = Backoff(initial_s=0.1, max_s=0.5)
DEADLINE_S = 10.0


class Recorder:
    """The emit callback: keeps every event in order and lets a test wait for a condition."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._changed = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    @property
    def events(self) -> list[Event]:
        with self._changed:
            return list(self._events)

    def readings(self, device: str | None = None, point: str | None = None) -> list[Reading]:
        return [
            e
            for e in self.events
            if isinstance(e, Reading)
            and (device is None or e.device == device)
            and (point is None or e.point == point)
        ]

    def statuses(self, device: str | None = None) -> list[DeviceStatus]:
        return [
            e
            for e in self.events
            if isinstance(e, DeviceStatus) and (device is None or e.device == device)
        ]

    def wait_for(
        self, condition: Callable[[Recorder], bool], what: str, timeout: float = DEADLINE_S
    ) -> None:
        """Wait until condition holds; it is checked on every event and every 20 ms, so it
        may also look at things other than events (log records, the simulator)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tail = self._events[-5:]
                    raise AssertionError(f"no {what} within {timeout} s; last events: {tail}")
                self._changed.wait(min(0.02, remaining))

    def wait_readings(
        self,
        count: int,
        device: str | None = None,
        point: str | None = None,
        timeout: float = DEADLINE_S,
    ) -> list[Reading]:
        self.wait_for(
            lambda r: len(r.readings(device, point)) >= count,
            f"{count} readings of {device or '*'}.{point or '*'}",
            timeout,
        )
        return self.readings(device, point)

    def index_of(self, event: Event) -> int:
        return self.events.index(event)


@contextmanager
def running(driver: Driver, emit: Callable[[Event], None]) -> Iterator[threading.Event]:
    """Run driver.run in its own thread; on exit stop it and check it ended cleanly.

    run() must block until stop is set and must never raise: both are asserted here.
    """
    stop = threading.Event()
    raised: list[BaseException] = []

    def target() -> None:
        try:
            driver.run(stop, emit)
        except BaseException as exc:  # the property under test: nothing escapes run()
            raised.append(exc)

    thread = threading.Thread(target=target, name=f"driver-{driver.name}", daemon=True)
    thread.start()
    try:
        yield stop
        assert thread.is_alive(), f"run() of {driver.name} returned before stop: {raised}"
    finally:
        stop.set()
        thread.join(DEADLINE_S)
    assert not thread.is_alive(), f"run() of {driver.name} did not return after stop"
    assert not raised, f"run() of {driver.name} raised {raised!r}"


def tcp_config(port: int, points: dict[str, dict[str, Any]], **settings: Any) -> ModbusTcpConfig:
    data: dict[str, Any] = {
        "driver": "modbus_tcp",
        "host": "127.0.0.1",
        "port": port,
        "poll_ms": 50,
        "timeout_ms": 1000,
        "points": points,
    }
    return ModbusTcpConfig.model_validate(data | settings)


def rtu_config(
    url: str, unit: int, points: dict[str, dict[str, Any]], **settings: Any
) -> ModbusRtuConfig:
    # A high baudrate: over socket:// pymodbus reads a frame byte by byte, paced by baudrate.
    data: dict[str, Any] = {
        "driver": "modbus_rtu",
        "port": url,
        "unit": unit,
        "baudrate": 115200,
        "poll_ms": 50,
        "timeout_ms": 1000,
        "pause_ms": 5,
        "points": points,
    }
    return ModbusRtuConfig.model_validate(data | settings)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
