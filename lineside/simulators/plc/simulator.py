"""PlcSimulator: the units, their counters and faults, and the server thread they run on."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, cast

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.simulator import SimDevice

from lineside.drivers.modbus.config import (
    PointType,
    Table,
)
from lineside.simulators.plc.bus import BusMonitor, Monotonic, Overlap, Transaction
from lineside.simulators.plc.counter import (
    Counter,
    SimPoint,
    raw_number,
    register_blocks,
    store_registers,
)
from lineside.simulators.plc.faults import Fault, Faults
from lineside.simulators.plc.scenario import (
    VALID_EXCEPTIONS,
    ExceptionEvent,
    OfflineEvent,
    RateEvent,
    ResetEvent,
    ScenarioEvent,
    SetEvent,
    SilentEvent,
)
from lineside.simulators.plc.server import Verdict, _PlcServer

log = logging.getLogger("lineside.simulators.plc")

Framer = Literal["tcp", "rtu"]

_FC_TABLE: dict[int, Table] = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


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
        self._faults = Faults()
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
        except Exception as exc:
            self.stop()
            # pymodbus says "Could not start listen, please check address." and no more.
            raise RuntimeError(f"{self.name}: cannot serve on {self.url}: {exc}") from exc
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
        if code not in VALID_EXCEPTIONS:
            raise ValueError(f"no Modbus exception code {code}")
        if point is not None:
            unit = _unit_of(self._units, point) if unit is None else unit
            self._counter(unit, point)
        with self._lock:
            self._faults.add(Fault(code, self._clock() + seconds, unit, point))
        log.info(
            "%s: exception %d for %.3g s (unit %s, point %s)", self.name, code, seconds, unit, point
        )

    def silence(self, unit: int, seconds: float) -> None:
        """The unit stops answering for ``seconds`` (an RS-485 slave switched off), while
        the listener and the other units go on."""
        self._counter_unit(unit)
        with self._lock:
            self._faults.silence(unit, self._clock() + seconds)
        log.info("%s: unit %d silent for %.3g s", self.name, unit, seconds)

    def verdict(self, unit: int) -> Verdict:
        """Whether a request for unit is answered (thread-safe; used by the handlers)."""
        if unit not in self._units:
            return "unknown"
        with self._lock:
            if self._faults.silent(unit, self._clock()):
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
            self._loop.call_soon_threadsafe(self._spawn, _play(self, event, unit, due))

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
                unit,
                simdata=register_blocks(self._specs[unit].values()),
                action=partial(self._serve, unit),
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
            code = self._faults.code(unit, table, address, count, now, self._specs[unit])
            if code is not None:
                return ExcCodes(code)
            for counter in self._units[unit].counters.values():
                if counter.spec.table == table:
                    store_registers(counter, start, registers, now)
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


def _unit_of(units: Mapping[int, _Unit], point: str) -> int:
    found = [u for u, state in units.items() if point in state.counters]
    if len(found) != 1:
        raise ValueError(f"say which unit: point {point!r} is on units {found}")
    return found[0]


async def _play(sim: PlcSimulator, event: ScenarioEvent, unit: int, due: float) -> None:
    await asyncio.sleep(max(0.0, due - sim._clock()))
    try:
        await _apply(sim, event, unit)
    except Exception:  # a bad event must not stop the others
        log.exception("%s: event at %s s failed", sim.name, event.at_s)


async def _apply(sim: PlcSimulator, event: ScenarioEvent, unit: int) -> None:
    match event:
        case OfflineEvent():
            await sim._go_offline(float(event.offline_s))
        case SilentEvent():
            sim.silence(unit, float(event.silent_s))
        case ExceptionEvent():
            sim.raise_exception(event.exception, float(event.duration_s), unit, event.point)
        case RateEvent():
            sim.set_rate(unit, event.point, float(event.rate_per_s))
        case ResetEvent():
            sim.reset(unit, event.point)
        case SetEvent():
            point_type = sim._type(unit, event.point)
            sim.set(unit, event.point, raw_number(point_type, event.set_to))


async def _close_server(server: _PlcServer) -> None:
    """Close the listener and every connection, including one accepted at the last moment."""
    await server.shutdown()  # type: ignore[no-untyped-call]
    # asyncio sets up a just-accepted connection in a callback that runs after the
    # listener closed; let it run, then close that connection too, so that no socket
    # outlives the server (a real PLC that goes away drops every connection).
    await asyncio.sleep(0.01)
    for connection in list(server.active_connections.values()):
        connection.close()
