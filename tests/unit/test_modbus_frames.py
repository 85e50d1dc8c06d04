"""RTU answers matched to their requests: pure framing, no I/O."""

from __future__ import annotations

import pytest
from pymodbus.framer import FramerRTU

from lineside.drivers.modbus.codec import ReadBlock
from lineside.drivers.modbus.config import ModbusPoint
from lineside.drivers.modbus.frames import (
    DeviceUnreachable,
    ExceptionReply,
    NotTheAnswer,
    answer_size,
    exception_answer,
    parse_answer,
    request_frame,
)


def block(table: str, address: int, count: int) -> ReadBlock:
    point = ModbusPoint(
        address=address, type="bool" if table in ("coil", "discrete") else "uint16", table=table
    )  # type: ignore[arg-type]
    return ReadBlock(table, address, count, (("p", point),))  # type: ignore[arg-type]


def crc(frame: bytes) -> bytes:
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


def test_a_read_request_is_the_standard_frame() -> None:
    # The specification's example: read holding registers 107-109 of unit 17.
    assert request_frame(17, block("holding", 107, 3)).hex() == "11 03 00 6b 00 03 76 87".replace(
        " ", ""
    )


def test_registers_and_bits_are_read_from_their_own_answer() -> None:
    holding = block("holding", 0, 2)
    assert parse_answer(7, holding, crc(bytes([7, 3, 4, 0, 1, 0x11, 0x70]))) == [1, 0x1170]
    coils = block("coil", 0, 10)
    assert parse_answer(7, coils, crc(bytes([7, 1, 2, 0b101, 0b10]))) == [
        True,
        False,
        True,
        False,
        False,
        False,
        False,
        False,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (bytes([8, 3, 4]), "a frame from unit 8, not 7"),
        (bytes([7, 4, 4]), "a frame of function 4, not 3"),
        (bytes([7, 3, 6]), "a frame with 6 data bytes, not 4"),
        (bytes([7, 0x84, 2]), "a frame of function 132, not 3"),
    ],
)
def test_a_head_that_cannot_start_the_answer(head: bytes, why: str) -> None:
    with pytest.raises(NotTheAnswer, match=why):
        answer_size(7, block("holding", 0, 2), head)


def test_a_broken_crc_is_not_the_answer() -> None:
    frame = crc(bytes([7, 3, 4, 0, 1, 0, 2]))
    with pytest.raises(NotTheAnswer, match="CRC"):
        parse_answer(7, block("holding", 0, 2), frame[:-1] + b"\0")


def test_exception_answers_and_what_they_mean() -> None:
    with pytest.raises(ExceptionReply, match="exception 2"):
        parse_answer(7, block("input", 0, 2), crc(bytes([7, 0x84, 2])))
    assert answer_size(7, block("input", 0, 2), bytes([7, 0x84, 2])) == 5
    assert isinstance(exception_answer(6), ExceptionReply)
    assert isinstance(exception_answer(10), DeviceUnreachable)
    assert isinstance(exception_answer(11), DeviceUnreachable)
