"""Which lots consumption may take and in which order: FIFO or FEFO, never an expired lot,
never one with less shelf life left than the item asks. Pure: the day is passed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from lineside.agent.domain.model import Item, LotBalance

# The alert each reason raises (once per item and lot) and its bit in the ledger's lots row.
PassedOver = Literal["lot_expired", "lot_short_shelf_life"]
ALERT_BIT: dict[PassedOver, int] = {"lot_short_shelf_life": 1, "lot_expired": 2}


@dataclass(frozen=True, slots=True)
class Blocked:
    """A lot with stock that consumption passed over, and why."""

    item: str
    lot: str
    expiry: date
    days_left: int
    reason: PassedOver


def days_left(expiry: date, on: date) -> int:
    """Whole days from on to the expiry date: 0 on the expiry day, negative once expired."""
    return (expiry - on).days


def why_blocked(item: Item, expiry: date | None, on: date) -> PassedOver | None:
    """A lot may be used up to and including its expiry day; after it, it is expired."""
    if expiry is None:
        return None
    left = days_left(expiry, on)
    if left < 0:
        return "lot_expired"
    if item.min_shelf_life_days is not None and Decimal(left) < item.min_shelf_life_days:
        return "lot_short_shelf_life"
    return None


def removal_order(item: Item, lots: Sequence[LotBalance]) -> list[LotBalance]:
    """lots (given oldest first) in the order the item's removal strategy takes them. FEFO:
    earliest expiry first, lots without an expiry after every dated lot; a stable sort
    keeps FIFO order among equal expiries."""
    if item.removal == "fifo":
        return list(lots)
    return sorted(lots, key=lambda b: (b.expiry is None, b.expiry or date.max))


def consumable(
    item: Item, lots: Sequence[LotBalance], on: date | None
) -> tuple[list[LotBalance], list[Blocked]]:
    """The lots consumption may take on day on, in removal order, and the lots with stock it
    passes over. on None checks no dates (only the order)."""
    ordered = removal_order(item, lots)
    if on is None:
        return ordered, []
    usable: list[LotBalance] = []
    blocked: list[Blocked] = []
    for lot in ordered:
        reason = why_blocked(item, lot.expiry, on)
        if reason is None:
            usable.append(lot)
        elif lot.qty > 0 and lot.expiry is not None:
            blocked.append(
                Blocked(item.code, lot.lot, lot.expiry, days_left(lot.expiry, on), reason)
            )
    return usable, blocked
