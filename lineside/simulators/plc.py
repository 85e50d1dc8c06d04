"""A simulated PLC: a pymodbus server whose counters advance, go offline and fail on cue.

It serves Modbus TCP, or Modbus RTU framing over a TCP socket (what an RS-485 to
Ethernet converter does), so the RTU driver reaches it with the port
``socket://127.0.0.1:PORT``. One simulator serves one or more unit ids: the units
of an RTU simulator share one simulated bus.

Python API (tests)::

    sim = PlcSimulator({1: {"good": SimPoint(100, "uint32", rate_per_s=2)}}, port=0)
    sim.start()                      # listening on a free loopback port: sim.port, sim.url
    sim.set(1, "good", 65530)        # also reset(), advance(), set_rate(), value()
    sim.go_offline(10)               # refuse connections for 10 s, then listen again
    sim.raise_exception(2, 3)        # answer every request with exception 2 for 3 s
    sim.silence(1, 2)                # unit 1 does not answer for 2 s (the others do)
    sim.violations                   # RTU: requests that overlapped on the bus
    sim.stop()

Values and rates are raw register values, before the lineside point's ``scale``.
Integer counters wrap at their width (a uint16 at 65535 + 1 reads 0); float
totalizers (float32/float64) advance continuously. Counters go on counting while
the simulator is offline, as a PLC does during a network outage.

**Overlap check (RTU).** The simulator notes when each request arrives and when its
answer leaves; a request that arrives while another one is unanswered (on any
connection to the same simulator, since they all stand for one RS-485 line) is an
overlap: it is logged as an error and recorded in ``violations``. To make overlaps
observable it answers RTU requests after ``response_delay_ms`` (default 2 ms), as
a real line takes time to carry a frame.

Scenario file
-------------

A scenario maps each simulated device (by its name in the lineside config) to a
section; the simulator serves what that device's config expects (same addresses,
types, word orders and unit id; a modbus_tcp device on its host and port, a
modbus_rtu device on the host and port of its ``socket://host:port``). Every key
is optional::

    plc3:
      response_delay_ms: 2          # answer delay (RTU default 2, TCP default 0)
      points:
        good:    {value: 0, rate_per_s: 2}     # start value, units per second
        scrap:   {rate_per_s: 0.1}
      events:                        # at_s: seconds after the simulator starts
        - {at_s: 10, point: good, set: 65530}       # the counter jumps (forces a rollover)
        - {at_s: 15, point: scrap, reset: true}     # the counter restarts from 0
        - {at_s: 18, point: good, rate_per_s: 5}    # the line speeds up
        - {at_s: 20, offline_s: 10}                 # refuse connections for 10 s
        - {at_s: 35, silent_s: 2}                   # this unit does not answer for 2 s
        - {at_s: 40, exception: 2, duration_s: 3}   # answer with exception code 2
        - {at_s: 50, exception: 4, duration_s: 3, point: scrap}  # only requests for scrap
    doser3:
      points:
        total_l: {value: 100.0, rate_per_s: 0.05}   # a float32 totalizer in litres

Each event does exactly one of ``set``, ``reset``, ``rate_per_s``, ``offline_s``,
``silent_s`` or ``exception`` (which needs ``duration_s``). Points not named in
``points`` hold 0. Devices sharing a listener (RTU devices on one port, TCP devices
on one host:port) share it: an ``offline_s`` event of one takes them all offline,
while ``silent_s`` silences only that device's unit (the others keep answering).
A request for a unit the simulator does not serve gets no answer over RTU (as on
a real line) and exception 11 (gateway target failed to respond) over TCP.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from lineside.drivers.base import StopFlag
from lineside.drivers.modbus import (
    BIT_TABLES,
    WIDTH_BITS,
    ModbusPoint,
    ModbusRtuConfig,
    ModbusTcpConfig,
    PointType,
    Table,
    WordOrder,
    point_span,
)
from lineside.drivers.modbus_codec import encode_registers

log = logging.getLogger("lineside.simulators.plc")

Framer = Literal["tcp", "rtu"]
Monotonic = Callable[[], float]

_FC_TABLE: dict[int, Table] = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
_TABLES: tuple[Table, ...] = ("coil", "discrete", "holding", "input")
_VALID_EXCEPTIONS = frozenset(int(code) for code in ExcCodes)


# --------------------------------------------------------------------------- points


@dataclass(frozen=True, slots=True)
class SimPoint:
    """Where a point lives, how it is encoded, what it starts at and how fast it counts."""

    address: int
    type: PointType = "uint16"
    table: Table = "holding"
    word_order: WordOrder = "big"
    value: int | float = 0
    rate_per_s: float = 0.0

    @classmethod
    def from_config(
        cls, point: ModbusPoint, value: int | float = 0, rate_per_s: float = 0.0
    ) -> SimPoint:
        return cls(point.address, point.type, point.table, point.word_order, value, rate_per_s)


def wrap_int(value: int, point_type: PointType) -> int:
    """An integer as the PLC's register of that width holds it (two's complement if signed)."""
    if point_type == "bool":
        return 1 if value else 0
    bits = WIDTH_BITS[point_type]
    value %= 1 << bits
    if point_type.startswith("int") and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


class Counter:
    """One point's value as a function of time: base + rate × elapsed, wrapped to its type.

    Computed when read rather than ticked, so values are exact at any poll rate.
    Integer counters keep the fraction of a unit they have made so far across
    rate changes, so a rate of 0.5/s counts one unit every two seconds.
    """

    def __init__(self, spec: SimPoint, now: float) -> None:
        self.spec = spec
        self._rate = float(spec.rate_per_s)
        self._t0 = now
        self._fraction = 0.0
        self._base: int | float = self._coerce(spec.value)

    def value_at(self, now: float) -> int | float:
        progress = self._rate * (now - self._t0)
        if self._is_float():
            return float(self._base) + progress
        return wrap_int(int(self._base) + math.floor(self._fraction + progress), self.spec.type)

    def words_at(self, now: float) -> list[int]:
        """The registers of the value (or [0]/[1] for a bit)."""
        value = self.value_at(now)
        if self.spec.type == "bool":
            return [1 if value else 0]
        return encode_registers(value, self.spec.type, self.spec.word_order)

    def set(self, value: int | float, now: float) -> None:
        self._base, self._t0, self._fraction = self._coerce(value), now, 0.0

    def advance(self, delta: int | float, now: float) -> None:
        self._rebase(now)
        self._base = self._coerce(self._base + delta)

    def set_rate(self, rate_per_s: float, now: float) -> None:
        self._rebase(now)
        self._rate = float(rate_per_s)

    def _rebase(self, now: float) -> None:
        progress = self._rate * (now - self._t0)
        if self._is_float():
            self._base = float(self._base) + progress
        else:
            total = self._fraction + progress
            whole = math.floor(total)
            self._base, self._fraction = (
                wrap_int(int(self._base) + whole, self.spec.type),
                (total - whole),
            )
        self._t0 = now

    def _coerce(self, value: int | float) -> int | float:
        if self._is_float():
            return float(value)
        return wrap_int(int(value), self.spec.type)

    def _is_float(self) -> bool:
        return self.spec.type in ("float32", "float64")


# --------------------------------------------------------------------------- bus monitor


@dataclass(frozen=True, slots=True)
class Transaction:
    unit: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Overlap:
    """A request that arrived while another was still unanswered on the same bus."""

    bus: str
    unit: int
    other_unit: int
    at: float
    message: str


class BusMonitor:
    """Notes every request's arrival and answer, per connection; finds overlaps."""

    def __init__(self, name: str, check_overlap: bool, clock: Monotonic, keep: int = 10_000):
        self._name = name
        self._check = check_overlap
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[int, tuple[int, float]] = {}
        self._connections = itertools.count(1)
        self._violations: list[Overlap] = []
        self._transactions: deque[Transaction] = deque(maxlen=keep)
        self._count = 0

    def new_connection(self) -> int:
        return next(self._connections)

    def trace_pdu(self, connection: int, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        now = self._clock()
        with self._lock:
            if sending:
                self._answered(connection, now)
            else:
                self._arrived(connection, int(pdu.dev_id), now)
        return pdu

    def trace_connect(self, connection: int, connected: bool) -> None:
        if not connected:
            with self._lock:
                self._open.pop(connection, None)

    def unanswered(self, connection: int) -> None:
        """The request gets no answer (a silent unit): the line is free again at once."""
        with self._lock:
            self._open.pop(connection, None)

    def forget_open(self) -> None:
        with self._lock:
            self._open.clear()

    @property
    def violations(self) -> list[Overlap]:
        with self._lock:
            return list(self._violations)

    @property
    def transactions(self) -> list[Transaction]:
        with self._lock:
            return list(self._transactions)

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def _arrived(self, connection: int, unit: int, now: float) -> None:
        if self._check:
            for other_unit, started in self._open.values():
                message = (
                    f"{self._name}: OVERLAP on the bus: a request for unit {unit} arrived while "
                    f"the request for unit {other_unit} (sent {1000 * (now - started):.1f} ms "
                    "earlier) was unanswered"
                )
                log.error("%s", message)
                self._violations.append(Overlap(self._name, unit, other_unit, now, message))
        self._open[connection] = (unit, now)

    def _answered(self, connection: int, now: float) -> None:
        opened = self._open.pop(connection, None)
        if opened is not None:
            self._count += 1
            self._transactions.append(Transaction(opened[0], opened[1], now))


Verdict = Literal["answer", "silent", "unknown"]


class _Handler(ServerRequestHandler):
    """One connection's request handler, traced; silent and unknown units do not answer."""

    def __init__(self, server: _PlcServer, connection: int) -> None:
        monitor = server.monitor
        # pymodbus leaves this constructor untyped.
        super().__init__(  # type: ignore[no-untyped-call]
            server,
            None,
            partial(monitor.trace_pdu, connection),
            partial(monitor.trace_connect, connection),
        )
        self._plc = server
        self._connection = connection

    async def handle_request(self) -> None:
        request = self.last_pdu
        if request is None:
            return
        verdict = self._plc.verdict(int(request.dev_id))
        if verdict == "answer":
            await super().handle_request()  # type: ignore[no-untyped-call]
        elif verdict == "unknown" and not self._plc.rtu:
            # What a TCP gateway answers for a unit behind it that does not exist.
            response = ExceptionResponse(
                request.function_code,
                ExcCodes.GATEWAY_NO_RESPONSE,
                request.dev_id,
                request.transaction_id,
            )
            self.server_send(response, self.last_addr)  # type: ignore[no-untyped-call]
        else:
            # An absent or silent RS-485 unit says nothing: the master times out.
            self._plc.monitor.unanswered(self._connection)


class _PlcServer(ModbusTcpServer):
    """pymodbus' TCP server, with one traced request handler per connection."""

    def __init__(
        self,
        devices: list[SimDevice],
        address: tuple[str, int],
        framer: FramerType,
        monitor: BusMonitor,
        verdict: Callable[[int], Verdict],
    ) -> None:
        super().__init__(devices, address=address, framer=framer)
        self.monitor = monitor
        self.verdict = verdict
        self.rtu = framer == FramerType.RTU

    def callback_new_connection(self) -> ServerRequestHandler:
        return _Handler(self, self.monitor.new_connection())


# --------------------------------------------------------------------------- simulator


@dataclass(slots=True)
class _Fault:
    code: int
    until: float
    unit: int | None
    point: str | None


@dataclass(slots=True)
class _Unit:
    counters: dict[str, Counter] = field(default_factory=dict)


class PlcSimulator:
    """A Modbus server in a background thread with its own asyncio loop.

    Every public method is thread-safe and may be called from tests while drivers poll.
    """

    def __init__(
        self,
        units: Mapping[int, Mapping[str, SimPoint]],
        host: str = "127.0.0.1",
        port: int = 0,
        framer: Framer = "tcp",
        *,
        response_delay_ms: float | None = None,
        check_overlap: bool | None = None,
        name: str = "plc",
        clock: Monotonic = time.monotonic,
    ) -> None:
        if not units:
            raise ValueError("a simulator needs at least one unit")
        self.name = name
        self.host = host
        self.framer: Framer = framer
        self._port = port
        self._clock = clock
        if response_delay_ms is None:
            response_delay_ms = 2.0 if framer == "rtu" else 0.0
        self._delay_s = response_delay_ms / 1000
        self._lock = threading.Lock()
        now = clock()
        self._units = {
            unit: _Unit({n: Counter(p, now) for n, p in points.items()})
            for unit, points in units.items()
        }
        self._specs = {unit: dict(points) for unit, points in units.items()}
        self._faults: list[_Fault] = []
        self._silent_until: dict[int, float] = {}
        self.monitor = BusMonitor(
            name, framer == "rtu" if check_overlap is None else check_overlap, clock
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: _PlcServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._back: asyncio.Task[None] | None = None
        self._started_at: float | None = None

    # ------------------------------------------------------------- life cycle

    @property
    def port(self) -> int:
        """The TCP port (the real one once started, also when constructed with port=0)."""
        return self._port

    @property
    def url(self) -> str:
        """What a driver connects to: socket://host:port for RTU, host:port for TCP."""
        return (
            f"socket://{self.host}:{self._port}"
            if self.framer == "rtu"
            else (f"{self.host}:{self._port}")
        )

    @property
    def online(self) -> bool:
        return self._server is not None

    def start(self, timeout: float = 10.0) -> None:
        """Listen (a free port when port=0) and return once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"sim-{self.name}", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._listen(), timeout)
        except BaseException:
            self.stop()
            raise
        self._started_at = self._clock()
        log.info(
            "%s: serving %s units %s on %s", self.name, self.framer, sorted(self._units), self.url
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and the listener, end the thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            try:
                self._call(self._shutdown(), timeout)
            finally:
                loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> PlcSimulator:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- values

    def value(self, unit: int, point: str) -> int | float:
        with self._lock:
            return self._counter(unit, point).value_at(self._clock())

    def set(self, unit: int, point: str, value: int | float) -> None:
        with self._lock:
            self._counter(unit, point).set(value, self._clock())
        log.info("%s: unit %d %s set to %s", self.name, unit, point, value)

    def reset(self, unit: int, point: str) -> None:
        self.set(unit, point, 0)

    def advance(self, unit: int, point: str, delta: int | float) -> None:
        with self._lock:
            self._counter(unit, point).advance(delta, self._clock())

    def set_rate(self, unit: int, point: str, rate_per_s: float) -> None:
        with self._lock:
            self._counter(unit, point).set_rate(rate_per_s, self._clock())

    # ------------------------------------------------------------- faults

    def go_offline(self, seconds: float) -> None:
        """Close the listener and every connection now; listen again on the same port later."""
        self._call(self._go_offline(seconds))

    def raise_exception(
        self, code: int, seconds: float, unit: int | None = None, point: str | None = None
    ) -> None:
        """Answer with Modbus exception ``code`` for ``seconds``: every request, or only
        those of ``unit``, or only those that cover ``point`` (then unit is required when
        the simulator has several)."""
        if code not in _VALID_EXCEPTIONS:
            raise ValueError(f"no Modbus exception code {code}")
        if point is not None:
            unit = self._unit_of(point) if unit is None else unit
            self._counter(unit, point)
        with self._lock:
            self._faults.append(_Fault(code, self._clock() + seconds, unit, point))
        log.info(
            "%s: exception %d for %.3g s (unit %s, point %s)", self.name, code, seconds, unit, point
        )

    def silence(self, unit: int, seconds: float) -> None:
        """The unit stops answering for ``seconds`` (an RS-485 slave switched off), while
        the listener and the other units go on."""
        self._counter_unit(unit)
        with self._lock:
            self._silent_until[unit] = self._clock() + seconds
        log.info("%s: unit %d silent for %.3g s", self.name, unit, seconds)

    def verdict(self, unit: int) -> Verdict:
        """Whether a request for unit is answered (thread-safe; used by the handlers)."""
        if unit not in self._units:
            return "unknown"
        with self._lock:
            if self._silent_until.get(unit, 0.0) > self._clock():
                return "silent"
        return "answer"

    @property
    def violations(self) -> list[Overlap]:
        return self.monitor.violations

    @property
    def transactions(self) -> list[Transaction]:
        """The most recent answered requests (arrival and answer times, monotonic)."""
        return self.monitor.transactions

    @property
    def transaction_count(self) -> int:
        return self.monitor.count

    # ------------------------------------------------------------- scenario

    def schedule(self, events: Iterable[ScenarioEvent], unit: int) -> None:
        """Run a device's scenario events, at_s counted from start()."""
        if self._loop is None or self._started_at is None:
            raise RuntimeError("start the simulator before scheduling events")
        for event in sorted(events, key=lambda e: e.at_s):
            due = self._started_at + float(event.at_s)
            self._loop.call_soon_threadsafe(self._spawn, self._run_event(event, unit, due))

    async def _run_event(self, event: ScenarioEvent, unit: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - self._clock()))
        try:
            await self._apply(event, unit)
        except Exception:  # a bad event must not stop the others
            log.exception("%s: event at %s s failed", self.name, event.at_s)

    async def _apply(self, event: ScenarioEvent, unit: int) -> None:
        kind = event.action()
        if kind == "offline":
            await self._go_offline(float(event.offline_s or 0))
        elif kind == "silent":
            self.silence(unit, float(event.silent_s or 0))
        elif kind == "exception":
            self.raise_exception(
                event.exception or 0, float(event.duration_s or 0), unit, event.point
            )
        elif kind == "rate":
            self.set_rate(unit, str(event.point), float(event.rate_per_s or 0))
        elif kind == "reset":
            self.reset(unit, str(event.point))
        else:
            point = str(event.point)
            self.set(unit, point, _number(self._type(unit, point), event.set_to or Decimal(0)))

    # ------------------------------------------------------------- inside the loop

    def _call(self, coroutine: Any, timeout: float = 10.0) -> Any:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("simulator not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _listen(self) -> None:
        framer = FramerType.RTU if self.framer == "rtu" else FramerType.SOCKET
        server = _PlcServer(
            self._devices(), (self.host, self._port), framer, self.monitor, self.verdict
        )
        await server.serve_forever(background=True)
        self._server = server
        if self._port == 0:
            listener = cast(asyncio.Server, server.transport)
            self._port = int(listener.sockets[0].getsockname()[1])

    async def _go_offline(self, seconds: float) -> None:
        if self._back is not None:
            self._back.cancel()
        if self._server is not None:
            await _close_server(self._server)
            self._server = None
            self.monitor.forget_open()
        log.warning(
            "%s: offline for %.3g s (port %d refuses connections)", self.name, seconds, self._port
        )
        self._back = asyncio.get_running_loop().create_task(self._come_back(seconds))

    async def _come_back(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        while self._server is None:
            try:
                await self._listen()
            except (OSError, RuntimeError) as exc:
                log.error("%s: cannot listen on port %d again: %s", self.name, self._port, exc)
                await asyncio.sleep(0.2)
        log.warning("%s: online again on %s", self.name, self.url)

    async def _shutdown(self) -> None:
        for task in [*self._tasks, *([self._back] if self._back else [])]:
            task.cancel()
        if self._server is not None:
            await _close_server(self._server)
            self._server = None

    def _devices(self) -> list[SimDevice]:
        return [
            SimDevice(
                unit, simdata=_blocks(self._specs[unit].values()), action=partial(self._serve, unit)
            )
            for unit in sorted(self._units)
        ]

    async def _serve(
        self,
        unit: int,
        function_code: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        _set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Runs for every valid request: wait the line's time, then answer or fail."""
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        table = _FC_TABLE.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        now = self._clock()
        with self._lock:
            code = self._fault_code(unit, table, address, count, now)
            if code is not None:
                return ExcCodes(code)
            for counter in self._units[unit].counters.values():
                if counter.spec.table == table:
                    _store(counter, start, registers, now)
        return None

    def _fault_code(
        self, unit: int, table: Table, address: int, count: int, now: float
    ) -> int | None:
        self._faults = [f for f in self._faults if f.until > now]
        # For bit tables pymodbus passes a count of 16-bit registers: widen to match.
        end = address + (count * 16 if table in BIT_TABLES else count)
        for fault in self._faults:
            if fault.unit is not None and fault.unit != unit:
                continue
            if fault.point is None:
                return fault.code
            spec = self._specs[unit][fault.point]
            if (
                spec.table == table
                and spec.address < end
                and address < spec.address + (point_span(spec.type))
            ):
                return fault.code
        return None

    def _counter_unit(self, unit: int) -> _Unit:
        try:
            return self._units[unit]
        except KeyError:
            raise KeyError(f"{self.name} has no unit {unit}") from None

    def _counter(self, unit: int, point: str) -> Counter:
        try:
            return self._units[unit].counters[point]
        except KeyError:
            raise KeyError(f"{self.name} has no point {point!r} on unit {unit}") from None

    def _type(self, unit: int, point: str) -> PointType:
        return self._counter(unit, point).spec.type

    def _unit_of(self, point: str) -> int:
        units = [u for u, state in self._units.items() if point in state.counters]
        if len(units) != 1:
            raise ValueError(f"say which unit: point {point!r} is on units {units}")
        return units[0]


async def _close_server(server: _PlcServer) -> None:
    """Close the listener and every connection, including one accepted at the last moment."""
    await server.shutdown()  # type: ignore[no-untyped-call]
    # asyncio sets up a just-accepted connection in a callback that runs after the
    # listener closed; let it run, then close that connection too, so that no socket
    # outlives the server (a real PLC that goes away drops every connection).
    await asyncio.sleep(0.01)
    for connection in list(server.active_connections.values()):
        connection.close()


def _store(counter: Counter, start: int, registers: list[int], now: float) -> None:
    """Write a counter's current value into pymodbus' register list of its table."""
    spec = counter.spec
    words = counter.words_at(now)
    if spec.table in BIT_TABLES:
        # Bit blocks are packed 16 to a register, bit 0 first; start counts registers.
        index, bit = spec.address // 16 - start, spec.address % 16
        if words[0]:
            registers[index] |= 1 << bit
        else:
            registers[index] &= ~(1 << bit)
        return
    offset = spec.address - start
    registers[offset : offset + len(words)] = words


def _blocks(
    points: Iterable[SimPoint],
) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
    """pymodbus blocks for (coils, discrete inputs, holding, input registers).

    Only the points' own addresses are valid (reading a gap answers exception 2, as
    a strict PLC does) and everything is read-only: the PLC owns its counters.
    """
    ranges: dict[Table, list[tuple[int, int]]] = {t: [] for t in _TABLES}
    for spec in points:
        ranges[spec.table].append((spec.address, spec.address + point_span(spec.type)))
    blocks: list[list[SimData]] = []
    for table in _TABLES:
        merged = _merge(ranges[table])
        if table in BIT_TABLES:
            # pymodbus needs at least one entry per table; a lone bit at 0 is harmless.
            merged = merged or [(0, 1)]
            blocks.append(
                [
                    SimData(a, values=[False] * (b - a), datatype=DataType.BITS, readonly=True)
                    for a, b in merged
                ]
            )
        elif merged:
            blocks.append(
                [
                    SimData(a, count=b - a, datatype=DataType.REGISTERS, readonly=True)
                    for a, b in merged
                ]
            )
        else:
            blocks.append([SimData(0, datatype=DataType.INVALID)])
    return blocks[0], blocks[1], blocks[2], blocks[3]


def _merge(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _number(point_type: PointType, value: Decimal) -> int | float:
    return float(value) if point_type in ("float32", "float64") else int(value)


# --------------------------------------------------------------------------- scenario model


class _ScenarioModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PointScenario(_ScenarioModel):
    """A point's start value and counting rate, in raw register units."""

    value: Decimal = Decimal(0)
    rate_per_s: Decimal = Decimal(0)


EventKind = Literal["set", "reset", "rate", "offline", "silent", "exception"]


class ScenarioEvent(_ScenarioModel):
    """One scripted change, ``at_s`` seconds after the simulator starts."""

    at_s: Decimal = Field(ge=0)
    point: str | None = None
    set_to: Decimal | None = Field(default=None, alias="set")
    reset: bool = False
    rate_per_s: Decimal | None = None
    offline_s: Decimal | None = Field(default=None, gt=0)
    silent_s: Decimal | None = Field(default=None, gt=0)
    exception: int | None = None
    duration_s: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_action(self) -> ScenarioEvent:
        chosen = [
            key
            for key, given in (
                ("set", self.set_to is not None),
                ("reset", self.reset),
                ("rate_per_s", self.rate_per_s is not None),
                ("offline_s", self.offline_s is not None),
                ("silent_s", self.silent_s is not None),
                ("exception", self.exception is not None),
            )
            if given
        ]
        if len(chosen) != 1:
            raise ValueError(
                "an event does exactly one of set, reset, rate_per_s, offline_s, silent_s, "
                "exception; "
                f"got {', '.join(chosen) or 'none'}"
            )
        kind = chosen[0]
        if kind in ("set", "reset", "rate_per_s") and self.point is None:
            raise ValueError(f"{kind} needs a point")
        if kind in ("offline_s", "silent_s") and self.point is not None:
            raise ValueError(f"{kind} concerns the whole device: drop point")
        if kind == "exception":
            if self.exception not in _VALID_EXCEPTIONS:
                raise ValueError(
                    f"exception must be a Modbus exception code: {sorted(_VALID_EXCEPTIONS)}"
                )
            if self.duration_s is None:
                raise ValueError("exception needs duration_s")
        elif self.duration_s is not None:
            raise ValueError("duration_s belongs to an exception event")
        return self

    def action(self) -> EventKind:
        if self.offline_s is not None:
            return "offline"
        if self.silent_s is not None:
            return "silent"
        if self.exception is not None:
            return "exception"
        if self.rate_per_s is not None:
            return "rate"
        return "reset" if self.reset else "set"


class DeviceScenario(_ScenarioModel):
    """The scenario section of one simulated Modbus device."""

    points: dict[str, PointScenario] = {}
    events: list[ScenarioEvent] = []
    response_delay_ms: Decimal | None = Field(default=None, ge=0, le=10_000)


ModbusDeviceConfig = ModbusTcpConfig | ModbusRtuConfig


def scenario_problems(section: DeviceScenario, config: ModbusDeviceConfig) -> list[str]:
    """What in a scenario section does not fit its device's config (pure)."""
    problems: list[str] = []
    known = config.point_names()
    named = [("points", n) for n in section.points] + [
        (f"events[{i}]", e.point) for i, e in enumerate(section.events) if e.point is not None
    ]
    for where, name in named:
        if name not in known:
            problems.append(
                f"{where}: no point {name!r} on this device (it has {', '.join(sorted(known))})"
            )
    for i, event in enumerate(section.events):
        if event.set_to is not None and event.point in known:
            point_type = config.points[event.point].type
            if point_type not in ("float32", "float64") and event.set_to != int(event.set_to):
                problems.append(f"events[{i}]: set {event.set_to} is not a whole number")
    return problems


def listen_address(config: ModbusDeviceConfig) -> tuple[str, int, Framer]:
    """Where the simulator of a device must listen, and with which framing."""
    if isinstance(config, ModbusTcpConfig):
        return config.host, config.port, "tcp"
    url = urlsplit(config.port)
    if url.scheme != "socket" or not url.hostname or not url.port:
        raise ValueError(
            f"a modbus_rtu device can be simulated only on a socket://host:port port, "
            f"not {config.port!r}"
        )
    return url.hostname, url.port, "rtu"


def build_simulators(
    devices: Mapping[str, ModbusDeviceConfig],
    scenario: Mapping[str, DeviceScenario | Mapping[str, Any] | None],
) -> list[tuple[PlcSimulator, dict[int, DeviceScenario]]]:
    """One simulator per listen address, serving the units of every device on it.

    Raises ValueError when a scenario does not fit its device, when two devices on
    one address share a unit id, or when an RTU port is not socket://host:port.
    """
    groups: dict[
        tuple[str, int, Framer], dict[int, tuple[str, ModbusDeviceConfig, DeviceScenario]]
    ] = {}
    problems: list[str] = []
    for name, config in devices.items():
        raw = scenario.get(name)
        section = (
            raw if isinstance(raw, DeviceScenario) else DeviceScenario.model_validate(raw or {})
        )
        problems.extend(f"{name}.{p}" for p in scenario_problems(section, config))
        members = groups.setdefault(listen_address(config), {})
        if config.unit in members:
            problems.append(
                f"{name}: unit {config.unit} is also device {members[config.unit][0]}"
                " on the same address"
            )
        members[config.unit] = (name, config, section)
    if problems:
        raise ValueError("; ".join(problems))
    return [_simulator(address, members) for address, members in groups.items()]


def _simulator(
    address: tuple[str, int, Framer],
    members: Mapping[int, tuple[str, ModbusDeviceConfig, DeviceScenario]],
) -> tuple[PlcSimulator, dict[int, DeviceScenario]]:
    host, port, framer = address
    units: dict[int, dict[str, SimPoint]] = {}
    delays = [s.response_delay_ms for _, _, s in members.values() if s.response_delay_ms]
    for unit, (_, config, section) in members.items():
        units[unit] = {}
        for name, point in config.points.items():
            behaviour = section.points.get(name, PointScenario())
            units[unit][name] = SimPoint.from_config(
                point, _number(point.type, behaviour.value), float(behaviour.rate_per_s)
            )
    sim = PlcSimulator(
        units,
        host,
        port,
        framer,
        response_delay_ms=float(max(delays)) if delays else None,
        name="+".join(n for n, _, _ in members.values()),
    )
    return sim, {unit: section for unit, (_, _, section) in members.items()}


def simulate_devices(
    devices: Mapping[str, ModbusDeviceConfig],
    scenario: Mapping[str, DeviceScenario | Mapping[str, Any] | None],
    stop: StopFlag,
) -> None:
    """Serve every given device as its config expects until stop is set (blocks)."""
    built = build_simulators(devices, scenario)
    started: list[PlcSimulator] = []
    try:
        for sim, sections in built:
            sim.start()
            started.append(sim)
            for unit, section in sections.items():
                sim.schedule(section.events, unit)
        while not stop.wait(1.0):
            pass
    finally:
        for sim in started:
            sim.stop()


def simulate_device(
    name: str,
    device_config: ModbusDeviceConfig,
    scenario_section: DeviceScenario | Mapping[str, Any] | None,
    stop: StopFlag,
) -> None:
    """Serve one device as its config expects until stop is set (blocks)."""
    simulate_devices({name: device_config}, {name: scenario_section}, stop)
