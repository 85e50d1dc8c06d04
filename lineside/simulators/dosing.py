"""A dosing pump with an ASCII totalizer, for tests and demos, over a pty or a TCP socket.

The pump doses at ``rate_l_per_s`` and prints its running total every
``interval_ms``: line k (k = 0, 1, 2, …) is ``start_l + k × rate × interval``,
truncated to ``decimals`` like a real totalizer display, e.g. ``TOT=0.025 L``.
The totals depend only on k, not on timing, so tests can predict them. Lines that
fall due while the pump is unplugged (or, over TCP, before a client connects) are
not printed, as on a real device; the total keeps advancing.

Python API::

    with PumpSimulator(PtyEndpoint(link=tmp / "doser3"), rate_l_per_s=Decimal("0.05"),
                       interval_ms=100) as pump:
        ...  # an ascii_meter device with port: pump.url
        pump.total_at(10)  # the total printed on line 10
        pump.unplug(); pump.replug()

Scenario section (YAML), all keys optional but the rate::

    doser3:
      rate_l_per_s: 0.05     # litres per second
      interval_ms: 500       # one line every this many ms
      start_l: 0             # totalizer at the start
      unit: L                # L or mL: what the pump prints
      decimals: 3            # digits after the decimal point
      template: "TOT={value} {unit}"   # must contain {value}; {unit} is optional

``simulate_device(name, device_config, section, stop)`` serves an
``ascii_meter`` device as configured: ``socket://HOST:PORT`` is listened on, a
path gets a pty with a symlink at that path. The line terminator is the
device's ``terminator``.
"""

from __future__ import annotations

import logging
import threading
import time
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lineside.drivers.base import StopFlag
from lineside.drivers.dosing.config import AsciiMeterConfig
from lineside.drivers.serial_settings import terminator_bytes
from lineside.simulators.endpoint import EndpointDevice, PtyEndpoint, TcpEndpoint, endpoint_for_port

_log = logging.getLogger("lineside.simulators.dosing")

_WRITE_TIMEOUT_S = 0.2  # a line that cannot go out this fast is dropped, as a real pump would


class PumpScenario(BaseModel):
    """A dosing pump's scenario section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_l_per_s: Decimal = Field(default=Decimal(0), ge=0)
    interval_ms: int = Field(default=1000, ge=10, le=3_600_000)
    start_l: Decimal = Field(default=Decimal(0), ge=0)
    unit: Literal["L", "mL"] = "L"
    decimals: int = Field(default=3, ge=0, le=9)
    template: str = "TOT={value} {unit}"

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{value}" not in value:
            raise ValueError("template must contain {value}")
        try:
            value.format(value="1", unit="L")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"template may only use {{value}} and {{unit}}: {exc}") from None
        return value


class PumpSimulator(EndpointDevice):
    """Prints totalizer lines through an endpoint on a background thread."""

    def __init__(
        self,
        endpoint: PtyEndpoint | TcpEndpoint,
        *,
        rate_l_per_s: Decimal,
        interval_ms: int = 1000,
        start_l: Decimal = Decimal(0),
        unit: Literal["L", "mL"] = "L",
        decimals: int = 3,
        template: str = "TOT={value} {unit}",
        terminator: str = "CRLF",
    ) -> None:
        super().__init__(endpoint)
        self.settings = PumpScenario(
            rate_l_per_s=rate_l_per_s,
            interval_ms=interval_ms,
            start_l=start_l,
            unit=unit,
            decimals=decimals,
            template=template,
        )
        self._terminator = terminator_bytes(terminator)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pump-simulator", daemon=True)
        self._lines = 0
        self._printed = 0

    @classmethod
    def from_scenario(
        cls, endpoint: PtyEndpoint | TcpEndpoint, scenario: PumpScenario, terminator: str = "CRLF"
    ) -> PumpSimulator:
        return cls(endpoint, terminator=terminator, **scenario.model_dump())

    @property
    def lines_due(self) -> int:
        """How many lines have fallen due so far (printed or not)."""
        return self._lines

    @property
    def lines_printed(self) -> int:
        return self._printed

    def total_at(self, k: int) -> Decimal:
        """The total line k shows, in litres, before truncation to the display."""
        s = self.settings
        return s.start_l + s.rate_l_per_s * s.interval_ms * k / 1000

    def line(self, k: int) -> bytes:
        """Line k exactly as printed, terminator included."""
        s = self.settings
        total = self.total_at(k) * (1000 if s.unit == "mL" else 1)
        shown = total.quantize(Decimal(1).scaleb(-s.decimals), rounding=ROUND_DOWN)
        return s.template.format(value=shown, unit=s.unit).encode() + self._terminator

    def _running(self) -> bool:
        return self._thread.is_alive()

    def _start_work(self) -> None:
        self._thread.start()

    def _stop_work(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = self.settings.interval_ms / 1000
        started = time.monotonic()
        k = 0
        while not self._stop.is_set():
            self._print(self.line(k))
            k += 1
            self._lines = k
            # scheduled from the start, so the rate does not drift with write times
            delay = started + k * interval - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return

    def _print(self, data: bytes) -> None:
        deadline = time.monotonic() + _WRITE_TIMEOUT_S
        sent = 0
        try:
            while sent < len(data) and time.monotonic() < deadline:
                sent += self.endpoint.write_some(data[sent:], min(0.05, _WRITE_TIMEOUT_S))
        except OSError as exc:
            _log.debug("pump simulator: write failed: %s", exc)
        if sent == len(data):
            self._printed += 1


SCENARIO = PumpScenario  # what lineside simulate checks a section against (drivers/spec.py)


def simulate_device(
    name: str, device_config: AsciiMeterConfig, section: Any, stop: StopFlag
) -> None:
    """Serve the meter ``device_config`` describes, pumping as ``section`` says, until stopped."""
    scenario = (
        section if isinstance(section, PumpScenario) else PumpScenario.model_validate(section)
    )
    endpoint = endpoint_for_port(device_config.port)
    pump = PumpSimulator.from_scenario(endpoint, scenario, terminator=device_config.terminator)
    with pump:
        _log.info("%s: simulated dosing pump on %s", name, pump.url)
        stop.wait()
