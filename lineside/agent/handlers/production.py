"""Production: a completion reported by hand, and what every counted unit posts."""

from __future__ import annotations

from datetime import datetime

from lineside.agent.commands import Complete, Rejected
from lineside.agent.domain.backflush import (
    CannotPost,
    Move,
    Requirement,
    completion_move,
    explode,
    plan_consumption,
    stage_of,
)
from lineside.agent.domain.held import Production
from lineside.agent.domain.model import NO_LOT, WorkCenter
from lineside.agent.domain.scrap import UNSPECIFIED, reason_of, reason_problem, scrap_role
from lineside.agent.handlers.context import (
    Context,
    negative_alert,
    passed_over_alerts,
    post_moves,
)
from lineside.agent.ledger.store import Posting
from lineside.agent.ledger.work import Work


def complete(ctx: Context, uow: Work, cmd: Complete) -> None:
    wc = ctx.work_center(cmd.work_center)
    if cmd.good < 0 or cmd.scrap < 0:
        raise Rejected("good and scrap must be 0 or more")
    if cmd.stage is not None and cmd.stage not in wc.stages:
        raise Rejected(f"work center {wc.code} has no stage {cmd.stage!r}")
    if cmd.stage is not None and cmd.scrap:
        raise Rejected(
            "scrap is reported without --stage: scrapped units consume the"
            " components of the good counter"
        )
    scrap_as = scrap_role(_reason(ctx, cmd))
    cause = cmd.cause or cmd.key
    if cmd.stage is not None:
        produce(ctx, uow, wc, f"stage:{cmd.stage}", cmd.good, cmd.key, cause, cmd.ts)
        return
    produce(ctx, uow, wc, "good", cmd.good, cmd.key, cause, cmd.ts)
    produce(ctx, uow, wc, scrap_as, cmd.scrap, cmd.key, cause, cmd.ts)


def _reason(ctx: Context, cmd: Complete) -> str:
    """The scrapped units' reason: the one given, if the catalogue knows it; else unspecified."""
    if cmd.reason is None:
        return UNSPECIFIED
    if not cmd.scrap:
        raise Rejected(f"reason {cmd.reason!r} is for scrapped units, and none are reported")
    problem = reason_problem(cmd.reason, ctx.config.scrap_reasons)
    if problem is not None:
        raise Rejected(problem)
    return cmd.reason


def produce(
    ctx: Context,
    uow: Work,
    wc: WorkCenter,
    role: str,
    units: int,
    event: str,
    cause: str,
    ts: datetime,
) -> None:
    """units made under role: posted against the active order or the default item."""
    if units == 0:
        return
    active = uow.active_order(wc.code)
    order_no, item = active if active else (None, wc.item)
    if item is None:
        production = Production(wc.code, "", role, units, None, event, cause, role == "good")
        hold(uow, production, "no active order and no default item", ts)
        return
    production = Production(wc.code, item, role, units, order_no, event, cause, role == "good")
    post_production(ctx, uow, production, ts, may_hold=True)


def post_production(
    ctx: Context, uow: Work, p: Production, ts: datetime, *, may_hold: bool
) -> str | None:
    """Post p, or return why it must wait (and hold it when may_hold)."""
    wc = ctx.work_center(p.work_center)
    master = ctx.master
    posting = Posting(ts, p.event, p.cause, p.order_no, p.work_center, reason=reason_of(p.role))
    try:
        completion = (
            completion_move(master, wc, p.item, p.units, p.order_no or NO_LOT)
            if p.with_completion
            else None
        )
    except CannotPost as exc:  # the finished item itself is unknown: all of it waits
        return hold(uow, p, str(exc), ts) if may_hold else str(exc)
    try:
        requirements, components = _explosion(ctx, p.item, p.role)
        stock = uow.lots_of(components, wc.location) if components else {}
        carries = uow.carries(p.bucket, components)
        plan = plan_consumption(
            master, wc, p.item, p.role, p.units, carries, stock, requirements, on=ts.date()
        )
    except CannotPost as exc:
        return _wait(ctx, uow, p, completion, posting, str(exc), may_hold)
    passed_over_alerts(uow, plan.blocked, wc.location, ts, p.event)
    if plan.shortages and wc.on_shortage == "hold":
        missing = ", ".join(f"{s.item} short {s.missing}" for s in plan.shortages)
        return _wait(ctx, uow, p, completion, posting, f"shortage: {missing}", may_hold)
    moves = [completion, *plan.moves] if completion is not None else list(plan.moves)
    post_moves(ctx, uow, moves, posting)
    uow.save_carries(p.bucket, dict(plan.carries))
    for code, qty in plan.standard_measured.items():
        uow.add_standard(p.bucket, code, qty, p.order_no, p.work_center)
    for short in plan.shortages:
        negative_alert(uow, short.item, short.location, ts, p.event, short.missing)
    return None


def _wait(
    ctx: Context,
    uow: Work,
    p: Production,
    completion: Move | None,
    posting: Posting,
    reason: str,
    may_hold: bool,
) -> str:
    """The backflush waits; the completion does not (production is never blocked)."""
    if not may_hold:
        return reason
    if completion is not None:
        post_moves(ctx, uow, [completion], posting)
        p = p.without_completion()
    return hold(uow, p, reason, posting.ts)


def _explosion(ctx: Context, item: str, role: str) -> tuple[list[Requirement], list[str]]:
    """explode() and the stocked items it touches, remembered until master data change."""
    key = (item, role)
    cached = ctx.explosions.get(key)
    if cached is None:
        requirements = explode(ctx.master, item, stage_of(role))
        cached = ctx.explosions[key] = (requirements, [r.item for r in requirements])
    return cached


def hold(uow: Work, p: Production, reason: str, ts: datetime) -> str:
    """Keep p for a retry (or a person); returns the reason."""
    held_id = uow.hold(f"{p.event}/{p.role}", ts, p.work_center, reason, p)
    uow.alert(
        "held",
        ts,
        held_id=held_id,
        work_center=p.work_center,
        item=p.item or None,
        units=p.units,
        role=p.role,
        reason=reason,
    )
    return reason
