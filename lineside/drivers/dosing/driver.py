"""Dosing meters: the driver, one Reading per totalizer line (config.py has the sample)."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal, InvalidOperation, localcontext

from lineside.clock import Clock, utc_now
from lineside.drivers.base import Emit, Reading, StopFlag
from lineside.drivers.dosing.config import AsciiMeterConfig, Unit, compile_pattern
from lineside.drivers.serial_lines import SAMPLE_BYTES, LineDeviceLoop, Rejection

_log = logging.getLogger("lineside.drivers.dosing")

MAX_DIGITS = 30  # longer values are noise, and would lose digits in decimal arithmetic
_PER_LITRE: dict[str, Decimal] = {"l": Decimal(1), "ml": Decimal(1000)}


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
