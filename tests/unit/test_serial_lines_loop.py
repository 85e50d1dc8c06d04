"""The reconnect loop with a fake port: status changes once, backoff, never raising. No I/O."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import serial

from lineside.drivers.base import DeviceStatus, Event, Scan
from lineside.drivers.scanner.config import SerialScannerConfig
from lineside.drivers.serial_lines import LineDeviceLoop, Rejection
from lineside.drivers.serial_settings import GS, SerialLineSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeStop:
    """Records the backoff waits and sets itself after a given number of them."""

    def __init__(self, stop_after_waits: int) -> None:
        self.waits: list[float | None] = []
        self._left = stop_after_waits
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self._left -= 1
        if self._left <= 0:
            self._set = True
        return self._set


class FakePort:
    """Returns the given chunks (b"" is a read timeout), then raises like an unplugged port."""

    def __init__(self, chunks: list[bytes], stop: FakeStop | None = None) -> None:
        self._chunks = list(chunks)
        self._stop = stop
        self.closed = False

    @property
    def in_waiting(self) -> int:
        return len(self._chunks[0]) if self._chunks else 0

    def read(self, size: int) -> bytes:
        if not self._chunks:
            raise serial.SerialException("device disconnected")
        return self._chunks.pop(0)

    def close(self) -> None:
        self.closed = True


class Opener:
    """Plays a script of outcomes: an exception to raise or a port to return."""

    def __init__(self, script: list[Exception | FakePort]) -> None:
        self._script = script
        self.calls = 0

    def __call__(self, settings: SerialLineSettings) -> Any:
        self.calls += 1
        outcome = self._script.pop(0) if self._script else OSError("gone")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def config(**extra: Any) -> SerialScannerConfig:
    values: dict[str, Any] = {
        "driver": "serial_scanner", "port": "/dev/fake", "work_center": "WC",
        "reconnect_min_ms": 500, "reconnect_max_ms": 4000,
    }
    return SerialScannerConfig(**(values | extra))


def scan_handler(line: str, ts: datetime) -> Event | Rejection | None:
    return Scan("sc", line, ts)


def run_loop(
    opener: Opener, stop: FakeStop, handle: Callable[[str, datetime], Any] = scan_handler,
    emit: Callable[[Event], None] | None = None,
) -> list[Event]:
    events: list[Event] = []
    loop = LineDeviceLoop(
        "sc", config(), handle, logger=logging.getLogger("lineside.test.loop"),
        clock=lambda: T0, allowed_controls=GS, open_port=opener,
    )
    loop.run(stop, emit or events.append)
    return events


def states(events: list[Event]) -> list[str]:
    return [e.state for e in events if isinstance(e, DeviceStatus)]


def test_down_once_while_failing_then_up_once_then_down_on_unplug() -> None:
    stop = FakeStop(stop_after_waits=6)
    port = FakePort([b"AB", b"", b"C\r", b"DE\r"])
    opener = Opener([OSError("no such file"), OSError("no such file"), port])
    events = run_loop(opener, stop)
    assert states(events) == ["down", "up", "down"]
    assert [e.data for e in events if isinstance(e, Scan)] == ["ABC", "DE"]
    assert port.closed
    # 0.5, 1.0 while failing; reset by the successful open: 0.5, 1.0, 2.0, 4.0 afterwards
    assert stop.waits == [0.5, 1.0, 0.5, 1.0, 2.0, 4.0]


def test_status_events_carry_the_reason() -> None:
    stop = FakeStop(stop_after_waits=1)
    events = run_loop(Opener([serial.SerialException("could not open port")]), stop)
    (status,) = events
    assert isinstance(status, DeviceStatus)
    assert status.state == "down"
    assert "could not open port" in status.reason


def test_a_partial_line_is_not_glued_to_the_next_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="lineside.test.loop")
    stop = FakeStop(stop_after_waits=2)
    opener = Opener([FakePort([b"]C1 half"]), FakePort([b"WHOLE\r"])])
    events = run_loop(opener, stop)
    assert [e.data for e in events if isinstance(e, Scan)] == ["WHOLE"]
    assert any("incomplete line" in m for m in caplog.messages)


def test_a_failing_handler_or_emit_does_not_end_the_loop() -> None:
    def handle(line: str, ts: datetime) -> Event | Rejection | None:
        if line == "boom":
            raise RuntimeError("handler bug")
        return Scan("sc", line, ts)

    seen: list[Event] = []

    def emit(event: Event) -> None:
        if isinstance(event, Scan) and event.data == "emit-boom":
            raise RuntimeError("agent bug")
        seen.append(event)

    stop = FakeStop(stop_after_waits=1)
    run_loop(Opener([FakePort([b"boom\remit-boom\rfine\r"])]), stop, handle, emit)
    assert [e.data for e in seen if isinstance(e, Scan)] == ["fine"]


def test_an_unexpected_error_is_logged_and_retried() -> None:
    class Exploding(FakePort):
        def read(self, size: int) -> bytes:
            raise KeyError("a bug, not an unplug")

    stop = FakeStop(stop_after_waits=2)
    opener = Opener([Exploding([]), FakePort([b"ok\r"])])
    events = run_loop(opener, stop)
    assert states(events) == ["up", "down", "up", "down"]
    assert [e.data for e in events if isinstance(e, Scan)] == ["ok"]


def test_handler_rejections_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lineside.test.loop")

    def handle(line: str, ts: datetime) -> Event | Rejection | None:
        return Rejection("malformed", len(line), line.encode(), "(nope)")

    run_loop(Opener([FakePort([b"x1\rx2\rx3\r"])]), FakeStop(1), handle)
    rejected = [m for m in caplog.messages if "rejected" in m]
    assert len(rejected) == 2  # the first in detail, the rest counted when the port goes
    assert "malformed line (2 bytes): b'x1' (nope)" in rejected[0]
    assert "2 more lines (4 bytes)" in rejected[1]


def test_stop_before_start_returns_at_once() -> None:
    stop = FakeStop(stop_after_waits=0)
    stop.wait()
    opener = Opener([])
    assert run_loop(opener, stop) == []
    assert opener.calls == 0
