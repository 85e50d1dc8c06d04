"""Dosing meters speaking a line-based ASCII protocol: the device config (no I/O).

The pump prints its totalizer as a line, by default ``TOT=123.456 L`` (unit ``L``
or ``mL``, case-insensitive; a line without a unit is taken to be in the
configured ``unit`` already). The driver emits one
``Reading(device, point, value, ts)`` per valid line, with the value a ``Decimal``
converted exactly to ``unit`` (``l`` or ``ml``), never a float. Lines that do not
match, or hold a value or unit that cannot be read, are logged (rate-limited) and
skipped. Port handling, reconnects and DeviceStatus are those of the scanner
(``lineside.drivers.serial_lines``).

``pattern`` is a Python regular expression searched in each line (anchor it with
``^…$`` to match whole lines). It must have a ``value`` group; an optional
``unit`` group says the line's unit. A value may use ``,`` as the decimal mark if
it has no ``.``.

Sample::

    doser3:
      driver: ascii_meter
      port: /dev/ttyUSB1               # or socket://10.0.0.8:4001
      baudrate: 9600
      parity: N
      terminator: CRLF                 # CR, LF, CRLF or an escape such as "\\x03"
      pattern: '^TOT=\\s*(?P<value>[-+]?\\d+(?:\\.\\d+)?)\\s*(?P<unit>mL|ml|L|l)?\\s*$'
      unit: l                          # l or ml: what the readings are converted to
      point: total                     # meters refer to it as doser3.total
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator

from lineside.drivers.serial_settings import SerialLineSettings

DEFAULT_PATTERN = r"^TOT=\s*(?P<value>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>mL|ml|L|l)?\s*$"
Unit = Literal["l", "ml"]


class AsciiMeterConfig(SerialLineSettings):
    driver: Literal["ascii_meter"]
    terminator: str = "CRLF"
    pattern: str = DEFAULT_PATTERN
    unit: Unit = "l"
    point: str = "total"

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        compile_pattern(value)
        return value

    def point_names(self) -> set[str]:
        return {self.point}


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled pattern; raises ValueError unless it compiles and has a value group."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern does not compile: {exc}") from None
    if "value" not in compiled.groupindex:
        raise ValueError("pattern needs a (?P<value>...) group for the total")
    return compiled
