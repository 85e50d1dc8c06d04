"""The pymodbus server under a PlcSimulator: each request traced, answered or not."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import SimDevice

from lineside.simulators.plc.bus import BusMonitor

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
