"""Orders: one active order per work center; starting one closes the one before."""

from __future__ import annotations

import logging

from lineside.agent.commands import CloseOrder, Refused, Rejected, StartOrder
from lineside.agent.handlers.context import Context, checked
from lineside.agent.inputs import check_code, check_quantity
from lineside.agent.ledger.work import Work

log = logging.getLogger("lineside.ledger")


def start_order(ctx: Context, uow: Work, cmd: StartOrder) -> None:
    wc = ctx.work_center(cmd.work_center)
    checked(check_code, cmd.order, "order")
    ctx.stocked_item(cmd.item)
    qty = checked(check_quantity, cmd.qty, "qty")
    if qty is not None and qty <= 0:
        raise Rejected("order quantity must be more than 0")
    existing = uow.order(cmd.order)
    if existing is not None:
        raise Refused(
            f"order {cmd.order} already exists ({existing['status']} at {existing['work_center']})"
        )
    active = uow.active_order(wc.code)
    if active is not None:
        uow.close_order(active[0], cmd.ts)
        log.info("order %s closed: %s started at %s", active[0], cmd.order, wc.code)
    uow.start_order(cmd.order, wc.code, cmd.item, qty, cmd.ts)


def close_order(ctx: Context, uow: Work, cmd: CloseOrder) -> None:
    existing = uow.order(cmd.order)
    if existing is None:
        raise Rejected(f"no order {cmd.order!r}")
    if existing["status"] != "active":
        raise Refused(f"order {cmd.order} is already closed")
    uow.close_order(cmd.order, cmd.ts)
