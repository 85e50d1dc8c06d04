"""What a scanned barcode means at the line: a lot to receive, an order to start, or why not.

Pure: no I/O, no clock, no ledger. ``interpret_scan`` never raises; anything it
cannot use comes back as ``Unusable`` with a reason an operator can act on.

Rules, in order:

1. Blank input (also a symbology prefix alone) is rejected as empty.
2. A symbology prefix (``]C1`` GS1-128, ``]d2`` GS1 DataMatrix, ``]Q3`` GS1 QR,
   ``]e0`` GS1 DataBar, …) is taken off first. GS (0x1D) separates variable-length
   fields; leading and trailing GS are ignored.
3. A code starting with the work center's ``order_prefix`` is an order number:
   ``OrderStart`` with the **whole code, prefix kept** (``ORD-4711`` starts order
   ``ORD-4711``), because the prefix is part of the number as printed on the
   traveller and in the ERP. The prefix alone is rejected. When the symbology
   says GS1, the GS1 reading comes first and the prefix only counts if the code
   is not GS1 data.
4. Otherwise the code is parsed as a GS1 element string with ``biip``:

   - a GTIN, (01) or else (02) the GTIN of the contained items on a logistic
     label, makes a ``LotReceipt`` when the GTIN is configured for an item
     (looked up by its 14-digit form), with the lot from (10) (None without one),
     the expiry from (17) and the quantity from, in this order of preference,
     (310n) net weight in kg with n decimals, (30) variable count, (37) count of
     units. ``qty_ai`` says which AI the quantity came from, so the caller can
     check it against the item's unit. A (400) next to a GTIN is the customer's
     order on a supplier label and does not start anything.
   - without a GTIN, (400) starts that order.
   - a bad check digit, an unknown GTIN, a missing or zero quantity, both a (30) and a
     (37) count (which one is meant?), a (10) lot longer than GS1's 20 characters, a
     barcode biip cannot parse: ``Unusable``.
   - a symbology identifier that is not a GS1 one (``]C0`` plain Code 128, ``]A0`` Code
     39): its data is not GS1 element strings, whatever it looks like; ``Unusable``
     (an EAN/UPC's GTIN is a product barcode, rejected as such).

Without GS after a lot, the lot swallows the fields after it, exactly as biip
parses it; the rejection then says that the scanner may not be sending GS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # biip's GS1 tables are large: imported on the first scan, not at start
    from biip.symbology import SymbologyIdentifier

GS = "\x1d"
_SYMBOLOGY = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_QTY_AIS = ("310", "315", "30", "37")  # preference order; 310 matches 3100-3105
# The unit a measure AI states: a label in kg for an item stocked in l is refused.
UNIT_OF_AI = {"310": "kg", "315": "l"}
MAX_ORDER_LENGTH = 64
MAX_LOT_LENGTH = 20  # GS1 General Specifications: AI (10) is X..20
COUNT_AIS = ("30", "37")
# Units an item is measured in, never counted: a count label for one is refused.
MEASURE_UOMS = frozenset({"kg", "g", "t", "l", "ml", "m", "cm", "mm", "m2", "m3"})


@dataclass(frozen=True, slots=True)
class LotReceipt:
    """Stage a lot of an item at the scanner's work center."""

    gtin: str
    item: str
    lot: str | None
    qty: Decimal
    expiry: date | None
    qty_ai: str = ""  # the AI the quantity came from: "3103", "30", "37"


@dataclass(frozen=True, slots=True)
class OrderStart:
    """Start this production order at the scanner's work center."""

    order: str


@dataclass(frozen=True, slots=True)
class Unusable:
    """Not usable; reason says why, in words for the operator and the log."""

    reason: str


ScanMeaning = LotReceipt | OrderStart | Unusable


def interpret_scan(
    data: str, *, gtin_to_item: Mapping[str, str], order_prefix: str | None
) -> ScanMeaning:
    """The meaning of one scan (``Scan.data``), never raising for any input."""
    try:
        return _interpret(data, gtin_to_item, order_prefix)
    except Exception as exc:  # biip or a bad input we did not foresee: still an answer
        return Unusable(f"unparseable barcode: {type(exc).__name__}: {exc}")


def _interpret(data: str, gtin_to_item: Mapping[str, str], order_prefix: str | None) -> ScanMeaning:
    symbology, payload = split_symbology(data)
    if not payload:
        return Unusable("empty scan")
    is_order = bool(order_prefix) and payload.startswith(order_prefix or "")
    gs1_symbol = is_gs1_symbology(symbology)
    if is_order and not gs1_symbol:
        return _order_from_prefix(payload, order_prefix or "")
    if symbology is None and payload.startswith("]"):
        return Unusable(f"unparseable barcode {payload[:40]!r}: unknown symbology identifier")
    # biip picks its parsers by the symbology: ]E0 is an EAN-13, ]C1 a GS1 message
    prefix = symbology.value if symbology is not None else ""
    import biip

    result = biip.parse(prefix + payload)
    if result.gs1_message is not None and symbology is not None and not gs1_symbol:
        if result.gtin is not None and symbology.gs1_symbology is not None:  # an EAN/UPC
            return _gtin_alone(result.gtin.value)
        return Unusable(
            f"{symbology.value} is a {symbology.iso_symbology.name.replace('_', ' ')} symbol"
            " without FNC1, not GS1 data (a GS1-128 label reads ]C1): the label is not a GS1"
            " lot label, or the scanner does not pass FNC1 on"
        )
    if result.gs1_message is None:
        if is_order:  # a GS1 symbol that holds no GS1 data: the prefix still says order
            return _order_from_prefix(payload, order_prefix or "")
        return _not_gs1(result, payload, order_prefix)
    return _from_elements(result, payload, gtin_to_item)


def is_gs1_symbology(symbology: SymbologyIdentifier | None) -> bool:
    """True for symbols that carry GS1 element strings (FNC1 first): ]C1, ]d2, ]Q3, ]e0, …"""
    from biip.symbology import GS1Symbology

    return symbology is not None and symbology.gs1_symbology in GS1Symbology.with_gs1_messages()


def split_symbology(data: str) -> tuple[SymbologyIdentifier | None, str]:
    """The symbology identifier (if biip knows it) and the payload, trimmed of blanks and GS.

    An identifier biip does not know is dropped, so the payload still gets parsed.
    """
    import biip
    from biip.symbology import SymbologyIdentifier

    text = data.strip()
    symbology: SymbologyIdentifier | None = None
    if _SYMBOLOGY.match(text):
        try:
            symbology = SymbologyIdentifier.extract(text)
            text = text[len(symbology.value) :]
        except (biip.ParseError, ValueError):
            text = text[3:]
    # str.strip() counts GS (and the other separators 0x1C-0x1F) as whitespace
    return symbology, text.strip()


def _order_from_prefix(code: str, prefix: str) -> ScanMeaning:
    if len(code) == len(prefix):
        return Unusable(f"order code {code!r} has the prefix but no order number")
    return _order(code)


def _order(order: str) -> ScanMeaning:
    if not order.isprintable():
        return Unusable(f"order number {order!r} contains control characters")
    if len(order) > MAX_ORDER_LENGTH:
        return Unusable(f"order number is longer than {MAX_ORDER_LENGTH} characters")
    return OrderStart(order)


def _not_gs1(result: Any, payload: str, order_prefix: str | None) -> ScanMeaning:
    if result.gtin is not None:
        return _gtin_alone(result.gtin.value)
    if result.gtin_error and "check digit" in result.gtin_error:
        return Unusable(f"bad check digit: {result.gtin_error}")
    why = result.gs1_message_error or "not a GS1 element string"
    too_long = _overlong_lot(payload)
    if too_long is not None:
        return Unusable(
            f"lot longer than {MAX_LOT_LENGTH} characters: (10) runs for {too_long}"
            f" ({payload[:40]!r}): GS1 allows {MAX_LOT_LENGTH}; check the label, or whether"
            " the scanner sends GS after the lot"
        )
    if order_prefix:
        why += f"; and it does not start with the order prefix {order_prefix!r}"
    return Unusable(f"unparseable barcode {payload[:40]!r}: {why}")


def _from_elements(result: Any, payload: str, gtin_to_item: Mapping[str, str]) -> ScanMeaning:
    elements = result.gs1_message.element_strings
    gtin_element = elements.get(ai="01") or elements.get(ai="02")
    if gtin_element is not None:
        return _receipt(elements, gtin_element, payload, gtin_to_item)
    order = elements.get(ai="400")
    if order is not None:
        return _order(order.value)
    if result.gtin is not None:  # a bare EAN/UPC that also happens to read as GS1 AIs
        return _gtin_alone(result.gtin.value)
    found = ", ".join(f"({e.ai.ai})" for e in elements) or "nothing"
    return Unusable(f"neither a lot label (01 GTIN) nor an order (400): found {found}")


def _overlong_lot(payload: str) -> int | None:
    """The length of a (10) lot longer than GS1's 20 characters, walking the element
    strings from the start (biip only says it found no AI after it); None if there is none."""
    from biip.gs1_application_identifiers import GS1ApplicationIdentifier

    rest = payload
    while rest:
        try:
            ai = GS1ApplicationIdentifier.extract(rest)
        except Exception:  # biip's ParseError: not an element string from here on
            return None
        if not ai.separator_required:  # fixed length: "N2+N14" is 2 + 14 characters
            rest = rest[sum(int(n) for n in re.findall(r"[NX](\d+)", ai.format)) :]
            continue
        end = rest.find(GS)
        value = rest[len(ai.ai) : end if end >= 0 else len(rest)]
        if ai.ai == "10" and len(value) > MAX_LOT_LENGTH:
            return len(value)
        if end < 0:
            return None
        rest = rest[end + 1 :]
    return None


def _gtin_alone(gtin: str) -> Unusable:
    return Unusable(
        f"GTIN {gtin} alone has no lot or quantity: scan the GS1 label, not the product barcode"
    )


def _receipt(
    elements: Any, gtin_element: Any, payload: str, gtin_to_item: Mapping[str, str]
) -> ScanMeaning:
    gtin: str = gtin_element.value
    if gtin_element.gtin_error:
        return Unusable(f"bad check digit: {gtin_element.gtin_error}")
    item = gtin_to_item.get(gtin)
    if item is None:
        return Unusable(f"unknown GTIN {gtin}: no item is configured with it")
    lot_element = elements.get(ai="10")
    lot: str | None = lot_element.value if lot_element is not None else None
    quantity = _quantity(elements)
    if quantity is None:
        return Unusable(_no_quantity(lot, payload))
    if isinstance(quantity, Unusable):
        return quantity
    qty, qty_ai = quantity
    if qty <= 0:
        return Unusable(f"quantity ({qty_ai}) is zero")
    expiry_element = elements.get(ai="17")
    expiry: date | None = expiry_element.date if expiry_element is not None else None
    return LotReceipt(gtin=gtin, item=item, lot=lot, qty=qty, expiry=expiry, qty_ai=qty_ai)


def _quantity(elements: Any) -> tuple[Decimal, str] | Unusable | None:
    counts = [ai for ai in COUNT_AIS if elements.get(ai=ai) is not None]
    if len(counts) > 1:  # (30) variable count and (37) count of trade items: which one?
        return Unusable(
            "label has both (30) and (37) counts: ambiguous, which is the quantity?"
            " Receive it by hand"
        )
    for ai in _QTY_AIS:
        element = elements.get(ai=ai)
        if element is None:
            continue
        if element.decimal is not None:
            return Decimal(element.decimal), element.ai.ai
        return Decimal(int(element.value)), element.ai.ai
    return None


def _no_quantity(lot: str | None, payload: str) -> str:
    reason = "no quantity: a lot label needs (30), (37), (310n) net kg or (315n) net litres"
    if lot is not None and GS not in payload:
        reason += f"; the lot {lot!r} may have swallowed it: is the scanner sending GS (FNC1)?"
    return reason
