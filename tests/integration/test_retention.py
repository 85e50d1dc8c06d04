"""History retention on a real ledger file: only acknowledged rows older than keep_days
go, what must outlive them stays, genealogy answers the same, space is reused, and the
archive is valid gzip NDJSON."""

from __future__ import annotations

import gzip
import json
import logging
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lineside.agent import reports, status
from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import (
    Complete,
    CounterReading,
    MeterReading,
    Receive,
    Reverse,
    StartOrder,
)
from lineside.agent.config import ConfigInvalid, load
from lineside.agent.handlers import Ledger
from lineside.agent.ledger.queries import oldest_kept
from lineside.agent.ledger.retention import (
    BATCH_ROWS,
    Pruner,
    Retention,
    archive_problems,
    prune_history,
)
from lineside.agent.metrics import Metrics
from lineside.agent.sync.store_loop import PRUNE_EVERY_S, PRUNE_PAUSE_S, StoreLoop
from tests.conftest import StepClock, write_config
from tests.unit.test_sync_publisher import FakeTransport, Harness

KEEP = Decimal(90)
KEPT_TABLES = ("stock", "carries", "standards", "counters", "held", "orders", "counts")


def new_ledger(path: Path) -> Ledger:
    return open_ledger(load(write_config(path)), StepClock())


def run(ledger: Ledger, command: Any) -> None:
    result = ledger.execute(command)
    assert result.ok, result.error


def start(ledger: Ledger, order: str) -> None:
    run(
        ledger,
        StartOrder(
            key=f"start-{order}",
            ts=ledger.clock(),
            order=order,
            work_center="PRESS-3",
            item="BRKT-100",
        ),
    )


def receive(ledger: Ledger, lot: str, qty: str) -> None:
    run(
        ledger,
        Receive(
            key=f"rcv-{lot}",
            ts=ledger.clock(),
            item="STEEL-2MM",
            qty=Decimal(qty),
            lot=lot,
            location="LINE-3",
        ),
    )


def complete(ledger: Ledger, good: int, n: int, scrap: int = 0) -> None:
    key = f"c-{n}"
    run(ledger, Complete(key=key, ts=ledger.clock(), work_center="PRESS-3", good=good, scrap=scrap))


def first_half(ledger: Ledger) -> None:
    receive(ledger, "HEAT-1", "10")
    receive(ledger, "HEAT-2", "50")
    start(ledger, "ORD-1")
    for n in range(6):
        complete(ledger, 3, n, scrap=n % 2)
    tx = ledger.conn.execute(
        "SELECT id FROM journal WHERE kind = 'backflush' ORDER BY seq DESC LIMIT 1"
    ).fetchone()[0]
    run(ledger, Reverse(key="rev-1", ts=ledger.clock(), tx_id=tx))
    for value in ("100", "100.5", "101.25"):
        run(
            ledger,
            MeterReading(key="m", ts=ledger.clock(), point="doser3.total_l", value=Decimal(value)),
        )
    run(ledger, CounterReading(key="r", ts=ledger.clock(), point="plc3.good", value=40))
    run(ledger, CounterReading(key="r", ts=ledger.clock(), point="plc3.good", value=47))


def second_half(ledger: Ledger) -> None:
    complete(ledger, 4, 10)
    start(ledger, "ORD-2")
    receive(ledger, "HEAT-3", "5")
    for n in range(11, 15):
        complete(ledger, 5, n)


def genealogy(ledger: Ledger) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for order in ("ORD-1", "ORD-2"):
        out[order] = reports.genealogy_of_order(ledger.conn, order)
    for lot in ("HEAT-1", "HEAT-2", "HEAT-3"):
        out[lot] = reports.genealogy_of_lot(ledger.conn, lot)
    return out


def kept(conn: sqlite3.Connection) -> list[list[tuple[Any, ...]]]:
    return [conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in KEPT_TABLES]


def deliver(conn: sqlite3.Connection, upto_messages: int | None = None) -> None:
    """Publish the outbox to a fake broker and acknowledge it (all, or the first messages)."""
    h, net = Harness(conn, batch=10, inflight=1000), FakeTransport()
    h.cycle(net)
    mids = net.mids() if upto_messages is None else net.mids()[:upto_messages]
    for mid in mids:
        h.window.on_ack(mid)
    h.feeder.step()
    h.feeder.finish()


def prune_all(ledger: Ledger, days: Decimal = KEEP, limit: int = BATCH_ROWS) -> int:
    now = ledger.clock.now + timedelta(days=float(days) + 1)  # type: ignore[attr-defined]
    total = 0
    while True:
        rows, keys = prune_history(ledger.conn, KEEP, now, limit=limit)
        total += rows
        if max(rows, keys) < limit:
            return total


def journal_rows(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0])


def unsent(conn: sqlite3.Connection) -> int:
    found = conn.execute("SELECT COUNT(*) FROM outbox WHERE stream = 'tx' AND sent_ts IS NULL")
    return int(found.fetchone()[0])


def test_genealogy_stock_and_state_are_the_same_with_history_pruned(tmp_path: Path) -> None:
    kept_all, pruned = new_ledger(tmp_path / "a"), new_ledger(tmp_path / "b")
    for ledger in (kept_all, pruned):
        first_half(ledger)
    before = genealogy(pruned)
    state = kept(pruned.conn)
    deliver(pruned.conn)
    assert prune_all(pruned) == journal_rows(kept_all.conn) - 1  # the newest row stays
    assert journal_rows(pruned.conn) == 1
    assert genealogy(pruned) == before  # HEAT-1's and ORD-1's rows are all gone
    assert before["HEAT-1"] and before["ORD-1"]
    assert kept(pruned.conn) == state
    assert reports.stock(pruned.conn, pruned.master) == reports.stock(
        kept_all.conn, kept_all.master
    )
    # Counting goes on from the stored state: the same postings, the same books.
    for ledger in (kept_all, pruned):
        second_half(ledger)
    assert genealogy(pruned) == genealogy(kept_all)
    assert kept(pruned.conn) == kept(kept_all.conn)


def test_a_partly_pruned_order_adds_its_summary_and_its_kept_rows(tmp_path: Path) -> None:
    kept_all, pruned = new_ledger(tmp_path / "a"), new_ledger(tmp_path / "b")
    for ledger in (kept_all, pruned):
        first_half(ledger)
        second_half(ledger)
    deliver(pruned.conn)
    now = pruned.clock.now + timedelta(days=100)  # type: ignore[attr-defined]
    for limit in (7, 5, 9):  # three batches that end mid-order and mid-completion
        assert prune_history(pruned.conn, KEEP, now, limit=limit)[0] == limit
    assert journal_rows(pruned.conn) == journal_rows(kept_all.conn) - 21
    assert genealogy(pruned) == genealogy(kept_all)


def test_unsent_rows_outlive_keep_days_until_the_broker_has_them(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    first_half(ledger)
    second_half(ledger)
    rows = journal_rows(ledger.conn)
    assert prune_all(ledger, days=Decimal(400)) == 0  # an outage of a year: nothing goes
    assert journal_rows(ledger.conn) == rows and unsent(ledger.conn) == rows
    deliver(ledger.conn, upto_messages=2)  # the broker is back and takes two messages
    taken = rows - unsent(ledger.conn)
    assert 0 < taken < rows
    assert prune_all(ledger) == taken
    assert journal_rows(ledger.conn) == rows - taken == unsent(ledger.conn)
    deliver(ledger.conn)
    assert prune_all(ledger) == rows - taken - 1
    assert journal_rows(ledger.conn) == 1


def test_only_rows_older_than_keep_days_go(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    first_half(ledger)
    deliver(ledger.conn)
    stamps = [r[0] for r in ledger.conn.execute("SELECT ts FROM journal ORDER BY seq")]
    middle = stamps[len(stamps) // 2]
    when = datetime.fromisoformat(middle.replace("Z", "+00:00")) + timedelta(days=90)
    assert prune_history(ledger.conn, KEEP, when - timedelta(days=1)) == (0, 0)
    pruned, _ = prune_history(ledger.conn, KEEP, when)
    assert pruned == sum(1 for ts in stamps if ts < middle) > 0
    assert oldest_kept(ledger.conn) == middle


def test_request_ids_are_remembered_for_keep_days(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    receive(ledger, "HEAT-1", "10")
    again = Receive(
        key="rcv-HEAT-1", ts=ledger.clock(), item="STEEL-2MM", qty=Decimal(10), lot="HEAT-1",
        location="LINE-3",
    )  # fmt: skip
    assert ledger.execute(again).duplicate
    deliver(ledger.conn)
    prune_all(ledger)
    assert ledger.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    late = ledger.execute(again)  # a retry older than keep_days runs again
    assert late.ok and not late.duplicate


def test_freed_pages_are_reused_before_the_file_grows(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    receive(ledger, "HEAT-1", "100000")
    start(ledger, "ORD-1")
    for n in range(400):
        complete(ledger, 1, n)
    deliver(ledger.conn)
    conn = ledger.conn

    def pages() -> tuple[int, int]:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return (
            conn.execute("PRAGMA page_count").fetchone()[0],
            conn.execute("PRAGMA freelist_count").fetchone()[0],
        )

    size, free = pages()
    assert prune_all(ledger) > 1000
    after, freed = pages()
    assert after == size and freed > free + 20
    for n in range(400, 500):  # a quarter of what was pruned
        complete(ledger, 1, n)
    grown, left = pages()
    assert grown == size and left < freed  # the file did not grow: free pages were used


def test_the_archive_holds_every_pruned_row_as_gzip_ndjson(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    first_half(ledger)
    second_half(ledger)
    deliver(ledger.conn)
    ids = [r[0] for r in ledger.conn.execute("SELECT id FROM journal ORDER BY seq")]
    archive = tmp_path / "archive" / "journal"
    now = ledger.clock.now + timedelta(days=100)  # type: ignore[attr-defined]
    assert prune_history(ledger.conn, KEEP, now, archive, limit=10)[0] == 10
    assert prune_history(ledger.conn, KEEP, now, archive)[0] == len(ids) - 11
    files = sorted(archive.iterdir())
    assert [f.name for f in files] == ["journal-2026-01-05.ndjson.gz"]
    assert oct(archive.stat().st_mode & 0o777) == "0o750"
    lines = gzip.decompress(files[0].read_bytes()).decode().splitlines()  # two members
    assert [json.loads(line)["id"] for line in lines] == ids[:-1]
    assert set(json.loads(lines[0])) == {
        "id", "ts", "kind", "item", "location", "qty", "uom", "lot", "order", "work_center",
        "cost", "cause",
    }  # fmt: skip
    jq = subprocess.run(
        f"zcat {files[0]} | jq -r .id", shell=True, capture_output=True, text=True, check=True
    )
    assert jq.stdout.split() == ids[:-1]


def test_an_unwritable_archive_prunes_nothing_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = new_ledger(tmp_path)
    first_half(ledger)
    deliver(ledger.conn)
    rows = journal_rows(ledger.conn)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    pruner = Pruner()
    now = ledger.clock.now + timedelta(days=100)  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, "lineside.retention"):
        for _ in range(3):
            assert pruner.batch(ledger.conn, Retention(KEEP, blocked / "archive"), now) is False
    assert journal_rows(ledger.conn) == rows and pruner.pruned == 0
    refused = [r for r in caplog.records if "nothing pruned" in r.getMessage()]
    assert len(refused) == 1 and "cannot write the archive" in refused[0].getMessage()
    assert pruner.batch(ledger.conn, Retention(KEEP, tmp_path / "archive"), now) is False
    keys = 10  # and the request ids of the ten commands, as old
    assert pruner.pruned == rows - 1 + keys
    assert "pruning resumes" in caplog.text


def test_keep_days_bounds_and_archive_dir_checks(tmp_path: Path) -> None:
    base = "gateway: {id: gw, site: s, data_dir: ./var}\n"
    with pytest.raises(ConfigInvalid, match=r"ledger\.keep_days"):
        load(write_config(tmp_path, base + "ledger: {keep_days: 0}\n"))
    (tmp_path / "file").write_text("")
    loaded = load(write_config(tmp_path, base + "ledger: {archive_dir: file}\n"))
    assert [str(e) for e in archive_problems(loaded)] == [
        f"{tmp_path / 'line.yaml'}:2: ledger.archive_dir: {tmp_path / 'file'} is not a folder"
    ]
    fine = load(write_config(tmp_path, base + "ledger: {keep_days: 0.5, archive_dir: a/b}\n"))
    assert archive_problems(fine) == [] and fine.config.ledger.keep_days == Decimal("0.5")
    assert not (tmp_path / "a").exists()  # check creates nothing


def test_the_store_thread_prunes_in_batches_with_pauses_then_waits_an_hour(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = new_ledger(tmp_path)
    receive(ledger, "HEAT-1", "100000")
    start(ledger, "ORD-1")
    for n in range(60):
        complete(ledger, 1, n)  # 1 completion and 3 backflushes each
    deliver(ledger.conn)
    later = ledger.clock.now + timedelta(days=100)  # type: ignore[attr-defined]
    shared = SimpleNamespace(
        mqtt=SimpleNamespace(retention_days=Decimal(7)),
        clock=lambda: later,
        retention=Retention(KEEP),
        pruner=Pruner(batch_rows=40),
    )
    loop = StoreLoop(shared, lambda force: None)  # type: ignore[arg-type]
    full = (journal_rows(ledger.conn) - 1) // 40
    assert full >= 3
    with caplog.at_level(logging.INFO, "lineside.retention"):
        waits = [loop._prune(ledger.conn) for _ in range(full + 2)]
    assert waits == [PRUNE_PAUSE_S] * full + [PRUNE_EVERY_S] * 2  # the next round: nothing
    assert journal_rows(ledger.conn) == 1
    assert len([r for r in caplog.records if "journal rows and" in r.getMessage()]) == 1
    # Each round pruned the delivered outbox rows first (the newest kept), as before.
    tx_rows = ledger.conn.execute("SELECT COUNT(*) FROM outbox WHERE stream = 'tx'")
    assert tx_rows.fetchone()[0] == 1


def test_pruned_rows_are_counted_in_the_metrics() -> None:
    metrics = Metrics()
    metrics.pruned.inc(3)
    assert b"lineside_pruned_rows_total 3.0" in metrics.render()


def test_status_names_the_oldest_journal_row_kept(tmp_path: Path) -> None:
    loaded = load(write_config(tmp_path))
    ledger = open_ledger(loaded, StepClock())
    first_half(ledger)
    deliver(ledger.conn)
    prune_all(ledger)
    newest = ledger.conn.execute("SELECT ts FROM journal").fetchone()[0]
    data = status.gather(loaded, ledger, ledger.clock())
    assert data["journal_oldest_ts"] == newest
    assert f"journal: oldest row kept {newest}" in status.render_status(data).splitlines()


def test_report_genealogy_prints_the_same_for_a_pruned_lot(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ledger = open_ledger(load(config), StepClock())
    first_half(ledger)
    second_half(ledger)

    def report(*what: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "lineside.agent.cli", "report", "genealogy", "-c", str(config),
             *what],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout

    asks = [("--lot", "HEAT-1"), ("--lot", "HEAT-2"), ("--order", "ORD-1"), ("--order", "ORD-2")]
    before = [report(*ask) for ask in asks] + [report(*asks[0], "--json")]
    deliver(ledger.conn)
    prune_all(ledger)
    assert journal_rows(ledger.conn) == 1
    assert [report(*ask) for ask in asks] + [report(*asks[0], "--json")] == before
    assert "ORD-1" in before[0] and "HEAT-1" in before[2]
