"""Serial barcode scanners: configuration and driver.

A scanner in serial (or USB-CDC, or serial-over-TCP) mode sends each barcode as
one line. The driver emits one ``Scan`` per line, exactly as sent apart from the
terminator: the symbology prefix (``]C1``, ``]d2``, ``]Q3``, ``]e0``) and the GS
(0x1D) separators stay in ``Scan.data``, and meaning is left to
``lineside.agent.scans``. Lines with other control characters, bytes that are not
UTF-8 and lines longer than ``max_length`` are rejected and logged (rate-limited);
blank lines are ignored. An unplugged scanner gives one DeviceStatus down, then the
port is reopened with exponential backoff and DeviceStatus up follows once it is back.

Sample::

    scanner3:
      driver: serial_scanner
      port: /dev/serial/by-id/usb-Honeywell-if00   # or socket://10.0.0.7:4001, loop://
      baudrate: 9600
      parity: N              # N, E or O; bytesize 7|8 and stopbits 1|2 as well
      terminator: CR         # CR, LF, CRLF (any of them ends a line) or an escape, e.g. "\\x03"
      max_length: 512        # bytes; longer lines are rejected up to the next terminator
      reconnect_min_ms: 500  # first reopen delay after an unplug, doubling up to
      reconnect_max_ms: 30000
      work_center: PRESS-3
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from lineside.clock import Clock, utc_now
from lineside.drivers.base import Emit, Scan, StopFlag
from lineside.drivers.serial_lines import GS, LineDeviceLoop, SerialLineSettings

_log = logging.getLogger("lineside.drivers.scanner")


class SerialScannerConfig(SerialLineSettings):
    driver: Literal["serial_scanner"]
    work_center: str

    def point_names(self) -> set[str]:
        return set()


class SerialScannerDriver:
    """Reads barcodes from one serial scanner until stopped; never raises."""

    def __init__(self, name: str, config: SerialScannerConfig, clock: Clock = utc_now) -> None:
        self.name = name
        self.config = config
        self._clock = clock

    def run(self, stop: StopFlag, emit: Emit) -> None:
        loop = LineDeviceLoop(
            self.name,
            self.config,
            self._scan,
            logger=_log,
            clock=self._clock,
            allowed_controls=GS,  # FNC1 arrives as GS and ends variable-length GS1 fields
        )
        loop.run(stop, emit)

    def _scan(self, line: str, ts: datetime) -> Scan | None:
        if not line.strip():
            return None
        return Scan(self.name, line, ts)
