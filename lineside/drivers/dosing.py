"""Dosing meters speaking a line-based ASCII protocol: configuration and driver.

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

import logging
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation, localcontext
from typing import Literal

from pydantic import field_validator

from lineside.clock import Clock, utc_now
from lineside.drivers.base import Emit, Reading, StopFlag
from lineside.drivers.serial_lines import (
    SAMPLE_BYTES,
    LineDeviceLoop,
    Rejection,
    SerialLineSettings,
)

_log = logging.getLogger("lineside.drivers.dosing")

DEFAULT_PATTERN = r"^TOT=\s*(?P<value>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>mL|ml|L|l)?\s*$"
MAX_DIGITS = 30  # longer values are noise, and would lose digits in decimal arithmetic
Unit = Literal["l", "ml"]
_PER_LITRE: dict[str, Decimal] = {"l": Decimal(1), "ml": Decimal(1000)}


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


class TotalParser:
    """Reads a total from one line: a Decimal in the target unit, or why not (pure)."""

    def __init__(self, pattern: str, unit: Unit) -> None:
        self._pattern = compile_pattern(pattern)
        self._unit = unit
        self._has_unit = "unit" in self._pattern.groupindex

    def parse(self, line: str) -> Decimal | str:
        match = self._pattern.search(line)
        if match is None:
            return "does not match the pattern"
        value = _decimal(match.group("value"))
        if isinstance(value, str):
            return value
        unit = match.group("unit") if self._has_unit else None
        return convert(value, (unit or self._unit).lower(), self._unit)


def _decimal(text: str | None) -> Decimal | str:
    if not text:
        return "has no value"
    text = text.strip()
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    if sum(c.isdigit() for c in text) > MAX_DIGITS:
        return f"value has more than {MAX_DIGITS} digits"
    try:
        value = Decimal(text)
    except InvalidOperation:
        return f"value {text!r} is not a number"
    if not value.is_finite():
        return f"value {text!r} is not a finite number"
    return value


def convert(value: Decimal, from_unit: str, to_unit: Unit) -> Decimal | str:
    """Exact litre/millilitre conversion (a power of ten, so no rounding happens)."""
    if from_unit not in _PER_LITRE:
        return f"unknown unit {from_unit!r} (expected L or mL)"
    if from_unit == to_unit:
        return value
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_DIGITS  # room for every digit of a MAX_DIGITS value times 1000
        return value * _PER_LITRE[to_unit] / _PER_LITRE[from_unit]


class AsciiMeterDriver:
    """Reads totalizer lines from one ASCII dosing meter until stopped; never raises."""

    def __init__(self, name: str, config: AsciiMeterConfig, clock: Clock = utc_now) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._parser = TotalParser(config.pattern, config.unit)

    def run(self, stop: StopFlag, emit: Emit) -> None:
        loop = LineDeviceLoop(self.name, self.config, self._reading, logger=_log, clock=self._clock)
        loop.run(stop, emit)

    def _reading(self, line: str, ts: datetime) -> Reading | Rejection | None:
        if not line.strip():
            return None
        value = self._parser.parse(line)
        if isinstance(value, str):
            raw = line.encode()
            return Rejection("malformed", len(raw), raw[:SAMPLE_BYTES], f"({value})")
        return Reading(self.name, self.config.point, value, ts)
