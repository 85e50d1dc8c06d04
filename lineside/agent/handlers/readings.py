"""Counter and meter readings: the change since the last value, posted with the new one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from lineside.agent.commands import CounterReading, MeterReading, Notice, Rejected
from lineside.agent.domain.backflush import Carry, advance, consume_on
from lineside.agent.domain.counters import CounterDelta, Number, counter_change
from lineside.agent.domain.held import Implausible, Measured
from lineside.agent.handlers.context import (
    Context,
    checked,
    negative_alert,
    passed_over_alerts,
    post_moves,
)
from lineside.agent.handlers.production import produce
from lineside.agent.inputs import check_quantity, decimal_text
from lineside.agent.ledger.store import Posting
from lineside.agent.ledger.work import Work
from lineside.agent.points import CounterPoint, MeterPoint


def counter_reading(ctx: Context, uow: Work, cmd: CounterReading) -> None:
    point = ctx.points.counters.get(cmd.point)
    if point is None:
        raise Rejected(f"point {cmd.point!r} is not a counter of any work center")
    if isinstance(cmd.value, Decimal) and cmd.value != cmd.value.to_integral_value():
        raise Rejected(f"counter {cmd.point} read a fraction: {cmd.value}")
    value = int(cmd.value)
    changed = _change(ctx, uow, cmd, point, value, lambda text: int(Decimal(text)))
    if changed is None:
        return
    last, delta = changed
    event = f"{cmd.point}:{last}->{value}"
    if delta.kind == "reset":
        uow.alert("counter_reset", cmd.ts, point=cmd.point, last=str(last), value=str(value))
    if delta.kind == "implausible":
        held = Implausible(point.work_center, point.role, int(delta.delta), event)
        reason = f"implausible jump of {held.units} units (above max_delta)"
        held_id = uow.hold(event, cmd.ts, held.work_center, reason, held)
        uow.alert(
            "implausible_delta",
            cmd.ts,
            held_id=held_id,
            work_center=held.work_center,
            role=held.role,
            units=held.units,
            event=event,
        )
        return
    if delta.counts:
        wc = ctx.work_center(point.work_center)
        produce(ctx, uow, wc, point.role, int(delta.delta), event, event, cmd.ts)


def meter_reading(ctx: Context, uow: Work, cmd: MeterReading) -> None:
    meter = ctx.points.meters.get(cmd.point)
    if meter is None:
        raise Rejected(f"point {cmd.point!r} is not a meter")
    checked(check_quantity, cmd.value, f"meter {cmd.point} total")
    if cmd.value < 0:
        raise Rejected(
            f"meter {cmd.point} read a negative total {cmd.value}: a bad reading, not consumption"
        )
    changed = _change(ctx, uow, cmd, meter, cmd.value, Decimal)
    if changed is None:
        return
    last, delta = changed
    event = f"{cmd.point}:{last}->{cmd.value}"
    if delta.kind == "reset":
        uow.alert(
            "counter_reset",
            cmd.ts,
            point=cmd.point,
            last=None if last is None else decimal_text(Decimal(last)),
            value=decimal_text(cmd.value),
        )
    if delta.kind == "implausible":
        qty = decimal_text(Decimal(delta.delta))
        held = Measured(meter.work_center, meter.item, qty, event)
        reason = f"implausible meter jump of {delta.delta} (above max_delta)"
        held_id = uow.hold(event, cmd.ts, meter.work_center, reason, held)
        uow.alert(
            "implausible_delta", cmd.ts, held_id=held_id, point=cmd.point, qty=qty, event=event
        )
        return
    if not delta.counts:
        return
    post_measured(ctx, uow, meter.work_center, meter.item, Decimal(delta.delta), event, cmd.ts)


def _change(
    ctx: Context,
    uow: Work,
    cmd: CounterReading | MeterReading,
    point: CounterPoint | MeterPoint,
    value: Number,
    parse: Callable[[str], Number],
) -> tuple[Number | None, CounterDelta] | None:
    """What value means after the point's last one, now saved as its last value; None
    when it is unchanged (nothing is written)."""
    last_text, elapsed_s = _last_reading(ctx, uow, cmd)
    last = None if last_text is None else parse(last_text)
    delta = counter_change(
        last, value, point.modulus, point.max_delta, max_rate=point.max_rate, elapsed_s=elapsed_s
    )
    if delta.kind == "unchanged":
        return None
    uow.save_counter(cmd.point, str(value), cmd.ts)
    return last, delta


def _last_reading(
    ctx: Context, uow: Work, cmd: CounterReading | MeterReading
) -> tuple[str | None, float | None]:
    """The point's last value, and the seconds since it was last read: since the last
    reading of any value this process saw, else since the stored value was written."""
    state = uow.counter_state(cmd.point)
    if state is None:
        return None, None
    value, stored_ts = state
    since = ctx.seen_at.get(cmd.point) or datetime.fromisoformat(stored_ts)
    return value, (cmd.ts - since).total_seconds()


def post_measured(
    ctx: Context,
    uow: Work,
    wc_code: str,
    item_code: str,
    qty: Decimal,
    event: str,
    ts: datetime,
) -> None:
    """qty of item measured at a work center: consumed in the item's removal order (never
    an expired lot), carried at the item's decimals."""
    wc = ctx.work_center(wc_code)
    item = ctx.item(item_code)
    active = uow.active_order(wc.code)
    order_no = active[0] if active else None
    bucket = f"measured:order:{order_no}" if order_no else f"measured:wc:{wc.code}"
    carry = uow.carries(bucket, [item.code]).get(item.code, Carry())
    post, new_carry = advance(item, carry, qty)
    uow.save_carry(bucket, item.code, new_carry)
    lots = uow.lots(item.code, wc.location)
    moves, short, blocked = consume_on(item, wc.location, post, "measured", lots, ts.date())
    posting = Posting(ts, event, event, order_no, wc.code)
    passed_over_alerts(uow, blocked, wc.location, ts, event)
    post_moves(ctx, uow, moves, posting)
    if short is not None:
        negative_alert(uow, item.code, wc.location, ts, event, short.missing)


def notice(ctx: Context, uow: Work, cmd: Notice) -> None:
    """A device's news (down, up, a scan refused): an alert only."""
    uow.alert(cmd.kind, cmd.ts, **cmd.fields)
