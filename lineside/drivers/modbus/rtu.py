"""One RS-485 line (serial port) shared by every modbus_rtu device on it.

A Modbus RTU answer says only which unit sent it and for which function: nothing ties it
to one request. So the bus does its own transactions (pymodbus builds the frames and
decodes the PDUs, see ``modbus_frames``) and accepts an answer only when it matches its
request: unit id, function code, byte count for the registers or bits asked, CRC.

- Before a request, bytes already waiting are discarded (and logged).
- After a timeout, or a frame that is not the answer, the bus *waits out the line*: it
  reads and discards until nothing has arrived for ``timeout_ms`` (at most
  ``WAIT_OUT_LIMIT`` times that), so a late answer cannot be taken for the next request's.
  (libmodbus' protocol error recovery likewise waits one response timeout, then flushes.)
  Then the request is sent once more (``retries``).
- A request gets at most ``retries + 1`` tries; when none is answered the device is
  unreachable for this poll. When a try was not answered at all, not even late, an
  answer to the retry may be that try's, very late: the line is waited out after it too.

The lock makes each transaction (tries and waiting out included) exclusive on the line,
and ``pause_ms`` of silence is kept between the end of one and the start of the next.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import serial

from lineside.drivers.modbus.codec import ReadBlock
from lineside.drivers.modbus.frames import (
    HEAD_SIZE,
    DeviceUnreachable,
    NotTheAnswer,
    Values,
    answer_size,
    describe,
    parse_answer,
    request_frame,
)

log = logging.getLogger("lineside.drivers.modbus")

READ_SLICE_S = 0.01  # one blocking read: how finely deadlines and quiet are measured
WAIT_OUT_LIMIT = 3  # waiting out the line ends after this many timeouts, quiet or not
WARN_EVERY_S = 60.0  # a discard is logged at warning at most this often per port


class _NoAnswer(Exception):
    """This try got no usable answer (nothing, too little, or a frame that is not it)."""

    def __init__(self, reason: str, received: bytes) -> None:
        super().__init__(reason)
        self.received = received


class RtuBus:
    """One serial port shared by every modbus_rtu device on it (each with its own unit id).

    The port is opened on first use, reopened after an I/O error and never at
    construction. ``port`` is a device path or a pyserial URL (``socket://host:port``,
    ``rfc2217://host:port``, ``loop://``).
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        timeout_ms: int = 1000,
        pause_ms: int = 20,
        retries: int = 1,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize
        self.timeout_ms = timeout_ms
        self.pause_ms = pause_ms
        self.retries = retries
        self._lock = threading.Lock()
        self._serial: Any = None
        self._last_end: float | None = None
        self._warned_at = -WARN_EVERY_S
        self._quiet_discards = 0

    def read(self, unit: int, block: ReadBlock) -> Values:
        with self._lock:
            self._keep_pause()
            try:
                return self._transaction(unit, block)
            finally:
                self._last_end = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _keep_pause(self) -> None:
        if self._last_end is None:
            return
        remaining = self._last_end + self.pause_ms / 1000 - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def _transaction(self, unit: int, block: ReadBlock) -> Values:
        frame = request_frame(unit, block)
        try:
            port = self._serial or self._open()
            reason = ""
            owed = False  # a request went unanswered, even late: its answer may still come
            for _ in range(self.retries + 1):
                self._discard_waiting(port, unit, block)
                port.write(frame)
                port.flush()
                try:
                    values = self._answer(port, unit, block)
                except _NoAnswer as exc:
                    reason = str(exc)
                    what = f"unit {unit}: {describe(block)}: {reason}"
                    owed = self._wait_out(port, what, exc.received) == 0
                    continue
                if owed:
                    # What came may be the first request's answer, later than the waiting
                    # out; then the retry's own would follow, and be taken for the next
                    # request's: so the line is waited out once more.
                    self._wait_out(port, f"unit {unit}: {describe(block)}: after a retry", b"")
                return values
        except (serial.SerialException, OSError) as exc:
            self._close_locked()  # a port that failed is opened afresh next time
            raise DeviceUnreachable(f"serial port {self.port}: {exc}") from exc
        tries = "once" if self.retries == 0 else f"{self.retries + 1} times"
        raise DeviceUnreachable(f"unit {unit}: {describe(block)}: {reason} (asked {tries})")

    def _answer(self, port: Any, unit: int, block: ReadBlock) -> Values:
        deadline = time.monotonic() + self.timeout_ms / 1000
        frame = self._read(port, HEAD_SIZE, deadline)
        try:
            if len(frame) < HEAD_SIZE:
                raise _NoAnswer(self._short(frame), frame)
            size = answer_size(unit, block, frame)
            frame += self._read(port, size - len(frame), deadline)
            if len(frame) < size:
                raise _NoAnswer(self._short(frame, size), frame)
            return parse_answer(unit, block, frame)
        except NotTheAnswer as exc:
            raise _NoAnswer(f"got {exc}", frame) from None

    def _short(self, frame: bytes, size: int | None = None) -> str:
        within = f"within timeout_ms {self.timeout_ms}"
        if not frame:
            return f"no answer {within}"
        return f"only {len(frame)} of {size or 'at least 5'} bytes of an answer {within}"

    @staticmethod
    def _read(port: Any, count: int, deadline: float) -> bytes:
        data = b""
        while len(data) < count and time.monotonic() < deadline:
            data += port.read(count - len(data))
        return data

    def _wait_out(self, port: Any, what: str, received: bytes) -> int:
        """Discard until the line has been quiet for timeout_ms (bounded), and say so;
        received: what this try already read of a frame that was not its answer. Returns
        how many bytes were discarded."""
        quiet_s = self.timeout_ms / 1000
        started = last = time.monotonic()
        limit = started + WAIT_OUT_LIMIT * quiet_s
        discarded = received
        while (now := time.monotonic()) - last < quiet_s and now < limit:
            data = port.read(max(1, port.in_waiting))
            if data:
                discarded += data
                last = time.monotonic()
        busy = time.monotonic() - last < quiet_s
        if not discarded:
            log.debug("%s %s: waited out the line, nothing came", self.port, what)
            return 0
        more = ", and the line never went quiet" if busy else ""
        self._warn(
            f"{self.port} {what}; discarded {len(discarded)} bytes{more}"
            f" ({discarded[:16].hex(' ')}), waiting until the line was quiet for timeout_ms"
            f" {self.timeout_ms}: a late answer, or noise on the line"
        )
        return len(discarded)

    def _discard_waiting(self, port: Any, unit: int, block: ReadBlock) -> None:
        data = b""
        while port.in_waiting and len(data) < 4096:  # socket:// says 1 for "some"
            data += port.read(port.in_waiting)
        if data:
            self._warn(
                f"{self.port}: discarded {len(data)} bytes waiting before unit {unit}'s"
                f" {describe(block)} ({data[:16].hex(' ')}): noise, or an answer later than"
                f" timeout_ms {self.timeout_ms} and its waiting out"
            )

    def _warn(self, message: str) -> None:
        """A warning per minute at most per port; the ones between are counted, at debug."""
        now = time.monotonic()
        if now - self._warned_at < WARN_EVERY_S:
            self._quiet_discards += 1
            log.debug("%s", message)
            return
        if self._quiet_discards:
            message += f" ({self._quiet_discards} more like it in the last minute at debug)"
        self._warned_at, self._quiet_discards = now, 0
        log.warning("%s", message)

    def _open(self) -> Any:
        self._serial = serial.serial_for_url(
            self.port,
            baudrate=self.baudrate,
            parity=self.parity,
            stopbits=self.stopbits,
            bytesize=self.bytesize,
            timeout=READ_SLICE_S,
        )
        return self._serial

    def _close_locked(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                log.debug("%s: close failed", self.port, exc_info=True)
            self._serial = None
