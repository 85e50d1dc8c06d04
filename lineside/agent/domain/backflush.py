"""The backflush engine: given a BOM, a quantity and stock, the stock moves. Nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from lineside.agent.domain.expiry import Blocked, consumable
from lineside.agent.domain.model import NO_LOT, Flush, Item, LotBalance, MasterData, WorkCenter
from lineside.agent.domain.scrap import reason_of

TxKind = Literal[
    "backflush", "completion", "scrap", "measured", "receipt", "adjustment", "reversal"
]
MAX_PHANTOM_DEPTH = 32


class CannotPost(Exception):
    """The event cannot be posted yet (unknown item, no BOM): hold it, never drop it."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """What one finished unit consumes of one component item."""

    item: str
    qty_per_unit: Decimal
    flush: Flush


@dataclass(frozen=True, slots=True)
class Carry:
    """Cumulative exact quantity and cumulative posted quantity of one component in one bucket.

    Posting round(exact) - posted each time means the total posted after N units is the
    exact total rounded once: no drift however small the completions.
    """

    exact: Decimal = Decimal(0)
    posted: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Move:
    """One stock change, and the journal transaction that records it (qty signed)."""

    kind: TxKind
    item: str
    location: str
    lot: str
    qty: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class Shortage:
    item: str
    location: str
    missing: Decimal


@dataclass(frozen=True)
class ConsumptionPlan:
    moves: tuple[Move, ...]
    carries: Mapping[str, Carry]
    shortages: tuple[Shortage, ...]
    standard_measured: Mapping[str, Decimal]
    blocked: tuple[Blocked, ...] = ()  # lots passed over: expired, or too short a shelf life


def stage_of(role: str) -> str | None:
    """'good' and scrap flush the components without a stage; 'stage:X' flushes stage X."""
    return role.removeprefix("stage:") if role.startswith("stage:") else None


def explode(master: MasterData, item: str, stage: str | None) -> list[Requirement]:
    """Per-unit requirements of item for one stage, phantoms exploded, lines of one item summed."""
    if item not in master.items:
        raise CannotPost(f"unknown item {item!r}")
    bom = master.boms.get(item)
    if bom is None:
        raise CannotPost(f"no BOM for {item!r}")
    totals: dict[tuple[str, Flush], Decimal] = {}
    for comp in bom.components:
        if comp.stage != stage:
            continue
        _add_leaves(master, comp.item, comp.gross_qty / bom.per, comp.flush, totals, 0)
    return [Requirement(code, qty, flush) for (code, flush), qty in totals.items()]


def _add_leaves(
    master: MasterData,
    code: str,
    qty: Decimal,
    flush: Flush,
    totals: dict[tuple[str, Flush], Decimal],
    depth: int,
) -> None:
    item = master.items.get(code)
    if item is None:
        raise CannotPost(f"unknown component item {code!r}")
    if not item.phantom:
        totals[(code, flush)] = totals.get((code, flush), Decimal(0)) + qty
        return
    if depth >= MAX_PHANTOM_DEPTH:
        raise CannotPost(f"phantom {code!r} explodes too deep (a cycle?)")
    bom = master.boms.get(code)
    if bom is None:
        raise CannotPost(f"phantom item {code!r} has no BOM")
    for comp in bom.components:
        leaf_flush: Flush = "measured" if "measured" in (flush, comp.flush) else "standard"
        _add_leaves(
            master, comp.item, qty * comp.gross_qty / bom.per, leaf_flush, totals, depth + 1
        )


def advance(item: Item, carry: Carry, exact_add: Decimal) -> tuple[Decimal, Carry]:
    """The quantity to post now and the new carry, rounding the cumulative total once."""
    exact = carry.exact + exact_add
    posted = item.round(exact)
    return posted - carry.posted, Carry(exact, posted)


def allocate_fifo(
    lots: Sequence[LotBalance], qty: Decimal
) -> tuple[list[tuple[str, Decimal]], Decimal]:
    """Take qty from positive lots in the order given: (lot, taken) pairs, the shortfall."""
    takes: list[tuple[str, Decimal]] = []
    left = qty
    for lot in lots:
        if left <= 0:
            break
        if lot.qty <= 0:
            continue
        take = min(lot.qty, left)
        takes.append((lot.lot, take))
        left -= take
    return takes, max(left, Decimal(0))


def consume(
    item: Item, location: str, qty: Decimal, kind: TxKind, lots: Sequence[LotBalance]
) -> tuple[list[Move], Shortage | None]:
    """Moves that consume qty from lots in their order; what no lot covers goes negative on
    the lot-less row."""
    if qty == 0:
        return [], None
    if qty < 0:  # a negative requirement (a correction) returns stock without a lot
        return [Move(kind, item.code, location, NO_LOT, -qty, -qty * item.cost)], None
    takes, short = allocate_fifo(lots, qty)
    if short > 0:
        takes.append((NO_LOT, short))
    merged: dict[str, Decimal] = {}
    for lot, take in takes:
        merged[lot] = merged.get(lot, Decimal(0)) + take
    moves = [Move(kind, item.code, location, lot, -q, -q * item.cost) for lot, q in merged.items()]
    return moves, (Shortage(item.code, location, short) if short > 0 else None)


def consume_on(
    item: Item,
    location: str,
    qty: Decimal,
    kind: TxKind,
    lots: Sequence[LotBalance],
    on: date | None,
) -> tuple[list[Move], Shortage | None, list[Blocked]]:
    """consume() from the lots the item's removal strategy may take on day on (None: in
    removal order, no date checks), and the lots with stock it passed over (none when
    nothing is consumed)."""
    if qty <= 0:
        return *consume(item, location, qty, kind, lots), []
    usable, blocked = consumable(item, lots, on)
    return *consume(item, location, qty, kind, usable), blocked


def plan_consumption(
    master: MasterData,
    wc: WorkCenter,
    item: str,
    role: str,
    units: int,
    carries: Mapping[str, Carry],
    stock: Mapping[str, Sequence[LotBalance]],
    requirements: Sequence[Requirement] | None = None,
    on: date | None = None,
) -> ConsumptionPlan:
    """What units of item reported under role at wc consume.

    carries and stock are keyed by component item; the returned carries replace them.
    Good and stage units consume with kind backflush, scrapped units with kind scrap.
    Measured components post nothing here: their standard is returned for variance.
    requirements, when given, is explode()'s answer for item and role, computed earlier.
    on is the posting's day: lots expired by then are passed over (None: no date checks).
    """
    kind: TxKind = "scrap" if reason_of(role) is not None else "backflush"
    moves: list[Move] = []
    new_carries: dict[str, Carry] = {}
    shortages: list[Shortage] = []
    standard: dict[str, Decimal] = {}
    blocked: list[Blocked] = []
    if requirements is None:
        requirements = explode(master, item, stage_of(role))
    for req in requirements:
        exact = req.qty_per_unit * units
        if req.flush == "measured":
            standard[req.item] = standard.get(req.item, Decimal(0)) + exact
            continue
        component = master.items[req.item]
        post, new_carries[req.item] = advance(component, carries.get(req.item, Carry()), exact)
        lots = stock.get(req.item, ())
        taken, short, passed = consume_on(component, wc.location, post, kind, lots, on)
        blocked += passed
        moves += taken
        if short is not None:
            shortages.append(short)
    return ConsumptionPlan(tuple(moves), new_carries, tuple(shortages), standard, tuple(blocked))


def completion_move(master: MasterData, wc: WorkCenter, item: str, units: int, lot: str) -> Move:
    """The finished units arriving in line-side stock, valued at standard cost."""
    product = master.items.get(item)
    if product is None:
        raise CannotPost(f"unknown item {item!r}")
    qty = Decimal(units)
    return Move("completion", item, wc.location, lot, qty, qty * product.cost)
