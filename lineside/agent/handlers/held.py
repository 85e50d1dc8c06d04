"""Held events: retried when stock or master data arrive, released or discarded by hand."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from lineside.agent.commands import DiscardHeld, Refused, Rejected, ReleaseHeld
from lineside.agent.domain.held import Held, Implausible, Measured, Production
from lineside.agent.handlers.context import Context
from lineside.agent.handlers.production import post_production, produce
from lineside.agent.handlers.readings import post_measured
from lineside.agent.inputs import BadInput, check_quantity
from lineside.agent.ledger.work import Work


def retry_held(ctx: Context, uow: Work, ts: datetime) -> None:
    """Post what waited for stock or master data, oldest first; the rest keeps waiting."""
    for held_id, held in uow.held_events():
        if not isinstance(held, Production) or not held.item:
            continue
        reason = _retry_one(ctx, uow, held, ts)
        if reason is None:
            uow.resolve_held(held_id, "posted", ts)
        else:
            uow.still_held(held_id, reason)


def _retry_one(ctx: Context, uow: Work, production: Production, ts: datetime) -> str | None:
    """Why production still cannot post, or None when it posted now.

    A held event that no longer fits the config (its work center was removed) raises
    Rejected; that must not refuse the receipt or item.put that merely triggered the
    retry, nor be remembered as that command's answer: the event keeps waiting instead.
    """
    try:
        with uow.attempt():
            return post_production(ctx, uow, production, ts, may_hold=False)
    except Rejected as exc:
        return str(exc)


def release_held(ctx: Context, uow: Work, cmd: ReleaseHeld) -> None:
    held = _open_held(uow, cmd.held_id)
    if isinstance(held, Implausible):
        wc = ctx.work_center(held.work_center)
        cause = f"{held.event} released by hand"
        produce(ctx, uow, wc, held.role, int(held.units), held.event, cause, cmd.ts)
    elif isinstance(held, Measured):
        try:
            qty = check_quantity(Decimal(held.qty))
        except BadInput as exc:  # held before quantities were bounded: never postable
            raise Rejected(f"held event {cmd.held_id} cannot post: {exc}; discard it") from None
        post_measured(ctx, uow, held.work_center, held.item, qty, held.event, cmd.ts)
    elif held.item:
        reason = post_production(ctx, uow, held, cmd.ts, may_hold=False)
        if reason is not None:
            # Remembered like every refusal, though the cause may pass (stock arrives):
            # a release asks "post it now", and a later try is a new request.
            raise Refused(f"held event {cmd.held_id} still cannot post: {reason}")
    else:
        raise Refused(
            f"held event {cmd.held_id} names no item: discard it and report the"
            " production again once the work center has an order or item"
        )
    uow.resolve_held(cmd.held_id, "posted", cmd.ts)


def discard_held(ctx: Context, uow: Work, cmd: DiscardHeld) -> None:
    _open_held(uow, cmd.held_id)
    if not cmd.reason.strip():
        raise Rejected("say why the event is discarded (--reason)")
    uow.resolve_held(cmd.held_id, "discarded", cmd.ts, reason=f"discarded: {cmd.reason}")


def _open_held(uow: Work, held_id: int) -> Held:
    found = uow.held(held_id)
    if found is None:
        raise Rejected(f"no held event {held_id}")
    status, held = found
    if status != "held":
        raise Refused(f"held event {held_id} is already {status}")
    return held
