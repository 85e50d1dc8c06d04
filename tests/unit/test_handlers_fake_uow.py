"""The handlers as plain functions against an in-memory unit of work: no SQLite at all."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest

from lineside.agent.commands import (
    CloseOrder,
    Command,
    Complete,
    CounterReading,
    Receive,
    Refused,
    Rejected,
    ReleaseHeld,
    Reverse,
    StartOrder,
)
from lineside.agent.config import load_text
from lineside.agent.domain.held import Production
from lineside.agent.domain.model import NO_LOT
from lineside.agent.handlers import HANDLERS, Context
from tests.conftest import DEMO_CONFIG
from tests.unit.fake_work import FakeWork

D = Decimal
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def line(on_shortage: Literal["allow", "hold"] = "allow") -> tuple[Context, FakeWork]:
    """The demo line's context (PRESS-3 makes BRKT-100) over an empty in-memory ledger."""
    loaded = load_text(DEMO_CONFIG.read_text(), Path("demo.yaml"))
    ctx, work = Context.of(loaded.config), FakeWork()
    ctx.refresh_from(work)
    press = replace(ctx.master.work_centers["PRESS-3"], on_shortage=on_shortage)
    ctx.master = replace(ctx.master, work_centers={"PRESS-3": press})
    return ctx, work


def run(ctx: Context, work: FakeWork, command: Command) -> list[dict[str, object]]:
    """The command's handler from the table; the transactions it posted."""
    start = len(work.posted)
    HANDLERS[type(command)](ctx, work, command)
    return work.posted[start:]


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def receipt(key: str, item: str, qty: str, lot: str | None = None) -> Receive:
    return Receive(key=key, ts=at(1), item=item, qty=D(qty), location="LINE-3", lot=lot)


def moved(posted: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(t["kind"], t["item"], t["lot"], t["qty"]) for t in posted]


def test_a_completion_posts_the_item_and_backflushes_its_components() -> None:
    ctx, work = line()
    run(ctx, work, receipt("r1", "STEEL-2MM", "10", lot="H1"))
    run(ctx, work, receipt("r2", "PRIMER-A", "1", lot="P1"))
    posted = run(ctx, work, Complete(key="c1", ts=at(2), work_center="PRESS-3", good=2))
    # 0.85 kg x 1.03 (scrap) x 2 = 1.751 kg; the phantom kit's primer 0.01 l x 2
    assert moved(posted) == [
        ("completion", "BRKT-100", None, "2"),
        ("backflush", "STEEL-2MM", "H1", "-1.751"),
        ("backflush", "PRIMER-A", "P1", "-0.020"),
    ]
    assert work.balance("STEEL-2MM", "LINE-3", "H1") == D("8.249")
    assert work.standards[("wc:PRESS-3:BRKT-100", "PAINT-9005")] == D("0.04")  # measured
    assert work.alerts == []


def test_a_counter_reading_is_a_baseline_then_its_delta_is_production() -> None:
    ctx, work = line()
    reading = CounterReading(key="plc3.good", ts=at(1), point="plc3.good", value=100)
    assert run(ctx, work, reading) == []
    assert work.counter_state("plc3.good") == ("100", at(1).isoformat())
    posted = run(ctx, work, replace(reading, ts=at(2), value=103))
    assert moved(posted)[0] == ("completion", "BRKT-100", None, "3")
    assert {a["kind"] for a in work.alerts} == {"negative_stock"}  # nothing was received
    assert work.counter_state("plc3.good") == ("103", at(2).isoformat())


def test_a_receipt_with_a_lot_settles_what_went_negative_before_it() -> None:
    ctx, work = line()
    run(ctx, work, Complete(key="c1", ts=at(1), work_center="PRESS-3", good=2))
    assert work.balance("STEEL-2MM", "LINE-3", NO_LOT) == D("-1.751")
    posted = run(ctx, work, receipt("r1", "STEEL-2MM", "5", lot="H7"))
    assert moved(posted) == [
        ("receipt", "STEEL-2MM", "H7", "5.000"),
        ("adjustment", "STEEL-2MM", "H7", "-1.751"),
        ("adjustment", "STEEL-2MM", None, "1.751"),
    ]
    assert work.balance("STEEL-2MM", "LINE-3", "H7") == D("3.249")
    assert work.balance("STEEL-2MM", "LINE-3", NO_LOT) == 0


def test_an_order_starts_closes_and_is_refused_the_second_time() -> None:
    ctx, work = line()
    start = StartOrder(key="o1", ts=at(1), order="ORD-1", work_center="PRESS-3", item="BRKT-100")
    run(ctx, work, start)
    assert work.active_order("PRESS-3") == ("ORD-1", "BRKT-100")
    with pytest.raises(Refused, match="ORD-1 already exists"):
        run(ctx, work, replace(start, key="o2"))
    run(ctx, work, CloseOrder(key="x1", ts=at(2), order="ORD-1"))
    assert work.active_order("PRESS-3") is None
    with pytest.raises(Refused, match="already closed"):
        run(ctx, work, CloseOrder(key="x2", ts=at(3), order="ORD-1"))


def test_a_held_backflush_posts_when_the_stock_arrives() -> None:
    ctx, work = line(on_shortage="hold")
    posted = run(ctx, work, Complete(key="c1", ts=at(1), work_center="PRESS-3", good=2))
    assert moved(posted) == [("completion", "BRKT-100", None, "2")]  # production never waits
    [(held_id, held)] = work.held_events()
    assert isinstance(held, Production) and not held.with_completion
    assert work.held_rows[held_id]["reason"].startswith("shortage: STEEL-2MM short")
    run(ctx, work, receipt("r1", "STEEL-2MM", "10", lot="H1"))
    assert work.held_events() != [], "still short of primer"
    posted = run(ctx, work, receipt("r2", "PRIMER-A", "1", lot="P1"))
    assert moved(posted) == [
        ("receipt", "PRIMER-A", "P1", "1.000"),
        ("backflush", "STEEL-2MM", "H1", "-1.751"),
        ("backflush", "PRIMER-A", "P1", "-0.020"),
    ]
    assert work.held_events() == [] and work.held_rows[held_id]["status"] == "posted"
    with pytest.raises(Refused, match="already posted"):
        run(ctx, work, ReleaseHeld(key="rel", ts=at(3), held_id=held_id))


def test_a_refusal_changes_nothing_and_says_why() -> None:
    ctx, work = line()
    with pytest.raises(Rejected, match="unknown item 'NOPE'"):
        run(ctx, work, receipt("r1", "NOPE", "1"))
    with pytest.raises(Rejected, match="more decimals than STEEL-2MM allows"):
        run(ctx, work, receipt("r2", "STEEL-2MM", "0.0001"))
    assert work.posted == [] and work.stock == {}
    [tx] = run(ctx, work, receipt("r3", "BOLT-M8", "10"))
    run(ctx, work, Reverse(key="v1", ts=at(2), tx_id=str(tx["id"])))
    assert work.balance("BOLT-M8", "LINE-3", NO_LOT) == 0
    with pytest.raises(Refused, match="already reversed"):
        run(ctx, work, Reverse(key="v2", ts=at(3), tx_id=str(tx["id"])))
