"""The line splitter, the rejection log and the backoff: pure, no I/O."""

from __future__ import annotations

import itertools
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lineside.drivers.base import Backoff
from lineside.drivers.serial_lines import LineSplitter, Rejection, RejectionLog
from lineside.drivers.serial_settings import GS, terminator_bytes

BARCODE = "]C1010952123454321310LOT42\x1d3103000500"


def feed_all(splitter: LineSplitter, chunks: list[bytes]) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    reasons: list[str] = []
    for chunk in chunks:
        split = splitter.feed(chunk)
        lines += split.lines
        reasons += [r.reason for r in split.rejections]
    return lines, reasons


# --- terminators ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("CR", b"\r"),
        ("LF", b"\n"),
        ("CRLF", b"\r\n"),
        ("\\x03", b"\x03"),
        ("\\r\\n", b"\r\n"),
        ("#", b"#"),
        ("\\x03\\x04", b"\x03\x04"),
    ],
)
def test_terminator_bytes(spec: str, expected: bytes) -> None:
    assert terminator_bytes(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("\\x1d", "GS"),
        ("\\x03" * 9, "longer"),
        ("\\u20ac", "not a valid"),
        ("\\x", "not a valid"),
    ],
)
def test_bad_terminators_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        terminator_bytes(spec)


# --- splitting ---------------------------------------------------------------------------------

SPLIT_CASES = [
    # (terminator, chunks, lines, rejection reasons)
    ("CR", [b"ABC\r"], ["ABC"], []),
    ("CR", [b"ABC\rDEF\r"], ["ABC", "DEF"], []),
    ("CR", [b"AB", b"C\r"], ["ABC"], []),  # partial line kept across reads
    ("CR", [b"A", b"B", b"", b"C", b"\r"], ["ABC"], []),
    ("LF", [b"ABC\nDEF"], ["ABC"], []),  # DEF waits for its terminator
    ("CRLF", [b"ABC\r\nDEF\r\n"], ["ABC", "DEF"], []),
    ("CRLF", [b"ABC\r", b"\nDEF\r", b"\n"], ["ABC", "DEF"], []),
    ("CR", [b"ABC\r\n"], ["ABC"], []),  # a CRLF scanner on a CR config still works
    ("LF", [b"ABC\rDEF\n"], ["ABC", "DEF"], []),
    ("CR", [b"\r\r\n\r"], [], []),  # empty lines are ignored
    ("CR", [BARCODE.encode() + b"\r"], [BARCODE], []),  # GS and symbology prefix kept
    ("CR", ["Lot-é€\r".encode()], ["Lot-é€"], []),  # printable UTF-8 is fine
    ("CR", [b"A\x01B\rOK\r"], ["OK"], ["junk"]),
    ("CR", [b"A\tB\r"], [], ["junk"]),
    ("CR", [b"A\x7fB\r"], [], ["junk"]),
    ("CR", ["A\u200bB\r".encode()], [], ["junk"]),  # zero-width space is not printable
    ("CR", [b"\xff\xfeAB\rOK\r"], ["OK"], ["undecodable"]),
    ("CR", [b"\xc3", b"\xa9\r"], ["é"], []),  # a UTF-8 sequence split across reads
    ("\\x03", [b"AB\x03CD\x03"], ["AB", "CD"], []),
    ("\\x03", [b"AB\rCD\x03"], [], ["junk"]),  # CR is data (junk) with a custom terminator
    ("\\x03\\x04", [b"AB\x03", b"\x04CD\x03\x04"], ["AB", "CD"], []),
    ("\\x03\\x04", [b"AB\x03CD\x03\x04"], [], ["junk"]),
    ("#", [b"AB#CD#"], ["AB", "CD"], []),
]


@pytest.mark.parametrize(("terminator", "chunks", "lines", "reasons"), SPLIT_CASES)
def test_split(terminator: str, chunks: list[bytes], lines: list[str], reasons: list[str]) -> None:
    splitter = LineSplitter(terminator, max_length=64, allowed_controls=GS)
    assert feed_all(splitter, chunks) == (lines, reasons)


def test_gs_is_junk_unless_allowed() -> None:
    splitter = LineSplitter("CR", max_length=64)
    assert feed_all(splitter, [b"A\x1dB\r"]) == ([], ["junk"])


@pytest.mark.parametrize("chunked", [False, True])
def test_max_length_is_inclusive(chunked: bool) -> None:
    splitter = LineSplitter("CR", max_length=8)
    data = b"12345678\r123456789\rOK\r"
    chunks = [data[i : i + 1] for i in range(len(data))] if chunked else [data]
    assert feed_all(splitter, chunks) == (["12345678", "OK"], ["overlong"])


def test_overlong_line_is_discarded_until_the_next_terminator_with_bounded_memory() -> None:
    splitter = LineSplitter("CR", max_length=16)
    reasons: list[str] = []
    for _ in range(1000):
        split = splitter.feed(b"x" * 1000)
        reasons += [r.reason for r in split.rejections]
        assert splitter.pending <= 16
    assert reasons == ["overlong"]  # one rejection for the whole endless line
    assert feed_all(splitter, [b"still the same line\rNEXT\r"]) == (["NEXT"], [])


def test_overlong_with_a_multibyte_terminator_split_across_reads() -> None:
    splitter = LineSplitter("\\x03\\x04", max_length=4)
    assert feed_all(splitter, [b"123456789\x03", b"\x04OK\x03\x04"]) == (["OK"], ["overlong"])


def test_reset_drops_the_partial_line_and_says_so() -> None:
    splitter = LineSplitter("CR", max_length=64)
    splitter.feed(b"half a bar")
    dropped = splitter.reset()
    assert dropped == Rejection("incomplete", 10, b"half a bar")
    assert splitter.reset() is None
    assert feed_all(splitter, [b"code\r"]) == (["code"], [])


def test_rejection_sample_is_short() -> None:
    split = LineSplitter("CR", max_length=4096).feed(b"\x00" * 4000 + b"\r")
    (rejection,) = split.rejections
    assert rejection.size == 4000
    assert len(rejection.sample) <= 32
    assert "4000 bytes" in rejection.describe()


# --- properties -------------------------------------------------------------------------------

terminators = st.sampled_from(["CR", "LF", "CRLF", "\\x03", "\\x03\\x04"])
printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
barcodes = st.text(alphabet=st.one_of(printable, st.just(GS)), min_size=1, max_size=48).filter(
    lambda s: s.strip() != ""
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=300)
@given(
    terminator=terminators,
    data=st.binary(max_size=4000),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
    max_length=st.integers(min_value=8, max_value=200),
)
def test_random_bytes_never_raise_and_memory_stays_bounded(
    terminator: str, data: bytes, cuts: list[int], max_length: int
) -> None:
    splitter = LineSplitter(terminator, max_length, allowed_controls=GS)
    for chunk in chunked(data, cuts):
        split = splitter.feed(chunk)
        assert all(len(line.encode()) <= max_length for line in split.lines)
        assert splitter.pending <= max_length + len(terminator_bytes(terminator))
    splitter.reset()


@settings(max_examples=200)
@given(
    terminator=terminators,
    data=st.binary(max_size=2000),
    cuts=st.lists(st.integers(min_value=0), max_size=30),
)
def test_chunking_does_not_change_the_outcome(
    terminator: str, data: bytes, cuts: list[int]
) -> None:
    whole = feed_all(LineSplitter(terminator, 32, GS), [data])
    pieces = feed_all(LineSplitter(terminator, 32, GS), chunked(data, cuts))
    assert pieces == whole


@settings(max_examples=300)
@given(
    terminator=terminators,
    items=st.lists(st.tuples(st.binary(max_size=300), barcodes), min_size=1, max_size=20),
    cuts=st.lists(st.integers(min_value=0), max_size=40),
)
def test_valid_barcodes_between_junk_are_all_recovered_in_order(
    terminator: str, items: list[tuple[bytes, str]], cuts: list[int]
) -> None:
    end = terminator_bytes(terminator)
    stream = b"".join(junk + end + code.encode() + end for junk, code in items)
    splitter = LineSplitter(terminator, max_length=64, allowed_controls=GS)
    lines, _ = feed_all(splitter, chunked(stream, cuts))
    remaining = iter(lines)
    # every barcode, in order, among the accepted lines (junk may add lines of its own)
    assert all(any(line == code for line in remaining) for _, code in items)


# --- the rejection log ---------------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_rejections_is_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeMonotonic()
    log = RejectionLog(logging.getLogger("lineside.test.rejections"), "scanner3", 1.0, clock)
    caplog.set_level(logging.WARNING, logger="lineside.test.rejections")
    for _ in range(10_000):
        log.record(Rejection("junk", 10, b"\x00" * 10))
    log.record(Rejection("overlong", 600, b"x" * 32))
    assert len(caplog.records) == 1
    assert "scanner3: rejected junk line (10 bytes)" in caplog.messages[0]
    log.flush()  # the interval is not over yet
    assert len(caplog.records) == 1
    clock.now += 1.5
    log.flush()
    assert len(caplog.records) == 2
    assert "10000 more lines" in caplog.messages[1]
    assert "junk 9999, overlong 1" in caplog.messages[1]
    log.record(Rejection("undecodable", 3, b"\xff\xff\xff"))  # a new burst: detail again
    assert len(caplog.records) == 3
    assert log.total == 10_002


def test_forced_flush_logs_the_open_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeMonotonic()
    log = RejectionLog(logging.getLogger("lineside.test.rejections"), "scanner3", 1.0, clock)
    caplog.set_level(logging.WARNING, logger="lineside.test.rejections")
    for _ in range(3):
        log.record(Rejection("junk", 1, b"\x00"))
    log.flush(force=True)
    assert len(caplog.records) == 2
    assert "rejected 2 more lines (2 bytes)" in caplog.messages[1]
    log.flush(force=True)  # nothing left to say
    assert len(caplog.records) == 2


def test_a_single_rejection_gives_no_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeMonotonic()
    log = RejectionLog(logging.getLogger("lineside.test.rejections"), "doser", 1.0, clock)
    caplog.set_level(logging.WARNING, logger="lineside.test.rejections")
    log.record(Rejection("malformed", 5, b"hello", "(does not match the pattern)"))
    clock.now += 5
    log.flush()
    assert len(caplog.records) == 1
    assert caplog.messages[0].endswith("(does not match the pattern)")


def test_backoff_doubles_up_to_the_cap_and_starts_over_with_fresh_delays() -> None:
    backoff = Backoff(0.5, 3.0)
    delays = backoff.delays()
    assert [next(delays) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert next(backoff.delays()) == 0.5
