"""The unit of work's building blocks on a real SQLite file: an attempt that fails is undone
alone, and master data versions are never handed out twice."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.agent.domain.backflush import Carry, Move
from lineside.agent.domain.model import NO_LOT
from lineside.agent.ledger.store import Posting, connect
from lineside.agent.ledger.unit import UnitOfWork

TS = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return connect(tmp_path / "ledger.sqlite")


def receipt(uow: UnitOfWork, lot: str) -> None:
    move = Move("receipt", "BOLT-M8", "LINE-3", lot, Decimal(5), Decimal("0.25"))
    uow.post(move, "ea", Posting(TS, f"rcv-{lot}", "test"))


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_a_failed_attempt_is_undone_alone(conn: sqlite3.Connection) -> None:
    with UnitOfWork(conn) as uow:
        receipt(uow, "A")
        uow.save_carry("b", "BOLT-M8", Carry(Decimal("0.5"), Decimal(0)))
        with pytest.raises(RuntimeError), uow.attempt():
            receipt(uow, "B")
            uow.save_carry("b", "BOLT-M8", Carry(Decimal("9.5"), Decimal(9)))
            uow.alert("negative_stock", TS)
            raise RuntimeError("refused late")
        assert [t["lot"] for t in uow.posted] == ["A"] and uow.alerts == []
        with uow.attempt():
            uow.remember("k", "Receive", TS, '{"ok": false}')
        uow.commit()
    assert [r[0] for r in conn.execute("SELECT lot FROM journal")] == ["A"]
    assert conn.execute("SELECT lot, qty FROM stock").fetchall() == [("A", "5")]
    assert count(conn, "outbox") == 1 and count(conn, "events") == 1
    # The carry saved before the attempt is written; the undone one is not.
    assert conn.execute("SELECT exact FROM carries").fetchall() == [("0.5",)]


def test_an_undone_master_put_never_lends_its_version_to_the_next(
    conn: sqlite3.Connection,
) -> None:
    """A Ledger that read master data inside an undone put must see the next put as new."""
    with UnitOfWork(conn) as uow:
        uow.put_master("master_items", "NUT-M8", {"uom": "ea"}, TS)
        undone = uow.meta("master_version")  # what a Ledger would have cached
    with UnitOfWork(conn) as uow:
        uow.put_master("master_items", "NUT-M9", {"uom": "ea"}, TS)
        uow.commit()
    with UnitOfWork(conn) as uow:
        assert uow.meta("master_version") not in (None, undone)


def move(lot: str, qty: str) -> Move:
    return Move("adjustment", "BOLT-M8", "LINE-3", lot, Decimal(qty), Decimal(0))


def fifo_order(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT lot FROM stock ORDER BY fifo, lot")]


def test_stock_that_comes_back_above_zero_queues_behind_the_lots_of_meanwhile(
    conn: sqlite3.Connection,
) -> None:
    """The lot-less row went negative first; a count's gain later is new stock, consumed
    after the lot received in between (else the consumption would lose its lot)."""
    with UnitOfWork(conn) as uow:
        uow.post(move(NO_LOT, "-5"), "ea", Posting(TS, "short", "test"))
        uow.post(move("A", "100"), "ea", Posting(TS, "rcv-A", "test"))
        uow.post(move(NO_LOT, "3"), "ea", Posting(TS, "part", "test"))  # still below zero
        assert [b.lot for b in uow.lots_of(["BOLT-M8"], "LINE-3")["BOLT-M8"]] == [NO_LOT, "A"]
        uow.post(move(NO_LOT, "12"), "ea", Posting(TS, "count", "test"))  # now +10
        assert [b.lot for b in uow.lots_of(["BOLT-M8"], "LINE-3")["BOLT-M8"]] == ["A", NO_LOT]
        uow.post(move("A", "5"), "ea", Posting(TS, "more-A", "test"))  # A stays positive
        uow.commit()
    assert fifo_order(conn) == ["A", NO_LOT]  # the table agrees with the cache
    with UnitOfWork(conn) as uow:
        lots = uow.lots_of(["BOLT-M8"], "LINE-3")["BOLT-M8"]
    assert [(b.lot, b.qty) for b in lots] == [("A", Decimal(105)), (NO_LOT, Decimal(10))]


def test_material_given_back_to_a_lot_keeps_its_place_and_a_new_delivery_does_not(
    conn: sqlite3.Connection,
) -> None:
    def post(kind: str, lot: str, qty: str) -> None:
        move = Move(kind, "BOLT-M8", "LINE-3", lot, Decimal(qty), Decimal(0))
        uow.post(move, "ea", Posting(TS, f"{kind}-{lot}-{qty}", "test"))

    with UnitOfWork(conn) as uow:
        post("receipt", "A", "5")
        post("receipt", "B", "5")
        post("backflush", "A", "-5")  # A runs out
        post("reversal", "A", "2")  # the consumption was booked by mistake: same material
        assert [b.lot for b in uow.lots_of(["BOLT-M8"], "LINE-3")["BOLT-M8"]] == ["A", "B"]
        post("backflush", "B", "-5")  # B runs out
        post("receipt", "B", "4")  # a new delivery under the same lot number
        uow.commit()
    assert fifo_order(conn) == ["A", "B"]
    with UnitOfWork(conn) as uow:
        post("backflush", "A", "-2")
        post("receipt", "A", "1")  # A delivered again: now behind B
        uow.commit()
    assert fifo_order(conn) == ["B", "A"]
