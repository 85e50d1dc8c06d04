"""What a device event means for the ledger: a pure mapping from readings and scans to commands."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from lineside.agent.commands import Command, CounterReading, MeterReading, Receive, StartOrder
from lineside.agent.points import PointMap
from lineside.agent.scans import (
    COUNT_AIS,
    MEASURE_UOMS,
    UNIT_OF_AI,
    LotReceipt,
    OrderStart,
    Unusable,
    interpret_scan,
)
from lineside.drivers.base import Reading, Scan


@dataclass(frozen=True, slots=True)
class ScanPlace:
    """Where a scanner stands: its work center's code, location, default item, order prefix."""

    work_center: str
    location: str
    item: str | None
    order_prefix: str | None


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event that means nothing to post, and why (for the log, quietly)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ScanRejected:
    """A scan that becomes no command, and why: logged and alerted (scan_rejected)."""

    kind: str
    reason: str
    device: str
    data: str


def reading_command(reading: Reading, points: PointMap) -> Command | Ignored:
    """A fresh value of a counter or meter point; a failed read is never a value."""
    ref = f"{reading.device}.{reading.point}"
    if not reading.ok or reading.value is None:
        return Ignored(f"{ref}: failed read ({reading.error or 'no value'})")
    if ref in points.counters:
        return CounterReading(key=ref, ts=reading.ts, point=ref, value=reading.value)
    if ref in points.meters:
        return MeterReading(key=ref, ts=reading.ts, point=ref, value=Decimal(reading.value))
    return Ignored(f"{ref}: not a counter or meter point")


def scan_command(
    scan: Scan,
    place: ScanPlace | None,
    gtin_to_item: Mapping[str, str],
    uoms: Mapping[str, str],
    seq: int,
) -> Command | ScanRejected:
    """A GS1 lot label stages a receipt; an order code starts the order at the work center.

    seq numbers the scans of this process, so that two identical labels read at the same
    instant (a batch scanner emptying its memory) are two receipts, not one.
    """
    if place is None:
        return _rejected(scan, "scanner has no work center")
    meaning = interpret_scan(scan.data, gtin_to_item=gtin_to_item, order_prefix=place.order_prefix)
    key = f"scan:{scan.device}:{scan.ts.isoformat()}:{seq}"
    if isinstance(meaning, LotReceipt):
        problem = _unit_problem(meaning, uoms.get(meaning.item))
        if problem is not None:
            return _rejected(scan, problem)
        return Receive(
            key=key,
            ts=scan.ts,
            item=meaning.item,
            qty=meaning.qty,
            lot=meaning.lot,
            location=place.location,
            expiry=meaning.expiry,
            cause=f"scan at {scan.device}",
        )
    if isinstance(meaning, OrderStart):
        return _order_start(key, scan, place, meaning)
    assert isinstance(meaning, Unusable)
    return _rejected(scan, meaning.reason)


def _rejected(scan: Scan, reason: str) -> ScanRejected:
    return ScanRejected("scan_rejected", reason, scan.device, scan.data)


def _unit_problem(label: LotReceipt, uom: str | None) -> str | None:
    """Why a label's quantity cannot be the item's (another unit, a count of a measure)."""
    unit = UNIT_OF_AI.get(label.qty_ai[:3])
    if unit is not None and uom != unit:
        return (
            f"label gives the quantity in {unit} ({label.qty_ai}) but {label.item}"
            f" is stocked in {uom!r}"
        )
    if label.qty_ai in COUNT_AIS and uom in MEASURE_UOMS:
        return (
            f"label gives a count of units ({label.qty_ai}) but {label.item} is"
            f" stocked in {uom!r}: scan a net quantity label ((310n) kg, (315n) l) or"
            " receive it by hand"
        )
    return None


def _order_start(
    key: str, scan: Scan, place: ScanPlace, meaning: OrderStart
) -> Command | ScanRejected:
    """A scanned order number carries no item: the order makes the work center's item."""
    if place.item is None:
        return _rejected(
            scan,
            f"order {meaning.order} scanned, but work center {place.work_center} has no"
            " default item: start it with `lineside order start` or order.start",
        )
    return StartOrder(
        key=key,
        ts=scan.ts,
        order=meaning.order,
        work_center=place.work_center,
        item=place.item,
        cause=f"scan at {scan.device}",
    )
