"""Pure Modbus RTU framing: a read request, and whether a frame is its answer.

An RTU answer carries no transaction id and no address: only the unit id, the function
code, the byte count and the CRC say which request it answers. ``answer_size`` and
``parse_answer`` check all four against the request, so a frame meant for another
request (a late answer, another unit's, garbage) is ``NotTheAnswer``, never values.
Encoding, the CRC and PDU decoding are pymodbus'.
"""

from __future__ import annotations

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest

from lineside.drivers.modbus.codec import ReadBlock
from lineside.drivers.modbus.config import BIT_TABLES

FUNCTION_CODE: dict[str, int] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
_REQUEST: dict[str, type[ModbusPDU]] = {
    "coil": ReadCoilsRequest,
    "discrete": ReadDiscreteInputsRequest,
    "holding": ReadHoldingRegistersRequest,
    "input": ReadInputRegistersRequest,
}
EXCEPTION_SIZE = 5  # unit, function | 0x80, code, CRC
HEAD_SIZE = 3  # unit, function, byte count (or exception code)

Values = list[int] | list[bool]


EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# A gateway's own answer that the device behind it cannot be reached: the device is down.
GATEWAY_EXCEPTIONS = frozenset({10, 11})


class DeviceUnreachable(Exception):
    """No usable answer: connection refused or lost, timeout, serial port gone."""


class ExceptionReply(Exception):
    """The device answered a request with a Modbus exception response."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(describe_exception(code))


class NotTheAnswer(ValueError):
    """A frame, or the start of one, that does not answer the request."""


def describe_exception(code: int) -> str:
    return f"modbus exception {code} ({EXCEPTION_NAMES.get(code, 'unknown code')})"


def exception_answer(code: int) -> DeviceUnreachable | ExceptionReply:
    """What an exception response means: the points failed, or (a gateway's 10 and 11) the
    device behind the gateway is down."""
    if code in GATEWAY_EXCEPTIONS:
        return DeviceUnreachable(f"{describe_exception(code)}: the gateway cannot reach it")
    return ExceptionReply(code)


def byte_count(block: ReadBlock) -> int:
    """Data bytes of a whole answer: two per register, one per eight bits (rounded up)."""
    return (block.count + 7) // 8 if block.table in BIT_TABLES else 2 * block.count


def request_frame(unit: int, block: ReadBlock) -> bytes:
    pdu = _REQUEST[block.table](address=block.address, count=block.count, dev_id=unit)
    return FramerRTU(DecodePDU(is_server=False)).buildFrame(pdu)


def describe(block: ReadBlock) -> str:
    return f"read {block.table} {block.address}+{block.count}"


def answer_size(unit: int, block: ReadBlock, head: bytes) -> int:
    """The whole answer's length in bytes, from its first three; NotTheAnswer if the head
    cannot start the answer to this request."""
    function = FUNCTION_CODE[block.table]
    if head[0] != unit:
        raise NotTheAnswer(f"a frame from unit {head[0]}, not {unit}")
    if head[1] == function | 0x80:
        return EXCEPTION_SIZE
    if head[1] != function:
        raise NotTheAnswer(f"a frame of function {head[1]}, not {function}")
    expected = byte_count(block)
    if head[2] != expected:
        raise NotTheAnswer(f"a frame with {head[2]} data bytes, not {expected}")
    return HEAD_SIZE + expected + 2


def parse_answer(unit: int, block: ReadBlock, frame: bytes) -> Values:
    """The values of a whole answer frame. Raises NotTheAnswer (wrong unit, function,
    byte count or CRC), or what exception_answer makes of an exception response."""
    size = answer_size(unit, block, frame[:HEAD_SIZE])
    if len(frame) != size:
        raise NotTheAnswer(f"a frame of {len(frame)} bytes, not {size}")
    if FramerRTU.compute_CRC(frame[:-2]) != int.from_bytes(frame[-2:], "big"):
        raise NotTheAnswer("a frame with a wrong CRC")
    pdu = DecodePDU(is_server=False).decode(frame[1:-2])
    if pdu is None:
        raise NotTheAnswer("a frame pymodbus cannot decode")
    if isinstance(pdu, ExceptionResponse):
        raise exception_answer(int(pdu.exception_code))
    values: Values = list(pdu.bits if block.table in BIT_TABLES else pdu.registers)
    return values[: block.count]
