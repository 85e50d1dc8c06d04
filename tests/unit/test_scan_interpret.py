"""GS1 scan interpretation, driven by a table: barcode in, meaning out. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lineside.agent.scans import (
    LotReceipt,
    OrderStart,
    ScanMeaning,
    Unusable,
    interpret_scan,
)

GS = "\x1d"
STEEL = "09521234543213"
BOLT = "04012345000016"
PRIMER = "19521234567896"
UNKNOWN = "00000000123457"  # valid check digit, not configured
ITEMS = {STEEL: "STEEL-2MM", BOLT: "BOLT-M8", PRIMER: "PRIMER-A"}


@dataclass(frozen=True)
class Rejects:
    """Expect a Unusable whose reason contains every one of these words."""

    words: tuple[str, ...]

    def __init__(self, *words: str) -> None:
        object.__setattr__(self, "words", words)


def lot(
    gtin: str, item: str, lot_: str | None, qty: str, qty_ai: str, expiry: date | None = None
) -> LotReceipt:
    return LotReceipt(
        gtin=gtin, item=item, lot=lot_, qty=Decimal(qty), expiry=expiry, qty_ai=qty_ai
    )


CASES: list[tuple[str, str, str | None, ScanMeaning | Rejects]] = [
    # (case, barcode, order prefix, expected)
    ("gs1-128 lot, net kg", f"]C101{STEEL}10LOT42{GS}3103000500", "ORD-",
     lot(STEEL, "STEEL-2MM", "LOT42", "0.500", "3103")),
    ("no symbology prefix", f"01{STEEL}10LOT42{GS}3103000500", "ORD-",
     lot(STEEL, "STEEL-2MM", "LOT42", "0.500", "3103")),
    ("datamatrix, count, expiry", f"]d201{BOLT}1726123110B-7{GS}3025", "ORD-",
     lot(BOLT, "BOLT-M8", "B-7", "25", "30", date(2026, 12, 31))),
    ("expiry day 00 is the month's last", f"]d201{BOLT}1727020010B-7{GS}3025", None,
     lot(BOLT, "BOLT-M8", "B-7", "25", "30", date(2027, 2, 28))),
    ("qr, count of units, GS after fixed fields too", f"]Q301{PRIMER}{GS}10L9{GS}3712", None,
     lot(PRIMER, "PRIMER-A", "L9", "12", "37")),
    ("databar, lot last needs no GS", f"]e001{STEEL}3103001250{GS}10X1", None,
     lot(STEEL, "STEEL-2MM", "X1", "1.250", "3103")),
    ("net kg, no decimals", f"]C101{STEEL}3100000012{GS}10A", None,
     lot(STEEL, "STEEL-2MM", "A", "12", "3100")),
    ("no lot", f"]C101{STEEL}305", None, lot(STEEL, "STEEL-2MM", None, "5", "30")),
    ("net kg wins over count", f"]C101{STEEL}3012{GS}3103000500{GS}10L", None,
     lot(STEEL, "STEEL-2MM", "L", "0.500", "3103")),
    ("leading and trailing GS", f"]C1{GS}01{STEEL}3103001250{GS}", None,
     lot(STEEL, "STEEL-2MM", None, "1.250", "3103")),
    ("logistic label: content GTIN (02) and count (37)", f"]C102{STEEL}{GS}3712{GS}10L1", None,
     lot(STEEL, "STEEL-2MM", "L1", "12", "37")),
    ("supplier label: (400) next to a GTIN is not an order start",
     f"]C101{STEEL}10L1{GS}3710{GS}400PO-1", "ORD-", lot(STEEL, "STEEL-2MM", "L1", "10", "37")),
    ("surrounding blanks", f"  ]C101{STEEL}3103000500 ", None,
     lot(STEEL, "STEEL-2MM", None, "0.500", "3103")),
    # orders
    ("order from (400)", "]C1400ORD-4711", "ORD-", OrderStart("ORD-4711")),
    ("order from (400) without prefix config", "]C1400123456", None, OrderStart("123456")),
    ("order prefix kept", "ORD-4711", "ORD-", OrderStart("ORD-4711")),
    ("order prefix, code 128", "]C0ORD-4711", "ORD-", OrderStart("ORD-4711")),
    ("order prefix, code 39", "]A0ORD-4711", "ORD-", OrderStart("ORD-4711")),
    ("order prefix in a GS1 symbol without GS1 data", "]Q3ORD-4711", "ORD-",
     OrderStart("ORD-4711")),
    ("order prefix, blanks", " ORD-4711 ", "ORD-", OrderStart("ORD-4711")),
    ("prefix alone", "ORD-", "ORD-", Rejects("prefix", "no order number")),
    ("prefix not configured", "ORD-4711", None, Rejects("unparseable")),
    ("other prefix", "PO-4711", "ORD-", Rejects("unparseable", "order prefix 'ORD-'")),
    ("order with control characters", f"ORD-1{GS}2", "ORD-", Rejects("control characters")),
    ("overlong order", "ORD-" + "9" * 80, "ORD-", Rejects("longer than")),
    # rejections
    ("bad check digit", f"]C10109521234543214{GS}3710", None, Rejects("check digit")),
    ("bad check digit, no symbology", "0109521234543212", None, Rejects("check digit")),
    ("unknown GTIN", f"]C101{UNKNOWN}3710{GS}10L", None, Rejects("unknown GTIN", UNKNOWN)),
    ("no quantity", f"]C101{STEEL}10LOT42", None, Rejects("no quantity")),
    ("lot without GS swallows the quantity", f"01{STEEL}10LOT423103000500", None,
     Rejects("no quantity", "swallowed", "LOT423103000500")),
    ("zero quantity", f"]C101{STEEL}3103000000", None, Rejects("zero")),
    ("zero count", f"]C101{STEEL}300", None, Rejects("zero")),
    ("bad date", f"]C101{STEEL}17251399{GS}3710", None, Rejects("unparseable", "(17)")),
    ("bare EAN-13 with symbology", "]E09521234543213", None, Rejects("alone", "GS1 label")),
    ("bare EAN-13", "9521234543213", None, Rejects("alone")),
    ("serial number only", "]C121ABC", None, Rejects("neither", "(21)")),
    ("text", "hello world", None, Rejects("unparseable")),
    ("unknown symbology letter", "]J1hello", None, Rejects("unparseable")),
    ("a bracket alone", "]", None, Rejects("unparseable")),
    ("short bracket", "]x", "ORD-", Rejects("unparseable")),
    ("empty", "", "ORD-", Rejects("empty")),
    ("blank", "   ", "ORD-", Rejects("empty")),
    ("symbology alone", "]C1", "ORD-", Rejects("empty")),
    ("both counts, (30) and (37): ambiguous", f"]C101{BOLT}10L{GS}3012{GS}3712", None,
     Rejects("both (30) and (37)", "ambiguous")),
    ("plain Code 128 (]C0) is not GS1", f"]C001{STEEL}10L{GS}3712", None,
     Rejects("]C0", "not GS1 data")),
    ("a 25-character lot", f"]C101{STEEL}10{'A' * 25}{GS}3712", None,
     Rejects("lot longer than 20 characters", "runs for 25")),
    ("a 20-character lot is fine", f"]C101{STEEL}10{'A' * 20}{GS}3712", None,
     lot(STEEL, "STEEL-2MM", "A" * 20, "12", "37")),
    ("GS alone", GS, None, Rejects("empty")),
]


@pytest.mark.parametrize(
    ("barcode", "prefix", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_interpret(barcode: str, prefix: str | None, expected: ScanMeaning | Rejects) -> None:
    meaning = interpret_scan(barcode, gtin_to_item=ITEMS, order_prefix=prefix)
    if isinstance(expected, Rejects):
        assert isinstance(meaning, Unusable), meaning
        for word in expected.words:
            assert word in meaning.reason
    else:
        assert meaning == expected


def test_quantities_are_decimals() -> None:
    meaning = interpret_scan(f"01{STEEL}3102012345", gtin_to_item=ITEMS, order_prefix=None)
    assert isinstance(meaning, LotReceipt)
    assert type(meaning.qty) is Decimal
    assert meaning.qty == Decimal("123.45")


def test_meanings_are_frozen() -> None:
    meaning = interpret_scan("ORD-1", gtin_to_item=ITEMS, order_prefix="ORD-")
    with pytest.raises(AttributeError):
        meaning.order = "other"  # type: ignore[misc,union-attr]


# --- never raises -------------------------------------------------------------------------------

MEANINGS = (LotReceipt, OrderStart, Unusable)
gs1_fragments = st.sampled_from(
    ["]C1", "]d2", "]Q3", "]e0", "]E0", "]", "01", STEEL, "10", "17", "3103", "30", "37", "400",
     "02", "00", "21", "91", GS, "ORD-", "0", "9", "LOT", " ", "\r", "é"]
)


@settings(max_examples=500)
@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    assert isinstance(interpret_scan(text, gtin_to_item=ITEMS, order_prefix="ORD-"), MEANINGS)


@settings(max_examples=500)
@given(st.lists(gs1_fragments, max_size=12).map("".join), st.sampled_from([None, "ORD-", "0"]))
def test_gs1_like_text_never_raises(text: str, prefix: str | None) -> None:
    assert isinstance(interpret_scan(text, gtin_to_item=ITEMS, order_prefix=prefix), MEANINGS)


@settings(max_examples=200)
@given(
    lot_=st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-", min_size=1, max_size=20),
    grams=st.integers(min_value=1, max_value=999_999),
)
def test_any_lot_and_weight_round_trips(lot_: str, grams: int) -> None:
    barcode = f"]C101{STEEL}10{lot_}{GS}3103{grams:06d}"
    meaning = interpret_scan(barcode, gtin_to_item=ITEMS, order_prefix=None)
    assert meaning == lot(STEEL, "STEEL-2MM", lot_, str(Decimal(grams) / 1000), "3103")
