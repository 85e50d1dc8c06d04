"""The ledger on a real SQLite file, through its handlers: the issue's must-shows."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lineside.agent import reports
from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import (
    CloseOrder,
    Command,
    Complete,
    Count,
    CounterReading,
    DiscardHeld,
    MeterReading,
    PutBom,
    PutItem,
    Receive,
    Rejected,
    ReleaseHeld,
    Reverse,
    StartOrder,
)
from lineside.agent.config import load
from lineside.agent.domain.held import Measured
from lineside.agent.handlers import HANDLERS, Context, Ledger
from lineside.agent.handlers.stock import receive as receive_handler
from lineside.agent.ledger.unit import UnitOfWork
from lineside.agent.ledger.work import Work
from lineside.agent.sync import payloads
from lineside.agent.sync.contract import Contract
from tests.conftest import StepClock, write_config

D = Decimal


def balances(ledger: Ledger) -> dict[tuple[str, str | None], Decimal]:
    out: dict[tuple[str, str | None], Decimal] = {}
    for row in reports.stock(ledger.conn, ledger.master, empty=True):
        out[(row["item"], row["lot"])] = D(row["qty"])
    return out


def item_total(ledger: Ledger, item: str) -> Decimal:
    return sum((q for (i, _), q in balances(ledger).items() if i == item), D(0))


LEDGER_TABLES = ("journal", "stock", "outbox", "carries", "counters", "held", "events", "orders")
# What a refused command must leave alone: everything but the refusal it is remembered by.
STATE_TABLES = tuple(t for t in LEDGER_TABLES if t != "events")


def snapshot(
    conn: sqlite3.Connection, tables: tuple[str, ...] = LEDGER_TABLES
) -> list[tuple[Any, ...]]:
    return [tuple(conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()) for t in tables]


def remembered(conn: sqlite3.Connection, key: str) -> dict[str, Any] | None:
    """The answer stored under key, or None when the key is not remembered."""
    row = conn.execute("SELECT reply FROM events WHERE key = ?", (key,)).fetchone()
    return None if row is None else dict(json.loads(row[0]))


def receive(ledger: Ledger, item: str, qty: str, lot: str | None = None, key: str = "") -> None:
    result = ledger.execute(
        Receive(
            key=key or f"rcv-{item}-{lot}-{qty}",
            ts=ledger.clock(),
            item=item,
            qty=D(qty),
            lot=lot,
            location="LINE-3",
        )
    )
    assert result.ok, result.error


def complete(
    ledger: Ledger, good: int, scrap: int = 0, stage: str | None = None, key: str | None = None
) -> None:
    result = ledger.execute(
        Complete(
            key=key or f"c-{ledger.clock().isoformat()}",
            ts=ledger.clock(),
            work_center="PRESS-3",
            good=good,
            scrap=scrap,
            stage=stage,
        )
    )
    assert result.ok, result.error


def test_design_example_posts_exact_quantities(ledger: Ledger) -> None:
    complete(ledger, 1000)
    complete(ledger, 1000, stage="paint")
    assert item_total(ledger, "STEEL-2MM") == D("-875.500")
    assert item_total(ledger, "BOLT-M8") == D("-4000")
    assert item_total(ledger, "PRIMER-A") == D("-10.000")
    assert item_total(ledger, "PAINT-9005") == 0
    assert item_total(ledger, "BRKT-100") == 1000


def test_ten_thousand_single_completions_equal_one_batch(tmp_path: Path) -> None:
    singles = open_ledger(load(write_config(tmp_path / "a")), StepClock())
    batch = open_ledger(load(write_config(tmp_path / "b")), StepClock())
    for n in range(10_000):
        complete(singles, 1, key=f"one-{n}")
    complete(batch, 10_000)
    for item in ("STEEL-2MM", "PRIMER-A"):
        assert item_total(singles, item) == item_total(batch, item)
    assert item_total(singles, "STEEL-2MM") == D("-8755.000")
    assert item_total(singles, "PRIMER-A") == D("-100.000")


def test_same_command_twice_posts_once(ledger: Ledger) -> None:
    cmd = Complete(key="req-1", ts=ledger.clock(), work_center="PRESS-3", good=5)
    first, second = ledger.execute(cmd), ledger.execute(cmd)
    assert first.ok and second.ok and second.duplicate and not first.duplicate
    assert item_total(ledger, "BRKT-100") == 5
    assert second.detail["transactions"] == [t["id"] for t in first.transactions]


def test_counter_reading_twice_posts_once_and_idle_writes_nothing(ledger: Ledger) -> None:
    for value in (100, 110, 110, 110):
        ledger.execute(CounterReading(key="r", ts=ledger.clock(), point="plc3.good", value=value))
    assert item_total(ledger, "BRKT-100") == 10
    changes = ledger.conn.total_changes
    for _ in range(50):
        ledger.execute(CounterReading(key="r", ts=ledger.clock(), point="plc3.good", value=110))
    assert ledger.conn.total_changes == changes


def test_restart_compares_first_read_with_stored_value(line_config, clock) -> None:  # type: ignore[no-untyped-def]
    first = open_ledger(line_config, clock)
    first.execute(CounterReading(key="r", ts=clock(), point="plc3.good", value=1000))
    first.conn.close()
    second = open_ledger(line_config, clock)  # the PLC counted 500 while we were down
    second.execute(CounterReading(key="r", ts=clock(), point="plc3.good", value=1500))
    second.execute(CounterReading(key="r", ts=clock(), point="plc3.good", value=1500))
    assert item_total(second, "BRKT-100") == 500


def test_rollover_and_reset(ledger: Ledger) -> None:
    for value in (65530, 65535, 4):  # scrap is a uint16 point
        ledger.execute(CounterReading(key="r", ts=ledger.clock(), point="plc3.scrap", value=value))
    assert item_total(ledger, "PRIMER-A") == D("-0.100")  # 5 + 5 scrapped units
    result = ledger.execute(CounterReading(key="r", ts=ledger.clock(), point="plc3.good", value=50))
    assert result.ok
    ledger.execute(CounterReading(key="r", ts=ledger.clock(), point="plc3.good", value=900_000))
    held = ledger.conn.execute("SELECT reason FROM held WHERE status = 'held'").fetchall()
    assert len(held) == 1 and "implausible" in held[0][0]
    result = ledger.execute(CounterReading(key="r", ts=ledger.clock(), point="plc3.good", value=7))
    assert [a["kind"] for a in result.alerts] == ["counter_reset"]
    assert item_total(ledger, "BRKT-100") == 7


def test_crash_between_moves_and_commit_leaves_nothing(ledger: Ledger) -> None:
    receive(ledger, "STEEL-2MM", "100", "L1")
    before = snapshot(ledger.conn)
    with pytest.raises(RuntimeError), UnitOfWork(ledger.conn) as uow:
        ledger._refresh_master()
        HANDLERS[Complete](
            ledger.context,
            uow,
            Complete(key="k", ts=ledger.clock(), work_center="PRESS-3", good=3),
        )
        assert uow.posted  # the moves were written inside the transaction...
        raise RuntimeError("power cut")  # ...and never committed
    assert snapshot(ledger.conn) == before


def test_shortage_under_allow_goes_negative_with_one_alert(ledger: Ledger) -> None:
    receive(ledger, "PRIMER-A", "0.015", "P1")
    result = ledger.execute(Complete(key="a", ts=ledger.clock(), work_center="PRESS-3", good=2))
    assert balances(ledger)[("PRIMER-A", "P1")] == 0
    assert balances(ledger)[("PRIMER-A", None)] == D("-0.005")
    assert sorted((a["kind"], a["item"]) for a in result.alerts) == [
        ("negative_stock", "PRIMER-A"),
        ("negative_stock", "STEEL-2MM"),
    ]
    again = ledger.execute(Complete(key="b", ts=ledger.clock(), work_center="PRESS-3", good=2))
    assert again.alerts == ()  # already negative: no new alert for every unit


def test_shortage_under_hold_waits_for_the_next_receipt(tmp_path: Path, clock: StepClock) -> None:
    cfg = load(write_config(tmp_path, **{"on_shortage: allow": "on_shortage: hold"}))
    ledger = open_ledger(cfg, clock)
    receive(ledger, "STEEL-2MM", "10", "S1")
    result = ledger.execute(Complete(key="h", ts=clock(), work_center="PRESS-3", good=20))
    assert result.ok and [a["kind"] for a in result.alerts] == ["held"]
    assert item_total(ledger, "BRKT-100") == 20  # production is never blocked
    assert item_total(ledger, "STEEL-2MM") == 10  # the backflush waits
    receive(ledger, "PRIMER-A", "1", "P1")
    assert item_total(ledger, "STEEL-2MM") == 10  # still short of steel
    receive(ledger, "STEEL-2MM", "10", "S2")
    assert balances(ledger)[("STEEL-2MM", "S1")] == 0
    assert balances(ledger)[("STEEL-2MM", "S2")] == D("2.490")  # 20 × 0.8755 = 17.510
    assert item_total(ledger, "PRIMER-A") == D("0.800")
    assert ledger.conn.execute("SELECT status FROM held").fetchall() == [("posted",)]


def test_fifo_across_two_lots_and_genealogy_both_ways(ledger: Ledger) -> None:
    receive(ledger, "STEEL-2MM", "10", "HEAT-1")
    receive(ledger, "STEEL-2MM", "50", "HEAT-2")
    ledger.execute(
        StartOrder(
            key="o1", ts=ledger.clock(), order="ORD-1", work_center="PRESS-3", item="BRKT-100"
        )
    )
    complete(ledger, 20)
    ledger.execute(
        StartOrder(
            key="o2", ts=ledger.clock(), order="ORD-2", work_center="PRESS-3", item="BRKT-100"
        )
    )
    complete(ledger, 10)
    assert balances(ledger)[("STEEL-2MM", "HEAT-1")] == 0
    assert balances(ledger)[("STEEL-2MM", "HEAT-2")] == D("50") - (D("26.265") - 10)
    by_order = reports.genealogy_of_order(ledger.conn, "ORD-1")
    assert {(g["item"], g["lot"], g["qty"]) for g in by_order} == {
        ("STEEL-2MM", "HEAT-1", "10.000"),
        ("STEEL-2MM", "HEAT-2", "7.510"),
    }
    by_lot = reports.genealogy_of_lot(ledger.conn, "HEAT-2")
    assert {(g["order"], g["qty"]) for g in by_lot} == {("ORD-1", "7.510"), ("ORD-2", "8.755")}
    orders = dict(ledger.conn.execute("SELECT order_no, status FROM orders").fetchall())
    assert orders == {"ORD-1": "closed", "ORD-2": "active"}


def test_horngren_journal_exactly(tmp_path: Path, clock: StepClock) -> None:
    text = """
gateway: {id: gw, site: s, data_dir: ./var}
items:
  FG: {uom: ea, cost: 45, conversion_cost: 20}
  DM: {uom: ea, cost: 25}
boms:
  FG: {components: [{item: DM, qty: 1}]}
work_centers:
  CELL: {location: L, item: FG}
"""
    ledger = open_ledger(load(write_config(tmp_path, text)), clock)
    assert ledger.execute(Complete(key="k", ts=clock(), work_center="CELL", good=21_000)).ok
    (entry,) = reports.journal_entries(ledger.conn, ledger.master)
    exact = {ln["account"]: (ln["debit"], ln["credit"]) for ln in entry["exact"]}
    assert exact == {
        "Finished Goods": ("945000", "0"),
        "Materials and In-Process": ("0", "525000"),
        "Conversion Costs Allocated": ("0", "420000"),
    }
    posted = {ln["account"]: (ln["debit"], ln["credit"]) for ln in entry["lines"]}
    assert posted == {  # the same amounts to the cent (gateway.currency decimals: 2)
        "Finished Goods": ("945000.00", "0.00"),
        "Materials and In-Process": ("0.00", "525000.00"),
        "Conversion Costs Allocated": ("0.00", "420000.00"),
    }


def test_reversal_once_then_refused(ledger: Ledger) -> None:
    receive(ledger, "BOLT-M8", "100", "B1")
    tx = ledger.conn.execute("SELECT id FROM journal WHERE kind = 'receipt'").fetchone()[0]
    first = ledger.execute(Reverse(key="rev-1", ts=ledger.clock(), tx_id=tx))
    assert first.ok and first.transactions[0]["qty"] == "-100"
    before = snapshot(ledger.conn, STATE_TABLES)
    second = ledger.execute(Reverse(key="rev-2", ts=ledger.clock(), tx_id=tx))
    assert not second.ok and second.refused and "already reversed" in (second.error or "")
    assert snapshot(ledger.conn, STATE_TABLES) == before
    assert item_total(ledger, "BOLT-M8") == 0


def test_count_posts_the_difference_and_records_it(ledger: Ledger) -> None:
    receive(ledger, "BOLT-M8", "100", "B1")
    receive(ledger, "BOLT-M8", "50", "B2")
    result = ledger.execute(
        Count(key="cnt", ts=ledger.clock(), item="BOLT-M8", qty=D(120), location="LINE-3")
    )
    assert result.ok
    assert [(t["lot"], t["qty"], t["kind"]) for t in result.transactions] == [
        ("B1", "-30", "adjustment")
    ]
    count = ledger.conn.execute("SELECT book, counted, diff, value FROM counts").fetchone()
    assert count == ("150", "120", "-30", "-1.50")


def test_unknown_item_is_held_and_posted_when_fixed(ledger: Ledger) -> None:
    ledger.execute(
        StartOrder(key="o", ts=ledger.clock(), order="ORD-9", work_center="PRESS-3", item="BOLT-M8")
    )
    result = ledger.execute(Complete(key="x", ts=ledger.clock(), work_center="PRESS-3", good=3))
    assert [a["kind"] for a in result.alerts] == ["held"]
    assert item_total(ledger, "BOLT-M8") == 3  # the completion posted, the backflush waits
    put = ledger.execute(
        PutBom(
            key="b",
            ts=ledger.clock(),
            item="BOLT-M8",
            data={"components": [{"item": "STEEL-2MM", "qty": "0.01"}]},
        )
    )
    assert put.ok, put.error
    assert item_total(ledger, "STEEL-2MM") == D("-0.030")
    assert ledger.conn.execute("SELECT status FROM held").fetchall() == [("posted",)]


def test_put_item_survives_restart(line_config, clock) -> None:  # type: ignore[no-untyped-def]
    first = open_ledger(line_config, clock)
    assert first.execute(
        PutItem(key="i", ts=clock(), item="NUT-M8", data={"uom": "ea", "cost": "0.02"})
    ).ok
    first.conn.close()
    second = open_ledger(line_config, clock)
    assert second.master.items["NUT-M8"].cost == D("0.02")
    bad = second.execute(PutItem(key="j", ts=clock(), item="NUT-M9", data={"uom": "ea", "x": 1}))
    assert not bad.ok and "unknown key" in (bad.error or "")


def test_measured_consumption_and_variance(ledger: Ledger) -> None:
    receive(ledger, "PAINT-9005", "40", "P-1")
    ledger.execute(
        StartOrder(
            key="o", ts=ledger.clock(), order="ORD-1", work_center="PRESS-3", item="BRKT-100"
        )
    )
    for value in ("100.000", "100.125", "102.2"):
        ledger.execute(
            MeterReading(key="m", ts=ledger.clock(), point="doser3.total_l", value=D(value))
        )
    complete(ledger, 100)
    assert balances(ledger)[("PAINT-9005", "P-1")] == D("37.80")
    (row,) = reports.variance(ledger.conn, ledger.master)
    assert (row["standard"], row["measured"], row["variance"]) == ("2.00", "2.20", "0.20")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (Receive(key="1", ts=None, item="NOPE", qty=D(1), location="L"), "unknown item"),  # type: ignore[arg-type]
        (Receive(key="2", ts=None, item="BOLT-M8", qty=D("0.5"), location="L"), "decimals"),  # type: ignore[arg-type]
        (Receive(key="3", ts=None, item="BOLT-M8", qty=D(-1), location="L"), "more than 0"),  # type: ignore[arg-type]
        (Receive(key="4", ts=None, item="PRIMER-KIT", qty=D(1), location="L"), "phantom"),  # type: ignore[arg-type]
        (Complete(key="5", ts=None, work_center="NOPE", good=1), "unknown work center"),  # type: ignore[arg-type]
        (Complete(key="6", ts=None, work_center="PRESS-3", good=1, stage="dip"), "no stage"),  # type: ignore[arg-type]
        (CloseOrder(key="7", ts=None, order="NOPE"), "no order"),  # type: ignore[arg-type]
        (Reverse(key="8", ts=None, tx_id="nope"), "no transaction"),  # type: ignore[arg-type]
        (
            PutBom(
                key="9",
                ts=None,
                item="PRIMER-KIT",
                data={
                    "components": [  # type: ignore[arg-type]
                        {"item": "PRIMER-KIT", "qty": "1"}
                    ]
                },
            ),
            "itself",
        ),
    ],
)
def test_bad_commands_are_refused_and_change_nothing(ledger: Ledger, command, message) -> None:  # type: ignore[no-untyped-def]
    command = type(command)(**{**command.__dict__, "ts": ledger.clock()})
    before = snapshot(ledger.conn, STATE_TABLES)
    result = ledger.execute(command)
    assert not result.ok and message in (result.error or "")
    assert snapshot(ledger.conn, STATE_TABLES) == before
    assert remembered(ledger.conn, command.key) == {
        "ok": False,
        "error": result.error,
        "refused": result.refused,
    }


def test_implausible_jump_is_held_then_released_or_discarded(ledger: Ledger) -> None:
    for value in (100, 500_100):
        ledger.execute(CounterReading(key="r", ts=ledger.clock(), point="plc3.good", value=value))
    assert item_total(ledger, "BRKT-100") == 0
    (held_id,) = ledger.conn.execute("SELECT id FROM held WHERE status = 'held'").fetchone()
    released = ledger.execute(ReleaseHeld(key="rel", ts=ledger.clock(), held_id=held_id))
    assert released.ok, released.error
    assert item_total(ledger, "BRKT-100") == 500_000
    again = ledger.execute(ReleaseHeld(key="rel-2", ts=ledger.clock(), held_id=held_id))
    assert not again.ok and again.refused and "already posted" in (again.error or "")
    for value in (400, 900_000):  # a reset that looks like a jump, this time discarded
        ledger.execute(CounterReading(key="r", ts=ledger.clock(), point="plc3.good", value=value))
    (second,) = ledger.conn.execute("SELECT id FROM held WHERE status = 'held'").fetchone()
    no_reason = ledger.execute(DiscardHeld(key="d0", ts=ledger.clock(), held_id=second, reason=""))
    assert not no_reason.ok
    dropped = ledger.execute(
        DiscardHeld(key="d1", ts=ledger.clock(), held_id=second, reason="PLC program download")
    )
    assert dropped.ok
    row = ledger.conn.execute("SELECT status, reason FROM held WHERE id = ?", (second,)).fetchone()
    assert row == ("discarded", "discarded: PLC program download")
    assert item_total(ledger, "BRKT-100") == 500_400  # released 500,000 + 400 after the reset


def test_implausible_meter_jump_is_held_not_dropped(ledger: Ledger) -> None:
    for value in ("10", "5000010"):
        ledger.execute(
            MeterReading(key="m", ts=ledger.clock(), point="doser3.total_l", value=D(value))
        )
    assert item_total(ledger, "PAINT-9005") == 0
    (held_id,) = ledger.conn.execute("SELECT id FROM held WHERE status = 'held'").fetchone()
    assert ledger.execute(ReleaseHeld(key="rel", ts=ledger.clock(), held_id=held_id)).ok
    assert item_total(ledger, "PAINT-9005") == D("-5000000.00")


def test_scrap_cannot_be_reported_with_a_stage(ledger: Ledger) -> None:
    result = ledger.execute(
        Complete(key="s", ts=ledger.clock(), work_center="PRESS-3", good=1, scrap=1, stage="paint")
    )
    assert not result.ok and "without --stage" in (result.error or "")


def test_a_received_lot_first_settles_stock_consumed_before_it_was_booked(ledger: Ledger) -> None:
    complete(ledger, 10)  # 8.755 kg of steel used before any lot is booked in
    assert balances(ledger)[("STEEL-2MM", None)] == D("-8.755")
    receive(ledger, "STEEL-2MM", "5", "H1")  # not enough to settle it all
    assert balances(ledger)[("STEEL-2MM", "H1")] == 0
    assert balances(ledger)[("STEEL-2MM", None)] == D("-3.755")
    receive(ledger, "STEEL-2MM", "100", "H2")
    assert balances(ledger)[("STEEL-2MM", "H2")] == D("96.245")
    assert balances(ledger)[("STEEL-2MM", None)] == 0
    assert item_total(ledger, "STEEL-2MM") == D("96.245")  # the total never changed meaning
    kinds = [
        r[0]
        for r in ledger.conn.execute(
            "SELECT kind FROM journal WHERE item = 'STEEL-2MM' ORDER BY seq"
        )
    ]
    assert kinds == [
        "backflush",
        "receipt",
        "adjustment",
        "adjustment",
        "receipt",
        "adjustment",
        "adjustment",
    ]


def test_a_refused_command_in_a_batch_keeps_the_others_and_their_rounding(
    ledger: Ledger,
) -> None:
    """Carries are written at commit: a savepoint rollback in between must not lose them."""
    ts = ledger.clock()
    results = ledger.execute_batch(
        [
            Complete(key="b1", ts=ts, work_center="PRESS-3", good=1),
            Receive(key="b2", ts=ts, item="NOPE", qty=D(1), location="LINE-3"),  # refused
            Complete(key="b3", ts=ts, work_center="PRESS-3", good=1),
        ]
    )
    assert [r.ok for r in results] == [True, False, True]
    for n in range(2, 10):
        complete(ledger, 1, key=f"more-{n}")
    # 10 units × 0.8755 kg, rounded once: the carry survived the refused command
    assert item_total(ledger, "STEEL-2MM") == D("-8.755")
    carry = ledger.conn.execute(
        "SELECT exact, posted FROM carries WHERE item = 'STEEL-2MM'"
    ).fetchone()
    assert (D(carry[0]), D(carry[1])) == (D("8.7550"), D("8.755"))


# -- a request id gets one answer, refusals included -------------------------------------
def receipt(ledger: Ledger, key: str, item: str = "NUT-M8", lot: str | None = None) -> Receive:
    return Receive(key=key, ts=ledger.clock(), item=item, qty=D(10), lot=lot, location="LINE-3")


def put_nut(ledger: Ledger) -> None:
    put = ledger.execute(
        PutItem(key="put-nut", ts=ledger.clock(), item="NUT-M8", data={"uom": "ea", "cost": "0.02"})
    )
    assert put.ok, put.error


def test_a_refused_request_stays_refused_after_its_cause_is_fixed(ledger: Ledger) -> None:
    first = ledger.execute(receipt(ledger, "rcv-nut"))
    assert not first.ok and first.error == "unknown item 'NUT-M8'" and not first.duplicate
    put_nut(ledger)  # the cause is gone: the same receipt would apply now
    before = snapshot(ledger.conn)
    again = ledger.execute(receipt(ledger, "rcv-nut"))
    assert (again.ok, again.error, again.refused, again.duplicate) == (
        False,
        first.error,
        first.refused,
        True,
    )
    assert again.transactions == () and again.alerts == ()
    assert snapshot(ledger.conn) == before  # not even a second remembered row
    fresh = ledger.execute(receipt(ledger, "rcv-nut-2"))  # a corrected request, a new key
    assert fresh.ok and not fresh.duplicate
    assert item_total(ledger, "NUT-M8") == 10


def test_a_state_refusal_is_repeated_as_a_state_refusal(ledger: Ledger) -> None:
    """refused (exit 1 on the command line, not 2) is part of the answer that is repeated."""
    ledger.execute(
        StartOrder(
            key="o", ts=ledger.clock(), order="ORD-1", work_center="PRESS-3", item="BRKT-100"
        )
    )
    assert ledger.execute(CloseOrder(key="close-1", ts=ledger.clock(), order="ORD-1")).ok
    first = ledger.execute(CloseOrder(key="close-2", ts=ledger.clock(), order="ORD-1"))
    again = ledger.execute(CloseOrder(key="close-2", ts=ledger.clock(), order="ORD-1"))
    assert first.refused and not first.ok
    assert (again.ok, again.error, again.refused, again.duplicate) == (
        False,
        first.error,
        True,
        True,
    )


def post_then_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every receipt post its moves and then be refused: a handler that fails late."""

    def handler(ctx: Context, uow: Work, cmd: Receive) -> None:
        receive_handler(ctx, uow, cmd)
        assert uow.posted
        raise Rejected("refused after posting")

    monkeypatch.setitem(HANDLERS, Receive, handler)


def test_a_late_refusal_undoes_its_own_writes_and_keeps_only_the_refusal(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    receive(ledger, "STEEL-2MM", "100", "L1")
    before = snapshot(ledger.conn, STATE_TABLES)
    post_then_refuse(monkeypatch)
    result = ledger.execute(receipt(ledger, "late", item="STEEL-2MM", lot="L2"))
    assert not result.ok and result.transactions == ()
    assert snapshot(ledger.conn, STATE_TABLES) == before
    assert remembered(ledger.conn, "late") == {
        "ok": False,
        "error": "refused after posting",
        "refused": False,
    }


def test_a_refusal_in_a_batch_is_remembered_and_the_others_apply(ledger: Ledger) -> None:
    ts = ledger.clock()
    batch: list[Command] = [
        Receive(key="b1", ts=ts, item="BOLT-M8", qty=D(5), location="LINE-3"),
        Receive(key="b2", ts=ts, item="NUT-M8", qty=D(5), location="LINE-3"),  # refused
        Receive(key="b3", ts=ts, item="BOLT-M8", qty=D(7), location="LINE-3"),
    ]
    first = ledger.execute_batch(batch)
    assert [r.ok for r in first] == [True, False, True]
    assert remembered(ledger.conn, "b2") == {
        "ok": False,
        "error": "unknown item 'NUT-M8'",
        "refused": False,
    }
    put_nut(ledger)
    before = snapshot(ledger.conn)
    again = ledger.execute_batch(batch)
    assert [(r.ok, r.duplicate) for r in again] == [(True, True), (False, True), (True, True)]
    assert again[1].error == first[1].error
    assert snapshot(ledger.conn) == before
    assert item_total(ledger, "BOLT-M8") == 12 and item_total(ledger, "NUT-M8") == 0


def test_a_late_refusal_in_a_batch_undoes_only_itself(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    post_then_refuse(monkeypatch)
    ts = ledger.clock()
    results = ledger.execute_batch(
        [
            Complete(key="c1", ts=ts, work_center="PRESS-3", good=2),
            Receive(key="late", ts=ts, item="STEEL-2MM", qty=D(9), lot="L9", location="LINE-3"),
            Complete(key="c2", ts=ts, work_center="PRESS-3", good=3),
        ]
    )
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].transactions == () and results[1].alerts == ()
    assert item_total(ledger, "BRKT-100") == 5
    assert balances(ledger).get(("STEEL-2MM", "L9")) is None
    assert remembered(ledger.conn, "late") is not None


def disk_full(conn: sqlite3.Connection) -> None:
    conn.execute("VACUUM")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # no page to be had: the disk is full


def disk_freed(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA max_page_count = 1073741823")


def test_a_ledger_failure_is_not_remembered_and_the_same_key_applies_later(
    ledger: Ledger,
) -> None:
    big_cause = "L" * 20_000  # overflow pages: a write that needs a new page
    command = Receive(
        key="full", ts=ledger.clock(), item="BOLT-M8", qty=D(3), location="LINE-3",
        cause=big_cause,
    )
    disk_full(ledger.conn)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        ledger.execute(command)
    disk_freed(ledger.conn)
    assert remembered(ledger.conn, "full") is None
    result = ledger.execute(command)  # not the command's fault: the same key is applied now
    assert result.ok and not result.duplicate
    assert item_total(ledger, "BOLT-M8") == 3


def test_a_refusal_that_cannot_be_stored_is_not_half_remembered(ledger: Ledger) -> None:
    key = "k" * 20_000  # remembering it needs a new page
    disk_full(ledger.conn)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        ledger.execute(receipt(ledger, key))
    disk_freed(ledger.conn)
    assert remembered(ledger.conn, key) is None
    first = ledger.execute(receipt(ledger, key))
    assert not first.ok and not first.duplicate
    put_nut(ledger)
    assert ledger.execute(receipt(ledger, key)).duplicate


def test_a_held_event_that_no_longer_fits_does_not_refuse_the_receipt(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A retry of held events is not the receipt's doing: it must not refuse (and so burn
    the request id of) the receipt that triggered it."""
    ledger.execute(
        StartOrder(key="o", ts=ledger.clock(), order="ORD-9", work_center="PRESS-3", item="BOLT-M8")
    )
    ledger.execute(Complete(key="x", ts=ledger.clock(), work_center="PRESS-3", good=3))
    moved = {"PRESS-3:": "PRESS-4:", "work_center: PRESS-3": "work_center: PRESS-4"}
    renamed = write_config(tmp_path / "renamed", **moved)
    ledger.reconfigure(load(renamed).config)
    result = ledger.execute(receipt(ledger, "rcv-steel", item="STEEL-2MM", lot="H1"))
    assert result.ok, result.error
    assert item_total(ledger, "STEEL-2MM") == 10
    held = ledger.conn.execute("SELECT status, reason FROM held").fetchall()
    assert held == [("held", "unknown work center 'PRESS-3' (known: PRESS-4)")]


def test_a_meter_total_beyond_the_digits_bound_is_refused_not_held(ledger: Ledger) -> None:
    """A float32 register can read 1e30; held, it could never be released (issue 11 item 7)."""
    first = MeterReading(key="m", ts=ledger.clock(), point="doser3.total_l", value=D(10))
    assert ledger.execute(first).ok
    jump = MeterReading(key="m", ts=ledger.clock(), point="doser3.total_l", value=D("1E+30"))
    result = ledger.execute(jump)
    assert not result.ok and "has too many digits" in (result.error or "")
    assert ledger.conn.execute("SELECT COUNT(*) FROM held").fetchone()[0] == 0
    assert ledger.conn.execute("SELECT value FROM counters").fetchall() == [("10",)]


def test_a_held_meter_jump_beyond_the_bound_is_refused_with_what_to_do(ledger: Ledger) -> None:
    """Held by an older release: releasing it says to discard it, and discarding works."""
    with UnitOfWork(ledger.conn) as uow:
        command = Measured(work_center="PRESS-3", item="PAINT-9005",
                           qty="1.000000000000000000000000000E+30", event="doser3.total_l:0->1e30")
        held_id = uow.hold("old", ledger.clock(), "PRESS-3", "implausible", command)
        uow.commit()
    released = ledger.execute(ReleaseHeld(key="rel", ts=ledger.clock(), held_id=held_id))
    assert not released.ok and "too many digits" in (released.error or "")
    assert "discard it" in (released.error or "")
    assert ledger.execute(
        DiscardHeld(key="dis", ts=ledger.clock(), held_id=held_id, reason="bad register")
    ).ok


def test_decimals_become_text_without_an_exponent(ledger: Ledger) -> None:
    """Decimal('1E+5') x cost 0.05 is Decimal('5.00E+3'): the ledger writes 100000 and 5000.00."""
    result = ledger.execute(Receive(key="k", ts=ledger.clock(), item="BOLT-M8", qty=D("1E+5"),
                                    location="LINE-3"))
    assert result.ok, result.error
    tx = result.transactions[0]
    assert (tx["qty"], tx["cost"]) == ("100000", "5000.00")
    assert ledger.conn.execute("SELECT qty, cost FROM journal").fetchall() == [
        ("100000", "5000.00")]
    assert ledger.conn.execute("SELECT qty FROM stock").fetchall() == [("100000",)]


def test_stock_of_an_item_removed_by_reload_keeps_its_unit(
    ledger: Ledger, tmp_path: Path
) -> None:
    receive(ledger, "STEEL-2MM", "12.5", lot="H1")
    removed = write_config(tmp_path / "removed", **{
        '  STEEL-2MM:  {uom: kg, decimals: 3, cost: 1.10, gtin: "09521234543213"}\n': "",
        "      - {item: STEEL-2MM, qty: 0.85, scrap_pct: 3}\n": ""})
    ledger.reconfigure(load(removed).config)
    (row,) = [b for b in ledger.stock_snapshot() if b["item"] == "STEEL-2MM"]
    assert row == {"item": "STEEL-2MM", "location": "LINE-3", "lot": "H1", "qty": "12.500",
                   "uom": "kg"}
    assert Contract().errors("stock", json.loads(payloads.stock("press-3", ledger.clock(),
                                                                 ledger.stock_snapshot()))) == []
