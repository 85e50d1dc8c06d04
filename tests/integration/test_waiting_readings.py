"""Readings that wait (ledger.commit_interval_s) and posting windows (ledger.post_interval_s),
through the Ledger's way in for the writer (offer): the same PLC history posted per
reading and per window gives the same books to the last decimal."""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.agent import reports
from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import (
    CloseOrder,
    Command,
    CounterReading,
    MeterReading,
    PutBom,
    Receive,
    StartOrder,
)
from lineside.agent.config import load
from lineside.agent.handlers import Ledger
from tests.conftest import DEMO_CONFIG, StepClock, write_config

D = Decimal
POLL_S = 0.25
Books = tuple[dict[tuple[str, str | None], Decimal], dict[tuple[str, ...], Decimal]]


def open_line(tmp: Path, ledger_keys: str) -> Ledger:
    text = DEMO_CONFIG.read_text() + f"\nledger: {{{ledger_keys}}}\n"
    return open_ledger(load(write_config(tmp, text)), StepClock())


class Line:
    """Feeds a Ledger as the writer does: readings offered, what is due written."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.now = 0.0

    def offer(self, *commands: Command) -> None:
        self.now += POLL_S
        due = self.ledger.offer(list(commands), self.now)
        if due:
            for result in self.ledger.execute_batch(due):
                assert result.ok, result.error

    def read(self, good: int, scrap: int, painted: int, paint_l: str) -> None:
        ts = self.ledger.clock()
        self.offer(
            CounterReading(key="plc3.good", ts=ts, point="plc3.good", value=good),
            CounterReading(key="plc3.scrap", ts=ts, point="plc3.scrap", value=scrap),
            CounterReading(key="plc3.painted", ts=ts, point="plc3.painted", value=painted),
            MeterReading(key="doser3.total_l", ts=ts, point="doser3.total_l", value=D(paint_l)),
        )

    def receive(self, item: str, qty: str, lot: str) -> None:
        """A scanned receipt: through the writer, as a scan comes."""
        ts = self.ledger.clock()
        self.offer(
            Receive(key=f"scan-{lot}", ts=ts, item=item, qty=D(qty), lot=lot, location="LINE-3")
        )

    def command(self, command: Command) -> None:
        """An MQTT command: straight to the Ledger, from the sync worker's thread."""
        assert self.ledger.execute(command).ok

    def stop(self) -> None:
        rest = self.ledger.take_waiting()
        if rest:
            self.ledger.execute_batch(rest)


def history(line: Line) -> Iterator[None]:
    """A shift: lots received, an order started and closed, a BOM change, a counter
    reset and a meter reset, readings every poll with units now and then."""
    rng = random.Random(13)
    good = scrap = painted = 0
    paint = D(0)
    line.read(0, 0, 0, "0")
    line.receive("STEEL-2MM", "40", "S1")
    line.receive("STEEL-2MM", "500", "S2")
    line.receive("BOLT-M8", "300", "B1")
    line.receive("PRIMER-A", "5", "P1")
    line.receive("PAINT-9005", "20", "C1")
    for step in range(400):
        if step == 60:
            line.command(
                StartOrder(
                    key="o1",
                    ts=line.ledger.clock(),
                    order="ORD-1",
                    work_center="PRESS-3",
                    item="BRKT-100",
                )
            )
        if step == 150:
            bom = {
                "per": 1,
                "components": [
                    {"item": "STEEL-2MM", "qty": "0.9133", "scrap_pct": 3},
                    {"item": "BOLT-M8", "qty": 4, "stage": "paint"},
                    {"item": "PRIMER-KIT", "qty": 1},
                    {"item": "PAINT-9005", "qty": "0.02", "flush": "measured"},
                ],
            }
            line.command(PutBom(key="b1", ts=line.ledger.clock(), item="BRKT-100", data=bom))
        if step == 200:
            good, painted = rng.randint(0, 3), 0  # power cycle: counted from 0
        if step == 260:
            line.command(CloseOrder(key="c1", ts=line.ledger.clock(), order="ORD-1"))
        if step == 300:
            paint = D("0.5")  # the totaliser reset
        if rng.random() < 0.7:
            made = rng.randint(1, 4)
            good += made
            painted += rng.randint(0, made)
            scrap += rng.random() < 0.1
            paint += D(rng.randint(0, 90)) / 1000
        line.read(good, scrap, painted, str(paint))
        yield


def books(ledger: Ledger) -> Books:
    stock = {
        (row["item"], row["lot"]): D(row["qty"])
        for row in reports.stock(ledger.conn, ledger.master, empty=True)
    }
    journal: dict[tuple[str, ...], Decimal] = {}
    # Per item, lot and order: good and scrap share an order's carries, so which of the
    # two a rounding unit falls on follows the order the points are posted in.
    rows = ledger.conn.execute("SELECT item, lot, coalesce(order_no, ''), qty FROM journal")
    for item, lot, order_no, qty in rows:
        key = (item, lot, order_no)
        journal[key] = journal.get(key, D(0)) + D(qty)
    return stock, journal


def run(tmp: Path, ledger_keys: str) -> tuple[Books, int, Ledger]:
    line = Line(open_line(tmp, ledger_keys))
    for _ in history(line):
        pass
    line.stop()
    rows = line.ledger.conn.execute("SELECT count(*) FROM journal").fetchone()[0]
    return books(line.ledger), rows, line.ledger


def test_windows_post_the_same_books_as_every_reading(tmp_path: Path) -> None:
    each, each_rows, first = run(tmp_path / "each", "commit_interval_s: 0.05, post_interval_s: 0")
    windowed, windowed_rows, second = run(tmp_path / "window", "")  # the defaults
    assert windowed == each
    carries = "SELECT * FROM carries ORDER BY 1, 2"
    assert second.conn.execute(carries).fetchall() == first.conn.execute(carries).fetchall()
    assert windowed_rows * 5 < each_rows  # a window posts once, not once a poll
    for ledger in (first, second):
        ledger.conn.close()


def test_a_kill_while_readings_wait_loses_no_unit(tmp_path: Path) -> None:
    ledger = open_line(tmp_path, "post_interval_s: 10")
    line = Line(ledger)
    line.receive("STEEL-2MM", "1000", "S1")
    for good in (0, 5, 9, 14):
        line.read(good, 0, 0, "0")
    assert ledger.waiting.readings  # 9 and 14 wait
    ledger.conn.close()  # kill -9: what waits is gone, the PLC still counts 14

    again = Line(open_line(tmp_path, "post_interval_s: 10"))
    again.read(17, 0, 0, "0")  # the first reading after a restart is counted at once
    completed = again.ledger.conn.execute(
        "SELECT sum(qty) FROM journal WHERE kind = 'completion'"
    ).fetchone()[0]
    assert D(completed) == 17
    again.ledger.conn.close()


def test_a_counter_reset_inside_a_window_is_counted_exactly(tmp_path: Path) -> None:
    line = Line(open_line(tmp_path, "post_interval_s: 30"))
    for good in (0, 10, 20, 25):
        line.read(good, 0, 0, "0")
    assert line.ledger.waiting.readings
    line.read(4, 0, 0, "0")  # reset: 25 is committed first, then 4 from 0
    assert not line.ledger.waiting.readings
    line.read(9, 0, 0, "0")
    line.stop()
    completed = line.ledger.conn.execute(
        "SELECT sum(qty) FROM journal WHERE kind = 'completion'"
    ).fetchone()[0]
    assert D(completed) == 25 + 9
    line.ledger.conn.close()


@pytest.mark.parametrize("keys", ["", "post_interval_s: 0"])
def test_a_scan_is_written_at_once_after_what_waits(tmp_path: Path, keys: str) -> None:
    ledger = open_line(tmp_path, keys)
    line = Line(ledger)
    line.read(0, 0, 0, "0")
    line.read(3, 0, 0, "0")
    ts = ledger.clock()
    receipt = Receive(key="scan-1", ts=ts, item="BOLT-M8", qty=D(10), lot="B1", location="LINE-3")
    due = ledger.offer([receipt], line.now + POLL_S)
    assert [type(c).__name__ for c in due] == ["CounterReading", "Receive"]
    assert not ledger.waiting.readings
    ledger.conn.close()


def test_a_command_commits_what_waits_first(tmp_path: Path) -> None:
    ledger = open_line(tmp_path, "")
    line = Line(ledger)
    line.receive("STEEL-2MM", "1000", "S1")
    line.read(0, 0, 0, "0")
    line.read(6, 0, 0, "0")
    line.command(
        StartOrder(
            key="o1", ts=ledger.clock(), order="ORD-9", work_center="PRESS-3", item="BRKT-100"
        )
    )
    line.read(8, 0, 0, "0")
    line.stop()
    rows = ledger.conn.execute(
        "SELECT coalesce(order_no, ''), sum(qty) FROM journal WHERE kind = 'completion'"
        " GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [(o, D(q)) for o, q in rows] == [("", D(6)), ("ORD-9", D(2))]
    ledger.conn.close()


def test_no_commit_interval_and_no_window_write_each_reading_as_it_comes(tmp_path: Path) -> None:
    # what a dashboard that must see every unit within a poll asks for (docs/configuration.md)
    ledger = open_line(tmp_path, "commit_interval_s: 0, post_interval_s: 0")
    line = Line(ledger)
    line.read(0, 0, 0, "0")
    for good in (2, 5):
        ts = ledger.clock()
        reading = CounterReading(key="plc3.good", ts=ts, point="plc3.good", value=good)
        due = ledger.offer([reading], line.now + POLL_S)
        assert due == [reading] and not ledger.waiting.readings  # nothing waits
        assert all(r.ok for r in ledger.execute_batch(due))
    completed = ledger.conn.execute(
        "SELECT sum(qty) FROM journal WHERE kind = 'completion'"
    ).fetchone()[0]
    assert D(completed) == 5
    ledger.conn.close()
