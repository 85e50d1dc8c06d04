"""How a Modbus poll loop reaches its device: its own TCP connection, or a share of an RTU bus.

``request_block`` turns one read into pymodbus' request and its answer into values,
refusing an answer that is not the one asked for (wrong count, an exception reply).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ExceptionResponse

from lineside.drivers.modbus.codec import ReadBlock
from lineside.drivers.modbus.config import (
    BIT_TABLES,
    ModbusTcpConfig,
)
from lineside.drivers.modbus.frames import (
    FUNCTION_CODE,
    DeviceUnreachable,
    ExceptionReply,
    Values,
    byte_count,
    exception_answer,
)
from lineside.drivers.modbus.rtu import RtuBus

log = logging.getLogger("lineside.drivers.modbus")

_READ_METHOD: dict[str, str] = {
    "holding": "read_holding_registers",
    "input": "read_input_registers",
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
}


def request_block(client: Any, unit: int, block: ReadBlock, timeout_ms: int) -> Values:
    """Issue one read on a pymodbus sync client; classify every way it can fail.

    pymodbus matches a TCP answer to its request by transaction id and unit; the function
    code and the count are checked here. Raises DeviceUnreachable (no usable answer, or a
    gateway's exception 10/11) or ExceptionReply (an exception response).
    """
    read = getattr(client, _READ_METHOD[block.table])
    try:
        response = read(block.address, count=block.count, device_id=unit)
    except (ModbusException, OSError) as exc:
        text = str(exc) or type(exc).__name__
        if "No response received" in text:
            text = f"no answer within timeout_ms {timeout_ms}"
        raise DeviceUnreachable(text) from exc
    if isinstance(response, ExceptionResponse):
        raise exception_answer(int(response.exception_code))
    function = FUNCTION_CODE[block.table]
    if response.function_code != function:
        raise DeviceUnreachable(f"an answer of function {response.function_code}, not {function}")
    values: Values = list(response.bits if block.table in BIT_TABLES else response.registers)
    # Bits come padded to whole bytes: what must match is the byte count.
    got = (len(values) + 7) // 8 if block.table in BIT_TABLES else 2 * len(values)
    if got != byte_count(block):
        raise DeviceUnreachable(f"an answer with {got} data bytes, not {byte_count(block)}")
    return values[: block.count]


class SyncClient(Protocol):
    """What the loops use of pymodbus' sync clients (whose connect/close are untyped)."""

    @property
    def connected(self) -> bool: ...

    def connect(self) -> bool: ...

    def close(self) -> None: ...


class Link(Protocol):
    """How a poll loop reaches its device."""

    def read(self, unit: int, block: ReadBlock) -> Values: ...

    def close(self) -> None: ...


class TcpLink:
    """A driver's own TCP connection; dropped after any failure so a reconnect starts clean.

    neighbours: the other devices configured on the same host and port, named in the hint
    when a fresh connection is accepted but not served.
    """

    def __init__(self, config: ModbusTcpConfig, neighbours: Sequence[str] = ()) -> None:
        self._config = config
        self._neighbours = tuple(neighbours)
        self._client: SyncClient | None = None
        self._answered = False

    def read(self, unit: int, block: ReadBlock) -> Values:
        client = self._client or self._open()
        if not client.connected and not client.connect():
            self.close()
            raise DeviceUnreachable(f"cannot connect to {self._address()}")
        try:
            values = request_block(client, unit, block, self._config.timeout_ms)
        except DeviceUnreachable as exc:
            # A late answer on a kept socket could be taken for the next request's.
            fresh, text = not self._answered, str(exc)
            self.close()
            if fresh and ("timeout_ms" in text or "closed" in text.lower()):
                raise DeviceUnreachable(f"{exc}{self._single_connection_hint()}") from exc
            raise
        except ExceptionReply:
            self._answered = True
            raise
        self._answered = True
        return values

    def _single_connection_hint(self) -> str:
        """Many small PLCs serve one Modbus TCP connection (or a few): the others are
        accepted and then left unanswered, or closed at once."""
        hint = (
            f"; {self._address()} accepted the connection but did not serve it: some PLCs"
            " serve only one Modbus TCP connection at a time (an HMI, SCADA or another"
            " gateway may hold it)"
        )
        if len(self._neighbours) == 1:
            hint += f"; device {self._neighbours[0]} connects to it too"
        elif self._neighbours:
            hint += f"; devices {', '.join(self._neighbours)} connect to it too"
        return hint

    def _address(self) -> str:
        return f"{self._config.host}:{self._config.port}"

    def close(self) -> None:
        self._answered = False
        if self._client is not None:
            self._client.close()
            self._client = None

    def _open(self) -> SyncClient:
        # retries=0: TCP does not lose frames, so a timeout means the PLC is gone.
        self._client = ModbusTcpClient(
            self._config.host,
            port=self._config.port,
            timeout=self._config.timeout_ms / 1000,
            retries=0,
            name=f"{self._config.host}:{self._config.port}",
        )
        return self._client


class BusLink:
    """A device's view of a shared bus: closing it must not close the port for the others."""

    def __init__(self, bus: RtuBus) -> None:
        self._bus = bus

    def read(self, unit: int, block: ReadBlock) -> Values:
        return self._bus.read(unit, block)

    def close(self) -> None:
        """The bus outlives its devices: whoever built it closes it."""
