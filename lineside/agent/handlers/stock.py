"""Stock: receipts, counts and reversals. Each may let a held event post (retry_held)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from lineside.agent.commands import Count, Receive, Refused, Rejected, Reverse
from lineside.agent.domain.backflush import Move
from lineside.agent.domain.model import NO_LOT
from lineside.agent.domain.stock import count_difference, settle_negative
from lineside.agent.handlers.context import Context, checked, lot_code, post_moves, quantity
from lineside.agent.handlers.held import retry_held
from lineside.agent.inputs import check_code, decimal_text
from lineside.agent.ledger.store import Posting, iso
from lineside.agent.ledger.work import Work


def receive(ctx: Context, uow: Work, cmd: Receive) -> None:
    item = ctx.stocked_item(cmd.item)
    qty = quantity(item, cmd.qty, positive=True)
    ctx.location(cmd.location)
    lot = lot_code(checked(check_code, cmd.lot, "lot"))
    if cmd.expiry is not None:
        _date_lot(uow, item.code, lot, cmd.expiry)
    move = Move("receipt", item.code, cmd.location, lot, qty, qty * item.cost)
    post_moves(ctx, uow, [move], Posting(cmd.ts, cmd.key, cmd.cause or cmd.key))
    if lot != NO_LOT:
        lotless = uow.balance(item.code, cmd.location, NO_LOT)
        settled = settle_negative(item, cmd.location, lot, qty, lotless)
        if settled is not None:
            moves, cause = settled
            post_moves(ctx, uow, moves, Posting(cmd.ts, cmd.key, cause))
    retry_held(ctx, uow, cmd.ts)


def _date_lot(uow: Work, item: str, lot: str, expiry: date) -> None:
    """A lot has one expiry: the first one given stays, a different one is refused (a
    mislabelled delivery is a person's question, not a silent overwrite)."""
    if lot == NO_LOT:
        raise Rejected("an expiry needs a lot: stock without a lot has no expiry")
    known = uow.lot_expiry(item, lot)
    if known is None:
        uow.set_lot_expiry(item, lot, expiry)
    elif known != expiry:
        raise Refused(
            f"lot {lot} of {item} expires {known.isoformat()}, not {expiry.isoformat()}:"
            " receive it under another lot, or correct the label"
        )


def count(ctx: Context, uow: Work, cmd: Count) -> None:
    item = ctx.stocked_item(cmd.item)
    counted = quantity(item, cmd.qty, positive=False)
    if counted < 0:
        raise Rejected("a counted quantity cannot be negative")
    ctx.location(cmd.location)
    lots = uow.lots(item.code, cmd.location)
    lot = checked(check_code, cmd.lot, "lot")
    found = count_difference(item, cmd.location, lot, counted, lots)
    posting = Posting(cmd.ts, cmd.key, cmd.cause or f"count {cmd.key}")
    post_moves(ctx, uow, found.moves, posting)
    uow.record_count(
        {
            "ts": iso(cmd.ts),
            "item": item.code,
            "location": cmd.location,
            "lot": cmd.lot,
            "book": decimal_text(found.book),
            "counted": decimal_text(counted),
            "diff": decimal_text(found.diff),
            "value": decimal_text(found.diff * item.cost),
            "event": cmd.key,
        }
    )
    retry_held(ctx, uow, cmd.ts)


def reverse(ctx: Context, uow: Work, cmd: Reverse) -> None:
    tx = uow.transaction(cmd.tx_id)
    if tx is None:
        raise Rejected(f"no transaction {cmd.tx_id!r}")
    if tx["kind"] == "reversal":
        raise Refused(f"{cmd.tx_id} is itself a reversal and cannot be reversed")
    done = uow.reversal_of(cmd.tx_id)
    if done is not None:
        raise Refused(f"{cmd.tx_id} was already reversed by {done}")
    qty, cost = -Decimal(tx["qty"]), -Decimal(tx["cost"])
    move = Move("reversal", tx["item"], tx["location"], tx["lot"], qty, cost)
    posting = Posting(
        cmd.ts,
        cmd.key,
        cmd.cause or f"reversal of {cmd.tx_id}",
        tx["order_no"],
        tx["work_center"],
        reverses=cmd.tx_id,
        reason=tx.get("reason"),
    )
    uow.post(move, tx["uom"], posting)
    retry_held(ctx, uow, cmd.ts)
