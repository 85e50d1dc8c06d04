"""Serial barcode scanners: the driver, one Scan per line (config.py has the sample)."""

from __future__ import annotations

import logging
from datetime import datetime

from lineside.clock import Clock, utc_now
from lineside.drivers.base import Emit, Scan, StopFlag
from lineside.drivers.scanner.config import SerialScannerConfig
from lineside.drivers.serial_lines import LineDeviceLoop
from lineside.drivers.serial_settings import GS

_log = logging.getLogger("lineside.drivers.scanner")


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
