"""Register decoding and read planning: pure functions, no I/O."""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineside.drivers.modbus.codec import (
    DecodeError,
    ReadBlock,
    decode_point,
    decode_registers,
    encode_registers,
    exact_value,
    float_to_decimal,
    plan_reads,
)
from lineside.drivers.modbus.config import ModbusPoint

D = Decimal


def point(address: int = 0, **fields: Any) -> ModbusPoint:
    return ModbusPoint.model_validate({"address": address, **fields})


# ----------------------------------------------------------------- known vectors


@pytest.mark.parametrize(
    ("registers", "point_type", "word_order", "expected"),
    [
        ([0x0000], "uint16", "big", 0),
        ([0xFFFF], "uint16", "big", 65535),
        ([0xFFFF], "int16", "big", -1),
        ([0x8000], "int16", "little", -32768),
        ([0x1234, 0x5678], "uint32", "big", 0x12345678),
        ([0x5678, 0x1234], "uint32", "little", 0x12345678),
        ([0xFFFF, 0xFFFE], "int32", "big", -2),
        ([0xFFFE, 0xFFFF], "int32", "little", -2),
        ([0x0001, 0x0002, 0x0003, 0x0004], "uint64", "big", 0x0001000200030004),
        ([0x0004, 0x0003, 0x0002, 0x0001], "uint64", "little", 0x0001000200030004),
        ([0x3F80, 0x0000], "float32", "big", 1.0),
        ([0x0000, 0x3F80], "float32", "little", 1.0),
        ([0xC120, 0x0000], "float32", "big", -10.0),
        ([0x3FB9, 0x9999, 0x9999, 0x999A], "float64", "big", 0.1),
        ([0x999A, 0x9999, 0x9999, 0x3FB9], "float64", "little", 0.1),
    ],
)
def test_decode_known_vectors(
    registers: list[int], point_type: Any, word_order: Any, expected: float
) -> None:
    assert decode_registers(registers, point_type, word_order) == expected
    assert encode_registers(expected, point_type, word_order) == registers


def test_bytes_within_a_register_are_big_endian_whatever_the_word_order() -> None:
    # Word order swaps whole registers only; 0x1234 is never read as 0x3412.
    assert decode_registers([0x1234], "uint16", "little") == 0x1234
    assert decode_registers([0x0000, 0x1234], "uint32", "little") == 0x12340000


@pytest.mark.parametrize(
    ("registers", "point_type"),
    [([1], "uint32"), ([1, 2, 3], "uint32"), ([], "uint16"), ([1, 2], "float64")],
)
def test_wrong_register_count_is_a_decode_error(registers: list[int], point_type: Any) -> None:
    with pytest.raises(DecodeError, match="registers"):
        decode_registers(registers, point_type)


def test_register_out_of_range_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_registers([70000], "uint16")


# ----------------------------------------------------------------- round trips

INT_RANGES = {
    "uint16": (0, 2**16 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint32": (0, 2**32 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint64": (0, 2**64 - 1),
}


@st.composite
def typed_ints(draw: st.DrawFn) -> tuple[str, int]:
    point_type = draw(st.sampled_from(sorted(INT_RANGES)))
    low, high = INT_RANGES[point_type]
    return point_type, draw(st.integers(low, high))


@given(typed_ints(), st.sampled_from(["big", "little"]))
def test_integers_round_trip(typed: tuple[Any, int], word_order: Any) -> None:
    point_type, value = typed
    registers = encode_registers(value, point_type, word_order)
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode_registers(registers, point_type, word_order) == value


@given(
    st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(["big", "little"])
)
def test_float32_round_trips_through_registers_and_decimal(value: float, word_order: Any) -> None:
    registers = encode_registers(value, "float32", word_order)
    decoded = decode_registers(registers, "float32", word_order)
    assert decoded == value
    exact = float_to_decimal(float(decoded), "float32")
    # The decimal names the very same float32, without a positive exponent.
    assert struct.pack(">f", float(exact)) == struct.pack(">f", value)
    assert int(exact.as_tuple().exponent) <= 0


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["big", "little"]))
def test_float64_round_trips_through_registers_and_decimal(value: float, word_order: Any) -> None:
    decoded = decode_registers(
        encode_registers(value, "float64", word_order), "float64", word_order
    )
    assert decoded == value
    assert float(float_to_decimal(float(decoded))) == value


# ----------------------------------------------------------------- exact values


def test_float32_becomes_its_shortest_decimal_not_the_binary_expansion() -> None:
    as_plc_sends_it = decode_registers(encode_registers(0.1, "float32"), "float32")
    assert as_plc_sends_it != 0.1  # the float32 nearest to 0.1, widened to a double
    assert float_to_decimal(float(as_plc_sends_it), "float32") == D("0.1")
    pi32 = decode_registers(encode_registers(math.pi, "float32"), "float32")
    assert float_to_decimal(float(pi32), "float32") == D("3.1415927")  # 8 digits, not 17
    assert float_to_decimal(0.1, "float64") == D("0.1")


def test_large_and_small_floats_use_plain_digits() -> None:
    assert str(float_to_decimal(1e10, "float64")) == "10000000000"
    assert str(float_to_decimal(1e10, "float32")) == "10000000000"
    assert str(float_to_decimal(2.50, "float64")) == "2.5"
    assert str(float_to_decimal(3.4028234663852886e38, "float32")).startswith("340282350000")
    assert float_to_decimal(1e-7, "float32") == D("0.0000001")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(DecodeError, match="finite"):
        float_to_decimal(value, "float32")


def test_scale_keeps_ints_at_one_and_is_exact_otherwise() -> None:
    assert exact_value(12345, "uint32", D(1)) == 12345
    assert type(exact_value(12345, "uint32", D(1))) is int
    assert exact_value(12345, "uint32", D("1.0")) == 12345
    assert exact_value(12345, "uint32", D("0.01")) == D("123.45")
    assert isinstance(exact_value(12345, "uint32", D("0.01")), Decimal)
    assert exact_value(-3, "int16", D("0.5")) == D("-1.5")


def test_floats_are_never_floats() -> None:
    for scale in (D(1), D("0.001")):
        value = exact_value(2.5, "float64", scale)
        assert isinstance(value, Decimal)
    assert exact_value(2.5, "float32", D("0.001")) == D("0.0025")


def test_bits_are_zero_or_one() -> None:
    coil = point(3, type="bool", table="coil")
    assert decode_point(coil, [True]) == 1
    assert decode_point(coil, [False]) == 0
    assert type(decode_point(coil, [True])) is int


def test_decode_point_applies_type_order_and_scale() -> None:
    total = point(10, type="uint32", word_order="little", scale="0.1")
    assert decode_point(total, [0x86A0, 0x0001]) == D("10000.0")
    with pytest.raises(DecodeError):
        decode_point(point(0, type="float32"), encode_registers(math.nan, "float32"))


# ----------------------------------------------------------------- read planning


def test_contiguous_points_share_one_request() -> None:
    plan = plan_reads(
        {
            "good": point(100, type="uint32"),
            "scrap": point(102),
            "painted": point(103, type="uint32"),
        }
    )
    assert plan == [
        ReadBlock(
            "holding",
            100,
            5,
            (
                ("good", point(100, type="uint32")),
                ("scrap", point(102)),
                ("painted", point(103, type="uint32")),
            ),
        )
    ]


def test_gaps_and_tables_split_requests() -> None:
    plan = plan_reads(
        {
            "a": point(0),
            "b": point(2),
            "c": point(0, table="input"),
            "d": point(5, type="bool", table="coil"),
            "e": point(6, type="bool", table="coil"),
            "f": point(5, type="bool", table="discrete"),
        }
    )
    assert [(b.table, b.address, b.count, b.point_names()) for b in plan] == [
        ("holding", 0, 1, ("a",)),
        ("holding", 2, 1, ("b",)),
        ("input", 0, 1, ("c",)),
        ("coil", 5, 2, ("d", "e")),
        ("discrete", 5, 1, ("f",)),
    ]


def test_overlapping_points_are_read_once() -> None:
    # A uint32 and a uint16 view of its low word: one request covers both.
    plan = plan_reads({"whole": point(10, type="uint32"), "low": point(11)})
    assert [(b.address, b.count, set(b.point_names())) for b in plan] == [(10, 2, {"whole", "low"})]
    block = plan[0]
    assert block.slice_for(point(11), [0xAAAA, 0xBBBB]) == [0xBBBB]


def test_requests_stay_within_the_protocol_limit() -> None:
    points = {f"p{i}": point(i * 4, type="uint64") for i in range(100)}  # 400 registers
    plan = plan_reads(points)
    assert [b.count for b in plan] == [124, 124, 124, 28]
    assert sum(len(b.points) for b in plan) == 100
    assert all(b.count <= 125 for b in plan)
    bits = plan_reads({f"b{i}": point(i, type="bool", table="coil") for i in range(2500)})
    assert [b.count for b in bits] == [2000, 500]
