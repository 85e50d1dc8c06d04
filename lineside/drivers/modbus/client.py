"""Modbus TCP and RTU drivers: poll loops that reconnect by themselves and never raise.

One driver per device, each in its own thread, each with a pymodbus *sync* client
(TCP) or a share of an ``RtuBus`` (RTU: one per serial port, one request at a time).

What a driver emits (see ``lineside.drivers.base``):

- one ``Reading`` per point per successful poll, read fresh from the device; a point
  whose request got a Modbus exception (or whose words cannot be decoded) gets a
  ``Reading(ok=False, value=None, error=...)`` instead, and polling goes on;
- ``DeviceStatus("down")`` once when the device stops answering (connection refused
  or lost, timeout, port gone) and ``DeviceStatus("up")`` once when it answers
  again. The device is presumed up when the loop starts, so a device that never
  fails never sends a status. While down there are no readings at all, and the
  driver retries with exponential backoff (0.5 s doubling to 10 s by default).

Logging (logger ``lineside.drivers.modbus``): the first failure of a kind is a
warning, repeats are debug, recovery is info. pymodbus logs its own connect
errors on the ``pymodbus`` logger; the agent's logging setup decides their level.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence

from lineside.clock import Clock, utc_now
from lineside.drivers.base import Backoff, DeviceStatus, Emit, Event, PollTime, Reading, StopFlag
from lineside.drivers.modbus.codec import DecodeError, ReadBlock, decode_point, plan_reads
from lineside.drivers.modbus.config import (
    ModbusPoint,
    ModbusRtuConfig,
    ModbusTcpConfig,
    rtu_port_conflicts,
)
from lineside.drivers.modbus.frames import (
    DeviceUnreachable,
    ExceptionReply,
)
from lineside.drivers.modbus.links import BusLink, Link, TcpLink, request_block
from lineside.drivers.modbus.rtu import RtuBus

__all__ = [
    "DeviceUnreachable",
    "ExceptionReply",
    "ModbusRtuDriver",
    "ModbusTcpDriver",
    "RtuBus",
    "build_modbus_drivers",
    "build_rtu_buses",
    "request_block",
]

log = logging.getLogger("lineside.drivers.modbus")

DEFAULT_BACKOFF = Backoff()  # 0.5 s doubling to 10 s; frozen, so every driver can share it


class _Faults:
    """First failure of a kind is a warning, its repeats are debug, its end is info."""

    def __init__(self, device: str) -> None:
        self._device = device
        self._active: dict[str, str] = {}

    def fail(self, key: str, message: str) -> None:
        if self._active.get(key) == message:
            log.debug("%s: %s still failing: %s", self._device, key, message)
            return
        self._active[key] = message
        log.warning("%s: %s: %s", self._device, key, message)

    def clear(self, key: str) -> None:
        if self._active.pop(key, None) is not None:
            log.info("%s: %s read again", self._device, key)


class _Poller:
    """The loop both drivers share: poll, emit, back off while down, never raise."""

    def __init__(
        self,
        name: str,
        unit: int,
        poll_ms: int,
        points: Mapping[str, ModbusPoint],
        link: Link,
        clock: Clock,
        backoff: Backoff,
    ) -> None:
        self.name = name
        self._unit = unit
        self._poll_s = poll_ms / 1000
        self._blocks = plan_reads(points)
        self._link = link
        self._clock = clock
        self._backoff = backoff
        self._faults = _Faults(name)
        self._down = False
        self._warned_slow = False

    def run(self, stop: StopFlag, emit: Emit) -> None:
        log.info(
            "%s: polling %d points in %d requests every %.3g s",
            self.name,
            sum(len(b.points) for b in self._blocks),
            len(self._blocks),
            self._poll_s,
        )
        delays: Iterator[float] | None = None
        try:
            while not stop.is_set():
                started = time.monotonic()
                if self._poll_guarded(emit, started):
                    delays = None
                    wait = self._poll_s - (time.monotonic() - started)
                else:
                    delays = delays or self._backoff.delays()
                    wait = next(delays)
                stop.wait(max(0.0, wait))
        finally:
            self._close_quietly()
        log.info("%s: stopped", self.name)

    def _poll_guarded(self, emit: Emit, started: float) -> bool:
        """One poll; False when the device did not answer (so the caller backs off)."""
        try:
            readings = self._poll_once()
        except DeviceUnreachable as exc:
            self._went_down(str(exc), emit)
            return False
        except Exception as exc:  # a bug or an unforeseen library error must not end the loop
            self._faults.fail("poll", f"unexpected {type(exc).__name__}: {exc}")
            log.debug("%s: poll failed", self.name, exc_info=True)
            self._close_quietly()
            return True
        self._faults.clear("poll")
        self._came_up(emit)
        for reading in readings:
            self._emit(emit, reading)
        self._timed(time.monotonic() - started, emit)
        return True

    def _timed(self, seconds: float, emit: Emit) -> None:
        """A poll slower than poll_ms gets one warning (the metrics count them all)."""
        slow = seconds > self._poll_s
        if slow and not self._warned_slow:
            self._warned_slow = True
            log.warning(
                "%s: a poll of %d requests took %.3g s, longer than poll_ms %d: readings come"
                " that much less often (a slow device or bus: raise poll_ms, or read fewer"
                " blocks); lineside_slow_polls_total counts them, this is said once",
                self.name,
                len(self._blocks),
                seconds,
                round(self._poll_s * 1000),
            )
        self._emit(emit, PollTime(self.name, seconds, slow))

    def _poll_once(self) -> list[Reading]:
        """Read every block; readings are emitted only once the whole poll got answers."""
        readings: list[Reading] = []
        for block in self._blocks:
            key = f"{block.table} {block.address}+{block.count} ({', '.join(block.point_names())})"
            try:
                values = self._link.read(self._unit, block)
            except (ExceptionReply, DecodeError) as exc:
                self._faults.fail(key, str(exc))
                readings.extend(self._failed(block.point_names(), str(exc)))
                continue
            self._faults.clear(key)
            readings.extend(self._decode(block, values))
        return readings

    def _decode(self, block: ReadBlock, values: Sequence[int] | Sequence[bool]) -> list[Reading]:
        ts = self._clock()
        readings: list[Reading] = []
        for name, point in block.points:
            try:
                value = decode_point(point, block.slice_for(point, values))
            except DecodeError as exc:
                self._faults.fail(f"point {name}", str(exc))
                readings.append(Reading(self.name, name, None, ts, ok=False, error=str(exc)))
                continue
            self._faults.clear(f"point {name}")
            readings.append(Reading(self.name, name, value, ts))
        return readings

    def _failed(self, names: Sequence[str], error: str) -> list[Reading]:
        ts = self._clock()
        return [Reading(self.name, n, None, ts, ok=False, error=error) for n in names]

    def _went_down(self, reason: str, emit: Emit) -> None:
        if self._down:
            log.debug("%s: still down: %s", self.name, reason)
            return
        self._down = True
        log.warning("%s: device down: %s (retrying with backoff)", self.name, reason)
        self._emit(emit, DeviceStatus(self.name, "down", self._clock(), reason))

    def _came_up(self, emit: Emit) -> None:
        if not self._down:
            return
        self._down = False
        log.info("%s: device up again", self.name)
        self._emit(emit, DeviceStatus(self.name, "up", self._clock()))

    def _emit(self, emit: Emit, event: Event) -> None:
        try:
            emit(event)
        except Exception as exc:  # the agent's problem, but it must not stop the polling
            self._faults.fail("emit", f"{type(exc).__name__}: {exc}")
            log.debug("%s: emit failed", self.name, exc_info=True)
        else:
            self._faults.clear("emit")

    def _close_quietly(self) -> None:
        try:
            self._link.close()
        except Exception:
            log.debug("%s: close failed", self.name, exc_info=True)


class ModbusTcpDriver(_Poller):
    """Polls one Modbus TCP device (one unit id) over its own connection."""

    def __init__(
        self,
        name: str,
        config: ModbusTcpConfig,
        clock: Clock = utc_now,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        neighbours: Sequence[str] = (),
    ) -> None:
        link = TcpLink(config, neighbours)
        super().__init__(name, config.unit, config.poll_ms, config.points, link, clock, backoff)


class ModbusRtuDriver(_Poller):
    """Polls one Modbus RTU device (one unit id) through the bus of its serial port."""

    def __init__(
        self,
        name: str,
        config: ModbusRtuConfig,
        bus: RtuBus,
        clock: Clock = utc_now,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        if bus.port != config.port:
            raise ValueError(f"device {name} is on port {config.port}, the bus on {bus.port}")
        link = BusLink(bus)
        super().__init__(name, config.unit, config.poll_ms, config.points, link, clock, backoff)


def build_rtu_buses(devices: Mapping[str, ModbusRtuConfig]) -> dict[str, RtuBus]:
    """One RtuBus per port. Raises ValueError listing every conflict (see rtu_port_conflicts).

    The line settings are the devices' common ones; the bus waits the longest
    timeout_ms and keeps the longest pause_ms of its devices, so the slowest device
    on the line sets the pace.
    """
    problems = rtu_port_conflicts(devices)
    if problems:
        raise ValueError("; ".join(str(p) for p in problems))
    by_port: dict[str, list[ModbusRtuConfig]] = {}
    for config in devices.values():
        by_port.setdefault(config.port, []).append(config)
    return {port: _bus_for(port, configs) for port, configs in by_port.items()}


def _bus_for(port: str, configs: Sequence[ModbusRtuConfig]) -> RtuBus:
    first = configs[0]
    return RtuBus(
        port,
        baudrate=first.baudrate,
        parity=first.parity,
        stopbits=first.stopbits,
        bytesize=first.bytesize,
        timeout_ms=max(c.timeout_ms for c in configs),
        pause_ms=max(c.pause_ms for c in configs),
    )


ModbusDriver = ModbusTcpDriver | ModbusRtuDriver


def _same_address(
    name: str, config: ModbusTcpConfig, tcp: Mapping[str, ModbusTcpConfig]
) -> list[str]:
    return [
        other
        for other, c in tcp.items()
        if other != name and (c.host, c.port) == (config.host, config.port)
    ]


def build_modbus_drivers(
    devices: Mapping[str, object], clock: Clock = utc_now
) -> tuple[list[ModbusDriver], dict[str, RtuBus]]:
    """Drivers for every modbus device among all configured devices, and the RTU buses.

    Nothing is opened here; the caller runs each driver in its own thread and closes
    the buses after the drivers have stopped.
    """
    rtu = {n: c for n, c in devices.items() if isinstance(c, ModbusRtuConfig)}
    buses = build_rtu_buses(rtu)
    tcp = {n: c for n, c in devices.items() if isinstance(c, ModbusTcpConfig)}
    drivers: list[ModbusDriver] = [
        ModbusTcpDriver(n, c, clock, neighbours=_same_address(n, c, tcp)) for n, c in tcp.items()
    ]
    drivers.extend(ModbusRtuDriver(n, c, buses[c.port], clock) for n, c in rtu.items())
    return drivers, buses
