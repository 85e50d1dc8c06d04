"""Lot expiry, pure: FEFO order, what is expired on a day, shelf life, and what a posting
takes (numbers worked out by hand in each test)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.agent.commands import Receive
from lineside.agent.config import load_text
from lineside.agent.domain import model
from lineside.agent.domain.backflush import consume_on, plan_consumption
from lineside.agent.domain.expiry import Blocked, consumable, removal_order, why_blocked
from lineside.agent.domain.model import NO_LOT, Item, LotBalance
from lineside.agent.handlers import Context
from lineside.agent.handlers.readings import post_measured
from lineside.agent.inputs import BadInput, parse_day
from lineside.agent.interpret import ScanPlace, scan_command
from lineside.agent.scans import LotReceipt, interpret_scan
from lineside.agent.sync.commands_in import CommandParser
from lineside.drivers.base import Scan
from tests.conftest import DEMO_CONFIG
from tests.unit.fake_work import FakeWork

D = Decimal
TODAY = date(2026, 12, 4)
FEFO = Item("SEAL-7", "ea", 0, D("0.50"), removal="fefo")
FIFO = Item("SEAL-7", "ea", 0, D("0.50"))
# received in this order (FIFO order): C first, then A, then B
C = LotBalance("C", D(4), date(2026, 12, 3))  # expired yesterday
A = LotBalance("A", D(5), date(2027, 1, 10))
B = LotBalance("B", D(3), date(2026, 12, 20))
UNDATED = LotBalance("U", D(2))


def test_fefo_takes_the_earliest_expiry_first_and_undated_lots_last() -> None:
    assert [b.lot for b in removal_order(FEFO, [UNDATED, C, A, B])] == ["C", "B", "A", "U"]
    assert [b.lot for b in removal_order(FIFO, [UNDATED, C, A, B])] == ["U", "C", "A", "B"]


def test_equal_expiries_keep_fifo_order() -> None:
    first, second = LotBalance("L1", D(1), B.expiry), LotBalance("L2", D(1), B.expiry)
    assert [b.lot for b in removal_order(FEFO, [first, A, second])] == ["L1", "L2", "A"]


def test_a_lot_is_usable_through_its_expiry_day_and_expired_the_day_after() -> None:
    assert why_blocked(FEFO, TODAY, TODAY) is None
    assert why_blocked(FEFO, date(2026, 12, 3), TODAY) == "lot_expired"
    assert why_blocked(FEFO, None, TODAY) is None


def test_min_shelf_life_blocks_a_lot_that_expires_too_soon() -> None:
    picky = Item("SEAL-7", "ea", min_shelf_life_days=D(16))
    # 2026-12-20 - 2026-12-04 = 16 days left: enough; 15 days (2026-12-19) is not
    assert why_blocked(picky, date(2026, 12, 20), TODAY) is None
    assert why_blocked(picky, date(2026, 12, 19), TODAY) == "lot_short_shelf_life"
    half = Item("SEAL-7", "ea", min_shelf_life_days=D("15.5"))
    assert why_blocked(half, date(2026, 12, 19), TODAY) == "lot_short_shelf_life"


def test_fefo_across_three_lots_one_expired() -> None:
    # 6 needed: C (expired) is passed over; B (2026-12-20) gives 3, A (2027-01-10) 3 of 5
    moves, short, blocked = consume_on(FEFO, "LINE-3", D(6), "backflush", [C, A, B], TODAY)
    assert [(m.lot, m.qty, m.cost) for m in moves] == [
        ("B", D(-3), D("-1.50")),  # 3 x 0.50
        ("A", D(-3), D("-1.50")),
    ]
    assert short is None
    assert blocked == [Blocked("SEAL-7", "C", date(2026, 12, 3), -1, "lot_expired")]


def test_fifo_is_unchanged_when_nothing_is_expired() -> None:
    # FIFO takes arrival order: A 5, then B 1 (of 3); no date stops it
    moves, short, blocked = consume_on(FIFO, "LINE-3", D(6), "backflush", [A, B], TODAY)
    assert [(m.lot, m.qty) for m in moves] == [("A", D(-5)), ("B", D(-1))]
    assert short is None and blocked == []


def test_what_no_usable_lot_covers_goes_short() -> None:
    # 10 needed: B 3 + A 5 = 8 usable, C's 4 expired: 2 short on the lot-less row
    moves, short, blocked = consume_on(FEFO, "LINE-3", D(10), "backflush", [C, A, B], TODAY)
    assert [(m.lot, m.qty) for m in moves] == [("B", D(-3)), ("A", D(-5)), (NO_LOT, D(-2))]
    assert short is not None and short.missing == D(2)
    assert [b.lot for b in blocked] == ["C"]


def test_nothing_consumed_passes_over_nothing() -> None:
    assert consume_on(FEFO, "LINE-3", D(0), "backflush", [C], TODAY) == ([], None, [])
    # a used-up expired lot is not worth an alert
    assert consumable(FEFO, [LotBalance("C", D(0), C.expiry)], TODAY) == ([], [])


def test_plan_consumption_passes_the_posting_day_to_each_component() -> None:
    items = {"KIT": Item("KIT", "ea"), "SEAL-7": FEFO}
    boms = {"KIT": model.Bom("KIT", D(1), (model.Component("SEAL-7", D(2)),))}
    wc = model.WorkCenter("PACK-1", "LINE-3", "KIT")
    master = model.MasterData(items, boms, {"PACK-1": wc})
    stock = {"SEAL-7": [C, A, B]}
    # 3 kits x 2 seals = 6: B 3, A 3, C expired
    plan = plan_consumption(master, wc, "KIT", "good", 3, {}, stock, on=TODAY)
    assert [(m.lot, m.qty) for m in plan.moves] == [("B", D(-3)), ("A", D(-3))]
    assert [b.lot for b in plan.blocked] == ["C"]
    # without a day: FEFO order only, so the expired C (earliest) is taken first
    undated = plan_consumption(master, wc, "KIT", "good", 3, {}, stock)
    assert [(m.lot, m.qty) for m in undated.moves] == [("C", D(-4)), ("B", D(-2))]


def test_gs1_expiry_day_00_is_the_last_day_of_the_month() -> None:
    gtin = "09521234543213"
    meaning = interpret_scan(
        f"01{gtin}17270200" + "10LOT-9\x1d37" + "12",
        gtin_to_item={gtin: "SEAL-7"},
        order_prefix=None,
    )
    assert isinstance(meaning, LotReceipt)
    assert meaning.expiry == date(2027, 2, 28)  # February 2027 has 28 days
    leap = interpret_scan(
        f"01{gtin}17280200" + "10L\x1d3712", gtin_to_item={gtin: "S"}, order_prefix=None
    )
    assert isinstance(leap, LotReceipt) and leap.expiry == date(2028, 2, 29)


@pytest.mark.parametrize(
    ("text", "message"),
    [("2027-02-30", "not a day of the calendar"), ("27-02-01", "not a date"), ("", "not a date")],
)
def test_a_bad_expiry_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_day(text)


def test_the_mqtt_receipt_carries_the_expiry() -> None:
    now = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
    parser = CommandParser(lambda: now)
    body = b'{"request_id": "r", "item": "SEAL-7", "qty": "5", "location": "L", "lot": "A",'
    parsed = parser.parse("receipt", body + b' "expiry": "2027-01-10"}')
    assert parsed.command == Receive(
        key="mqtt:r", ts=now, item="SEAL-7", qty=D(5), location="L", lot="A", expiry=A.expiry
    )
    bad = parser.parse("receipt", body + b' "expiry": "2027-13-01"}')
    assert bad.command is None and "expiry: '2027-13-01' is not a day" in (bad.error or "")
    loose = parser.parse("receipt", body + b' "expiry": "10/01/2027"}')
    assert loose.command is None and "expiry" in (loose.error or "")


def test_measured_consumption_passes_over_an_expired_lot_once() -> None:
    ctx, work = Context.of(load_text(DEMO_CONFIG.read_text(), Path("demo.yaml")).config), FakeWork()
    ctx.refresh_from(work)
    paint = replace(ctx.master.items["PAINT-9005"], removal="fefo")
    ctx.master = replace(ctx.master, items={**ctx.master.items, "PAINT-9005": paint})
    work.stock[("PAINT-9005", "LINE-3", "OLD")] = D("5.00")
    work.stock[("PAINT-9005", "LINE-3", "NEW")] = D("5.00")
    work.expiries[("PAINT-9005", "OLD")] = date(2026, 12, 3)
    work.expiries[("PAINT-9005", "NEW")] = date(2027, 6, 30)
    at = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
    # 1.25 l measured, then 0.50 l: both from NEW (5.00 - 1.25 - 0.50 = 3.25); OLD keeps 5.00
    post_measured(ctx, work, "PRESS-3", "PAINT-9005", D("1.25"), "doser3.total_l:1", at)
    post_measured(ctx, work, "PRESS-3", "PAINT-9005", D("0.50"), "doser3.total_l:2", at)
    assert [(t["lot"], D(t["qty"])) for t in work.posted] == [
        ("NEW", D("-1.25")),
        ("NEW", D("-0.50")),
    ]
    assert work.stock[("PAINT-9005", "LINE-3", "NEW")] == D("3.25")
    assert work.stock[("PAINT-9005", "LINE-3", "OLD")] == D("5.00")
    assert [(a["kind"], a["lot"]) for a in work.alerts] == [("lot_expired", "OLD")]


def test_a_scanned_label_with_ai_17_receives_the_lot_with_its_expiry() -> None:
    place = ScanPlace("PRESS-3", "LINE-3", "BRKT-100", "ORD-")
    # (01) GTIN, (17) 270600: day 00 of June 2027 is its last day, (10) lot, (3103) 12.500 kg
    label = "]C10109521234543213" + "17270600" + "10HEAT-7\x1d3103012500"
    command = scan_command(
        Scan("scanner3", label, datetime(2026, 12, 4, tzinfo=UTC)),
        place,
        {"09521234543213": "STEEL-2MM"},
        {"STEEL-2MM": "kg"},
        1,
    )
    assert isinstance(command, Receive)
    assert (command.lot, command.qty, command.expiry) == ("HEAT-7", D("12.500"), date(2027, 6, 30))
