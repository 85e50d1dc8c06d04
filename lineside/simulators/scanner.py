"""A serial barcode scanner for tests and demos, over a pty or a TCP socket.

Python API (background threads; nothing is opened until you ask)::

    with ScannerSimulator(PtyEndpoint(link=tmp / "scanner3"), terminator="CR") as sim:
        # point a serial_scanner device at sim.url (the symlink, like /dev/serial/by-id)
        sim.send("]C1010952123454321310LOT42\\x1d3103000500")
        sim.send_junk(200, seed=1)         # random bytes, then a terminator
        sim.unplug(); sim.replug()         # the driver sees the device vanish and come back
        sim.wait_sent(timeout=5)

    ScannerSimulator(TcpEndpoint(port=0))  # the driver uses socket://127.0.0.1:PORT (sim.url)

Endpoints (also used by the dosing pump simulator):

- ``PtyEndpoint``: a pseudo-terminal. The driver opens the slave side; with
  ``link`` the simulator keeps a symlink there pointing at the current slave,
  so the configured path stays the same across unplug/replug (the new pty has a
  new /dev/pts number). Unplug closes the pty: the driver's next read fails.
- ``TcpEndpoint``: a TCP server on ``host:port`` with one client at a time (like
  a serial-to-Ethernet converter; a new client replaces the old one). Unplug
  closes the server and the client; replug listens again on the same port.

Bytes are written in order by a writer thread. Data sent while unplugged, or
(TCP) before a client has connected, waits until it can be delivered; a new TCP
client gets ``settle_s`` first, because pyserial flushes its input right after
connecting.

Scenario section (YAML), a list of steps played once, each at ``at_s`` seconds
after the simulator starts, each doing exactly one thing::

    scanner3:
      - {at_s: 5, barcode: "]C1010952123454321310LOT42\\u001d3103000500"}   # GS as \\u001d
      - {at_s: 6, junk_bytes: 200, seed: 7}   # random bytes (seed optional), then a terminator
      - {at_s: 8, unplug_s: 3}                # unplugged for 3 s, then plugged back
      - {at_s: 12, barcode: "ORD-4711"}

``simulate_device(name, device_config, section, stop)`` serves a
``serial_scanner`` device as configured: for ``port: socket://HOST:PORT`` it
listens there; for a filesystem path it creates a pty and a symlink at that
path (so use a writable path such as /tmp/lineside/scanner3, not /dev/…).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import select
import socket
import threading
import time
import tty
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from lineside.drivers.base import StopFlag
from lineside.drivers.scanner import SerialScannerConfig
from lineside.drivers.serial_lines import terminator_bytes

_log = logging.getLogger("lineside.simulators.scanner")

POLL_S = 0.05  # how often blocked writers look at unplug/close: bounds their reaction time
WRITE_CHUNK = 4096


# --- endpoints: where the simulated device's bytes go ---------------------------------------


class SerialEndpoint(Protocol):
    """The device side of a serial link that can be unplugged and plugged back."""

    @property
    def url(self) -> str: ...

    def plug(self) -> None: ...

    def unplug(self) -> None: ...

    def write_some(self, data: bytes, timeout: float) -> int:
        """Write what can be written within timeout; 0 when nobody can receive yet."""
        ...

    def close(self) -> None: ...


class PtyEndpoint:
    """A pseudo-terminal; ``url`` is the symlink ``link`` or else the slave's path."""

    def __init__(self, link: Path | str | None = None) -> None:
        self._link = Path(link) if link is not None else None
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_name = ""

    @property
    def url(self) -> str:
        return str(self._link) if self._link is not None else self._slave_name

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        with self._lock:
            if self._master is not None:
                return
            if self._link is not None:
                _check_link_is_ours(self._link)
            master, slave = os.openpty()
            # raw before anyone opens it: no echo back to the master, no CR→LF mapping
            tty.setraw(slave)
            os.set_blocking(master, False)
            # the simulator holds the slave open too, so a driver closing it never hangs it up
            self._master, self._slave = master, slave
            self._slave_name = os.ttyname(slave)
            if self._link is not None:
                _replace_symlink(self._link, self._slave_name)

    def unplug(self) -> None:
        with self._lock:
            if self._link is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._link.unlink()
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None

    def write_some(self, data: bytes, timeout: float) -> int:
        with self._lock:
            master = self._master
            written = -1 if master is None else _write_fd(master, data, timeout)
        if written < 0:  # unplugged: wait a little so callers do not spin
            time.sleep(timeout)
            return 0
        return written

    def close(self) -> None:
        self.unplug()


def _check_link_is_ours(link: Path) -> None:
    """Never replace a real device, or a symlink to one (/dev/serial/by-id/…), with a pty."""
    if link.is_symlink():
        target = os.readlink(link)
        if not target.startswith("/dev/pts/"):
            raise ValueError(f"{link} links to {target}, not a simulator's pty: not replacing it")
    elif link.exists():
        raise ValueError(f"{link} exists and is not a simulator's link: not replacing it")


def _replace_symlink(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    os.replace(temporary, link)  # atomic: a driver never sees the link missing mid-replug


def _write_fd(fd: int, data: bytes, timeout: float) -> int:
    try:
        _, writable, _ = select.select([], [fd], [], timeout)
        if not writable:
            return 0
        return os.write(fd, data[:WRITE_CHUNK])
    except BlockingIOError:
        return 0
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EINTR):
            return 0
        raise


class TcpEndpoint:
    """A TCP server with one client at a time; ``url`` is ``socket://host:port``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, settle_s: float = 0.2) -> None:
        self._host = host
        self._port = port
        self._settle_s = settle_s
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None
        self._client_ready_at = 0.0

    @property
    def url(self) -> str:
        return f"socket://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def plugged(self) -> bool:
        return self._server is not None

    def plug(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((self._host, self._port))
            server.listen(4)
            server.setblocking(False)
            self._port = server.getsockname()[1]  # port 0 picks one; replug keeps it
            self._server = server

    def unplug(self) -> None:
        with self._lock:
            for sock in (self._client, self._server):
                if sock is not None:
                    _close_socket(sock)
            self._client = self._server = None

    def has_client(self) -> bool:
        with self._lock:
            self._accept()
            return self._client is not None

    def write_some(self, data: bytes, timeout: float) -> int:
        with self._lock:
            self._accept()
            written = -1 if self._server is None else self._send(data, timeout)
        if written < 0:
            time.sleep(timeout)
            return 0
        return written

    def close(self) -> None:
        self.unplug()

    def _accept(self) -> None:
        if self._server is None:
            return
        while True:
            try:
                client, _ = self._server.accept()
            except (BlockingIOError, OSError):
                return
            if self._client is not None:
                _close_socket(self._client)
            client.setblocking(False)
            self._client = client
            self._client_ready_at = time.monotonic() + self._settle_s

    def _send(self, data: bytes, timeout: float) -> int:
        client = self._client
        if client is None or time.monotonic() < self._client_ready_at:
            return -1
        try:
            _, writable, _ = select.select([], [client], [], timeout)
            return client.send(data[:WRITE_CHUNK]) if writable else 0
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:  # the client went away: wait for the next one
            _log.debug("scanner simulator: client lost: %s", exc)
            _close_socket(client)
            self._client = None
            return -1


def _close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def endpoint_for_port(port: str) -> PtyEndpoint | TcpEndpoint:
    """The endpoint that serves a device configured with ``port``."""
    if port.startswith("socket://"):
        parts = urlsplit(port)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"cannot listen on {port!r}: expected socket://HOST:PORT")
        return TcpEndpoint(parts.hostname, parts.port)
    if "://" in port:
        raise ValueError(f"cannot simulate a device on {port!r}: use socket://HOST:PORT or a path")
    return PtyEndpoint(link=Path(port))


# --- writing bytes in order, in the background ---------------------------------------------


class ByteWriter:
    """Writes queued bytes to an endpoint in order on its own thread."""

    def __init__(self, endpoint: SerialEndpoint, name: str = "simulator") -> None:
        self._endpoint = endpoint
        self._queue: deque[bytes] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            self._queue.append(data)
            self._pending += len(data)
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending

    def wait_sent(self, timeout: float) -> bool:
        """True once every queued byte has been written (not necessarily read)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def discard(self) -> None:
        with self._cond:
            self._queue.clear()
            self._pending = 0
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or bool(self._queue))
                if self._closed:
                    return
                chunk = self._queue[0]
            try:
                written = self._endpoint.write_some(chunk, POLL_S)
            except OSError as exc:  # unplugged under our feet: the bytes wait for replug
                _log.debug("simulator write failed: %s", exc)
                written = 0
            self._consumed(chunk, written)

    def _consumed(self, chunk: bytes, written: int) -> None:
        if written <= 0:
            return
        with self._cond:
            if self._queue and self._queue[0] is chunk:
                if written >= len(chunk):
                    self._queue.popleft()
                else:
                    self._queue[0] = chunk[written:]
                self._pending -= written
            self._cond.notify_all()


# --- the scanner ----------------------------------------------------------------------------


class ScannerSimulator:
    """Sends barcodes, junk and unplugs through an endpoint; see the module docstring."""

    def __init__(self, endpoint: PtyEndpoint | TcpEndpoint, *, terminator: str = "CR") -> None:
        self.endpoint = endpoint
        self.terminator = terminator_bytes(terminator)
        self._writer = ByteWriter(endpoint, "scanner-simulator")
        self._started = False

    @property
    def url(self) -> str:
        """What the driver's ``port`` should be."""
        return self.endpoint.url

    def start(self) -> ScannerSimulator:
        if not self._started:
            self.endpoint.plug()
            self._writer.start()
            self._started = True
        return self

    def close(self) -> None:
        self._writer.close()
        self.endpoint.close()

    def __enter__(self) -> ScannerSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, barcode: str, *, fresh_line: bool = False) -> None:
        """One barcode and the terminator; fresh_line puts a terminator first."""
        prefix = self.terminator if fresh_line else b""
        self._writer.put(prefix + barcode.encode("utf-8") + self.terminator)

    def send_bytes(self, data: bytes) -> None:
        self._writer.put(data)

    def send_junk(self, size: int, *, seed: int | None = None, terminate: bool = True) -> bytes:
        """Random bytes (and a terminator, so what follows starts a fresh line); returns them."""
        junk = random.Random(seed).randbytes(size)
        self._writer.put(junk + (self.terminator if terminate else b""))
        return junk

    def unplug(self) -> None:
        self.endpoint.unplug()

    def replug(self) -> None:
        self.endpoint.plug()

    def wait_sent(self, timeout: float = 10.0) -> bool:
        return self._writer.wait_sent(timeout)

    def play(self, steps: Sequence[ScannerStep], stop: StopFlag) -> None:
        """Run the steps at their times (from now); returns when done or stopped."""
        started = time.monotonic()
        for step in sorted(steps, key=lambda s: s.at_s):
            delay = float(step.at_s) - (time.monotonic() - started)
            if delay > 0 and stop.wait(delay):
                return
            self._do(step, stop)

    def _do(self, step: ScannerStep, stop: StopFlag) -> None:
        if step.barcode is not None:
            self.send(step.barcode)
        elif step.junk_bytes is not None:
            self.send_junk(step.junk_bytes, seed=step.seed)
        elif step.unplug_s is not None:
            self.unplug()
            stop.wait(float(step.unplug_s))
            self.replug()


# --- scenario --------------------------------------------------------------------------------


class ScannerStep(BaseModel):
    """One timed action of a simulated scanner: a barcode, junk bytes or an unplug."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at_s: Decimal = Field(ge=0)
    barcode: str | None = Field(default=None, min_length=1)
    junk_bytes: int | None = Field(default=None, ge=1, le=100_000_000)
    seed: int | None = None
    unplug_s: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_action(self) -> ScannerStep:
        actions = [self.barcode, self.junk_bytes, self.unplug_s]
        if sum(a is not None for a in actions) != 1:
            raise ValueError("a step needs exactly one of barcode, junk_bytes or unplug_s")
        if self.seed is not None and self.junk_bytes is None:
            raise ValueError("seed only goes with junk_bytes")
        return self


class ScannerScenario(RootModel[list[ScannerStep]]):
    """A scanner's scenario section: the list of steps."""


def simulate_device(
    name: str, device_config: SerialScannerConfig, section: Any, stop: StopFlag
) -> None:
    """Serve the scanner ``device_config`` describes, play ``section``, return when stopped."""
    scenario = (
        section
        if isinstance(section, ScannerScenario)
        else ScannerScenario.model_validate(section or [])
    )
    endpoint = endpoint_for_port(device_config.port)
    with ScannerSimulator(endpoint, terminator=device_config.terminator) as simulator:
        _log.info("%s: simulated scanner on %s", name, simulator.url)
        simulator.play(scenario.root, stop)
        stop.wait()
