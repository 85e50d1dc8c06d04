"""Line-based serial devices: the shared port settings, line splitter and reconnect loop.

Barcode scanners and ASCII dosing meters both print one message per line over a
serial port (or anything pyserial opens by URL: ``socket://host:port``,
``loop://``, ``rfc2217://``). This module holds what they share:

- ``SerialLineSettings`` (in ``serial_settings``, which the config imports without
  pyserial): port, framing, terminator, maximum line length and reconnect delays.
- ``LineSplitter``: a pure class, bytes in, accepted lines and rejections out.
  It keeps a partial line across reads, rejects control characters (all but the
  ones a device allows, e.g. GS for scanners), undecodable bytes and lines longer
  than ``max_length`` (discarding up to the next terminator), and never raises.
- ``RejectionLog``: logs the first rejection of a burst in detail, then one
  summary line per interval with counts, so a megabyte of garbage costs a few
  log lines, not a million.
- ``LineDeviceLoop``: open the port, read, hand each line to the driver's
  handler, and after an unplug emit DeviceStatus down once, reopen with
  exponential backoff (``lineside.drivers.base.Backoff``, interrupted by stop),
  and emit DeviceStatus up once when the port is back.

Terminators: ``CR``, ``LF`` and ``CRLF`` all end a line on either CR or LF (so a
scanner set to CRLF on a CR config still works; the empty line between CR and LF
is ignored), the setting says what the device is expected to send. Anything else
is a custom terminator written with Python escapes, e.g. ``"\\x03"`` (ETX) or
``"#"``, matched exactly.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import serial

from lineside.clock import Clock, utc_now
from lineside.drivers.base import Backoff, DeviceStatus, Emit, Event, StopFlag
from lineside.drivers.serial_settings import (
    SerialLineSettings,
    is_standard_terminator,
    terminator_bytes,
)

READ_TIMEOUT_S = 0.1  # how long one read blocks: bounds how late a stop is noticed
READ_CHUNK_MAX = 65536
SAMPLE_BYTES = 32  # how much of a rejected line a log line shows
_EOL = re.compile(rb"[\r\n]")

Monotonic = Callable[[], float]
RejectReason = Literal["junk", "overlong", "undecodable", "malformed", "incomplete"]


# --- splitting bytes into lines (pure) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line that was not accepted: why, how many bytes, and the first few of them."""

    reason: RejectReason
    size: int
    sample: bytes = b""
    detail: str = ""

    def describe(self) -> str:
        text = f"{self.reason} line ({self.size} bytes): {self.sample!r}"
        if self.size > len(self.sample):
            text += "…"
        return f"{text} {self.detail}".rstrip()


@dataclass(frozen=True, slots=True)
class Split:
    lines: tuple[str, ...]
    rejections: tuple[Rejection, ...]


class LineSplitter:
    """Turns a byte stream into validated lines; pure, and never raises on any input.

    Lines are decoded as UTF-8 and may hold printable characters plus the control
    characters in ``allowed_controls``. Empty lines are ignored. A line longer than
    ``max_length`` bytes is rejected once and discarded up to the next terminator.
    """

    def __init__(self, terminator: str, max_length: int, allowed_controls: str = "") -> None:
        self._standard = is_standard_terminator(terminator)
        self._terminator = terminator_bytes(terminator)
        self._max_length = max_length
        self._allowed = frozenset(allowed_controls)
        disallowed = "".join(
            re.escape(chr(c)) for c in [*range(0x20), 0x7F] if chr(c) not in self._allowed
        )
        self._bad_ascii = re.compile(f"[{disallowed}]".encode("latin-1"))
        # a custom terminator split across reads: its first bytes wait at the end of the buffer
        self._tail = 0 if self._standard else len(self._terminator) - 1
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already searched for a terminator
        self._discarding = False

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held for the next read."""
        return len(self._buffer)

    def reset(self) -> Rejection | None:
        """Forget the unfinished line (after a disconnect); says what was dropped, if anything."""
        dropped: Rejection | None = None
        if self._buffer and not self._discarding:
            dropped = Rejection("incomplete", len(self._buffer), bytes(self._buffer[:SAMPLE_BYTES]))
        self._buffer.clear()
        self._scanned = 0
        self._discarding = False
        return dropped

    def feed(self, data: bytes) -> Split:
        lines: list[str] = []
        rejections: list[Rejection] = []
        self._buffer += data
        start = 0
        for end, after in self._line_ends():
            self._finish(bytes(self._buffer[start:end]), lines, rejections)
            start = after
        del self._buffer[:start]
        self._scanned = max(0, len(self._buffer) - self._tail)
        self._check_overlong(rejections)
        return Split(tuple(lines), tuple(rejections))

    def _line_ends(self) -> list[tuple[int, int]]:
        """(end of line, start of next) for every terminator not yet seen in the buffer."""
        if self._standard:
            # CR, LF and CRLF are equivalent: either byte ends a line, empty lines vanish
            return [(m.start(), m.end()) for m in _EOL.finditer(self._buffer, self._scanned)]
        ends: list[tuple[int, int]] = []
        position = self._buffer.find(self._terminator, self._scanned)
        while position >= 0:
            ends.append((position, position + len(self._terminator)))
            position = self._buffer.find(self._terminator, position + len(self._terminator))
        return ends

    def _finish(self, raw: bytes, lines: list[str], rejections: list[Rejection]) -> None:
        if self._discarding:
            # the tail of a line already rejected as overlong: its end is all we waited for
            self._discarding = False
            return
        if not raw:
            return
        if len(raw) > self._max_length:
            rejections.append(Rejection("overlong", len(raw), raw[:SAMPLE_BYTES]))
            return
        outcome = self._validate(raw)
        if isinstance(outcome, Rejection):
            rejections.append(outcome)
        else:
            lines.append(outcome)

    def _validate(self, raw: bytes) -> str | Rejection:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Rejection("undecodable", len(raw), raw[:SAMPLE_BYTES], "(not UTF-8)")
        if self._bad_ascii.search(raw) or not (text.isascii() or self._printable(text)):
            return Rejection("junk", len(raw), raw[:SAMPLE_BYTES], "(control characters)")
        return text

    def _printable(self, text: str) -> bool:
        return all(c.isprintable() or c in self._allowed for c in text)

    def _check_overlong(self, rejections: list[Rejection]) -> None:
        """Bound the memory an endless line can take: reject it now, drop it as it arrives."""
        if not self._discarding and len(self._buffer) > self._max_length + self._tail:
            rejections.append(
                Rejection(
                    "overlong",
                    len(self._buffer),
                    bytes(self._buffer[:SAMPLE_BYTES]),
                    "(discarding to the next end of line)",
                )
            )
            self._discarding = True
        if self._discarding:
            del self._buffer[: max(0, len(self._buffer) - self._tail)]
            self._scanned = 0


# --- logging rejections without flooding ---------------------------------------------------


class RejectionLog:
    """The first rejection of a burst is logged in detail, the rest as one summary per interval."""

    def __init__(
        self,
        logger: logging.Logger,
        device: str,
        interval_s: float = 1.0,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self._logger = logger
        self._device = device
        self._interval = interval_s
        self._monotonic = monotonic
        self._window_start: float | None = None
        self._counts: Counter[str] = Counter()
        self._bytes = 0
        self.total = 0

    def record(self, rejection: Rejection) -> None:
        self.total += 1
        now = self._monotonic()
        self.flush(now)
        if self._window_start is None:
            self._window_start = now
            self._logger.warning("%s: rejected %s", self._device, rejection.describe())
            return
        self._counts[rejection.reason] += 1
        self._bytes += rejection.size

    def flush(self, now: float | None = None, *, force: bool = False) -> None:
        """Log the summary of a finished interval (or, with force, of the current one).

        Call it on every read so summaries come out, and with force on disconnect and
        stop so no count is lost.
        """
        if self._window_start is None:
            return
        now = self._monotonic() if now is None else now
        elapsed = now - self._window_start
        if elapsed < self._interval and not force:
            return
        if self._counts:
            detail = ", ".join(f"{reason} {n}" for reason, n in sorted(self._counts.items()))
            self._logger.warning(
                "%s: rejected %d more lines (%d bytes) in %.1f s: %s",
                self._device,
                sum(self._counts.values()),
                self._bytes,
                elapsed,
                detail,
            )
        self._window_start = None
        self._counts.clear()
        self._bytes = 0


# --- reconnecting ---------------------------------------------------------------------------


LineHandler = Callable[[str, datetime], "Event | Rejection | None"]
PortOpener = Callable[[SerialLineSettings], Any]


def open_serial(settings: SerialLineSettings) -> Any:
    """Open a device path or pyserial URL with a short read timeout (stop stays responsive)."""
    return serial.serial_for_url(
        settings.port,
        baudrate=settings.baudrate,
        parity=settings.parity,
        bytesize=settings.bytesize,
        stopbits=settings.stopbits,
        timeout=READ_TIMEOUT_S,
    )


PORT_ERRORS = (serial.SerialException, OSError, ValueError)


class LineDeviceLoop:
    """One device's read loop: open, read lines, hand them to ``handle``, reopen when unplugged.

    ``handle`` turns a line into an event to emit, a rejection to log, or None to
    ignore it. The loop returns only when stop is set and never raises.
    """

    def __init__(
        self,
        name: str,
        settings: SerialLineSettings,
        handle: LineHandler,
        *,
        logger: logging.Logger,
        clock: Clock = utc_now,
        allowed_controls: str = "",
        open_port: PortOpener = open_serial,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.name = name
        self._settings = settings
        self._handle = handle
        self._log = logger
        self._clock = clock
        self._open_port = open_port
        self._rejections = RejectionLog(logger, name, monotonic=monotonic)
        self._splitter = LineSplitter(settings.terminator, settings.max_length, allowed_controls)
        self._backoff = Backoff(settings.reconnect_min_ms / 1000, settings.reconnect_max_ms / 1000)
        self._delays = self._backoff.delays()
        self._state: Literal["up", "down"] | None = None

    def run(self, stop: StopFlag, emit: Emit) -> None:
        while not stop.is_set():
            try:
                self._connect_and_read(stop, emit)
            except Exception as exc:  # a bug must not end the device's thread: log, back off
                self._log.exception("%s: unexpected error in the read loop", self.name)
                self._set_state("down", f"internal error: {exc}", emit)
            if not stop.is_set():
                stop.wait(next(self._delays))

    def _connect_and_read(self, stop: StopFlag, emit: Emit) -> None:
        try:
            port = self._open_port(self._settings)
        except PORT_ERRORS as exc:
            self._set_state("down", f"cannot open {self._settings.port}: {exc}", emit)
            return
        try:
            self._delays = self._backoff.delays()  # an open port starts the delays over
            self._set_state("up", f"opened {self._settings.port}", emit)
            self._read_lines(port, stop, emit)
        except PORT_ERRORS as exc:
            self._set_state("down", f"lost {self._settings.port}: {exc}", emit)
        finally:
            self._close(port)
            dropped = self._splitter.reset()
            if dropped is not None:
                self._rejections.record(dropped)
            self._rejections.flush(force=True)

    def _read_lines(self, port: Any, stop: StopFlag, emit: Emit) -> None:
        while not stop.is_set():
            # read what is there (at least one byte or the timeout): no line is held back
            data: bytes = port.read(min(READ_CHUNK_MAX, max(1, port.in_waiting)))
            self._rejections.flush()
            if data:
                self._process(data, emit)

    def _process(self, data: bytes, emit: Emit) -> None:
        ts = self._clock()
        split = self._splitter.feed(data)
        for rejection in split.rejections:
            self._rejections.record(rejection)
        for line in split.lines:
            self._dispatch(line, ts, emit)

    def _dispatch(self, line: str, ts: datetime, emit: Emit) -> None:
        try:
            outcome = self._handle(line, ts)
        except Exception:
            self._log.exception("%s: handler failed on line %r", self.name, line[:SAMPLE_BYTES])
            return
        if isinstance(outcome, Rejection):
            self._rejections.record(outcome)
        elif outcome is not None:
            self._emit(outcome, emit)

    def _set_state(self, state: Literal["up", "down"], reason: str, emit: Emit) -> None:
        if state == self._state:
            self._log.debug("%s: still %s: %s", self.name, state, reason)
            return
        self._state = state
        if state == "down":
            self._log.warning("%s: down: %s", self.name, reason)
        else:
            self._log.info("%s: up: %s", self.name, reason)
        self._emit(DeviceStatus(self.name, state, self._clock(), reason), emit)

    def _emit(self, event: Event, emit: Emit) -> None:
        try:
            emit(event)
        except Exception:  # the agent's bug; the device keeps reading
            self._log.exception("%s: emit failed for %r", self.name, event)

    def _close(self, port: Any) -> None:
        try:
            port.close()
        except Exception as exc:  # closing a vanished device may fail; nothing to do about it
            self._log.debug("%s: close failed: %s", self.name, exc)
