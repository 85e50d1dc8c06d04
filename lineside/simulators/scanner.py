"""A serial barcode scanner for tests and demos, over a pty or a TCP socket.

Python API (background threads; nothing is opened until you ask)::

    with ScannerSimulator(PtyEndpoint(link=tmp / "scanner3"), terminator="CR") as sim:
        # point a serial_scanner device at sim.url (the symlink, like /dev/serial/by-id)
        sim.send("]C1010952123454321310LOT42\\x1d3103000500")
        sim.send_junk(200, seed=1)         # random bytes, then a terminator
        sim.unplug(); sim.replug()         # the driver sees the device vanish and come back
        sim.wait_sent(timeout=5)

    ScannerSimulator(TcpEndpoint(port=0))  # the driver uses socket://127.0.0.1:PORT (sim.url)

Endpoints (``PtyEndpoint``, ``TcpEndpoint``) are in ``lineside.simulators.endpoint``,
shared with the dosing pump simulator.

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

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from lineside.drivers.base import StopFlag
from lineside.drivers.scanner.config import SerialScannerConfig
from lineside.drivers.serial_settings import terminator_bytes
from lineside.simulators.endpoint import (
    EndpointDevice,
    PtyEndpoint,
    SerialEndpoint,
    TcpEndpoint,
    endpoint_for_port,
)

_log = logging.getLogger("lineside.simulators.scanner")

POLL_S = 0.05  # how often blocked writers look at unplug/close: bounds their reaction time


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


class ScannerSimulator(EndpointDevice):
    """Sends barcodes, junk and unplugs through an endpoint; see the module docstring."""

    def __init__(self, endpoint: PtyEndpoint | TcpEndpoint, *, terminator: str = "CR") -> None:
        super().__init__(endpoint)
        self.terminator = terminator_bytes(terminator)
        self._writer = ByteWriter(endpoint, "scanner-simulator")
        self._started = False

    def _running(self) -> bool:
        return self._started

    def _start_work(self) -> None:
        self._writer.start()
        self._started = True

    def _stop_work(self) -> None:
        self._writer.close()

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


SCENARIO = ScannerScenario  # what lineside simulate checks a section against (drivers/spec.py)


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
