"""What one posting window writes to an aged ledger, counted in pages (WAL frames).

An SD card wears by the pages written. A window's posting adds one completion and one
consumption row per BOM line; on a ledger that has run for a while, an index whose entries
for those rows land on a different page per item (the item's own run of entries) costs a
page per BOM line per commit, however few rows the window adds. The journal's indexes must
take a window's rows at their end, as the table itself does: a few pages per commit.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import CloseOrder, CounterReading, Receive, StartOrder
from lineside.agent.config import load
from lineside.agent.handlers import Ledger
from tests.conftest import write_config

BOM_LINES = 20
AGED_UNITS = 2_500  # a few hours of a busy line: each item's index entries span many pages
START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def _config(tmp_path: Path) -> Path:
    parts = [f"C{n:02d}" for n in range(BOM_LINES)]
    return write_config(
        tmp_path,
        "\n".join(
            [
                "gateway: {id: gw, site: lab, data_dir: ./var}",
                "mqtt: {host: 127.0.0.1, port: 1883}",
                "items:",
                "  FG: {uom: ea, cost: 12.50}",
                *(f"  {code}: {{uom: kg, decimals: 3, cost: 1.10}}" for code in parts),
                "boms:",
                "  FG:",
                "    components:",
                *(f"      - {{item: {code}, qty: 0.85}}" for code in parts),
                "work_centers:",
                "  WC: {location: LINE, item: FG, counters: {good: plc.good}}",
                "devices:",
                "  plc: {driver: modbus_tcp, host: 127.0.0.1, port: 5020, unit: 1,"
                " points: {good: {address: 0, type: uint32}}}",
                "",
            ]
        ),
    )


def _reading(n: int) -> CounterReading:
    ts = START + timedelta(seconds=n / 4)
    return CounterReading(key="plc.good", ts=ts, point="plc.good", value=n)


def _aged(tmp_path: Path) -> Ledger:
    """A ledger after AGED_UNITS posted one reading at a time, as the agent did before
    posting windows (and does with post_interval_s: 0)."""
    ledger = open_ledger(load(_config(tmp_path)))
    receipts = [
        Receive(key=f"r-{code}", ts=START, item=code, qty=Decimal(10**7), location="LINE", lot="L1")
        for code in (f"C{n:02d}" for n in range(BOM_LINES))
    ]
    assert all(r.ok for r in ledger.execute_batch(list(receipts)))
    readings = [_reading(n) for n in range(AGED_UNITS + 1)]
    for first in range(0, len(readings), 500):
        order = f"ORD-{first}"  # an order a shift: the window posts to the last one
        start = StartOrder(key=order, ts=START, order=order, work_center="WC", item="FG")
        assert ledger.execute(start).ok
        ledger.execute_batch(list(readings[first : first + 500]))
        assert ledger.execute(CloseOrder(key=f"close-{order}", ts=START, order=order)).ok
    start = StartOrder(key="ORD-LAST", ts=START, order="ORD-LAST", work_center="WC", item="FG")
    assert ledger.execute(start).ok
    return ledger


def _pages_of_one_window(ledger: Ledger, db: Path) -> Counter[str]:
    """The WAL frames of one posting window's commit (120 units), by b-tree."""
    conn = ledger.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    assert ledger.execute(_reading(AGED_UNITS + 120)).ok
    frames = _wal_frames(db.with_name(db.name + "-wal"))
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as ro:
        names = dict(ro.execute("SELECT pageno, name FROM dbstat"))
    return Counter(names.get(page, "?") for page in frames)


def _wal_frames(wal: Path) -> list[int]:
    """The page number of every frame in a WAL file (its format: sqlite.org/fileformat.html)."""
    data = wal.read_bytes()
    page_size = int.from_bytes(data[8:12], "big")
    frame = 24 + page_size
    return [
        int.from_bytes(data[at : at + 4], "big") for at in range(32, len(data) - frame + 1, frame)
    ]


def test_a_window_on_an_aged_ledger_writes_a_few_pages_per_btree_not_one_per_item(
    tmp_path: Path,
) -> None:
    ledger = _aged(tmp_path)
    try:
        db = tmp_path / "var" / "ledger.sqlite"
        pages = _pages_of_one_window(ledger, db)
    finally:
        ledger.conn.close()
    journal_indexes = {n: pages[n] for n in ("idx_journal_id", "journal_order") if n in pages}
    assert "journal_order" in journal_indexes, pages  # the window posts to an order
    # the window adds 21 journal rows (one completion, twenty consumptions): the table takes
    # them on its last pages, and so must every index of it
    assert pages["journal"] <= 4, pages
    assert all(n <= 4 for n in journal_indexes.values()), pages
    assert sum(pages.values()) <= 30, pages
