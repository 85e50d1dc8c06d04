"""What a count or a lot's arrival does to the books: pure rules over balances."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lineside.agent.domain.backflush import Move, consume
from lineside.agent.domain.model import NO_LOT, Item, LotBalance


@dataclass(frozen=True, slots=True)
class CountDifference:
    """A stock count against the book: the moves that make the book say what was counted."""

    book: Decimal
    diff: Decimal
    moves: list[Move]


def count_difference(
    item: Item, location: str, lot: str | None, counted: Decimal, lots: list[LotBalance]
) -> CountDifference:
    """lot None counts the item's total at location: a loss comes from the oldest lots
    (FIFO), a gain goes to the lot-less row. A named lot's difference is that lot's."""
    code = NO_LOT if lot is None else lot
    book = sum((b.qty for b in lots if lot is None or b.lot == code), Decimal(0))
    diff = counted - book
    if diff > 0 or (diff < 0 and lot is not None):
        moves = [Move("adjustment", item.code, location, code, diff, diff * item.cost)]
    elif diff < 0:
        moves, _ = consume(item, location, -diff, "adjustment", lots)
    else:
        moves = []
    return CountDifference(book, diff, moves)


def settle_negative(
    item: Item, location: str, lot: str, received: Decimal, lotless: Decimal
) -> tuple[list[Move], str] | None:
    """Stock consumed before its lot was booked in went negative on the lot-less row; the
    lot that arrives is where it physically came from, so it covers that negative first.
    The moves and their cause, or None when the lot-less row is not negative."""
    missing = -lotless
    if missing <= 0:
        return None
    settle = min(received, missing)
    cause = f"settles {item.round(settle)} {item.uom} consumed before lot {lot} was received"
    moves = [
        Move("adjustment", item.code, location, lot, -settle, -settle * item.cost),
        Move("adjustment", item.code, location, NO_LOT, settle, settle * item.cost),
    ]
    return moves, cause
