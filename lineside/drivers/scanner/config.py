"""Serial barcode scanners: the device config (no I/O, no pyserial).

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

from typing import Literal

from lineside.drivers.serial_settings import SerialLineSettings


class SerialScannerConfig(SerialLineSettings):
    driver: Literal["serial_scanner"]
    work_center: str
