"""The outbox as a thin pointer to the journal (schema m005): the published bytes stay
those the outbox held before, for new ledgers and for ledgers converted in place."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

from lineside.agent.commands import Complete, CounterReading, Receive
from lineside.agent.handlers import Ledger
from lineside.agent.ledger.outbox import stored_messages
from lineside.agent.ledger.outbox_pages import PageReader, TxMessage, tx_message
from lineside.agent.ledger.schema import MIGRATIONS
from lineside.agent.ledger.store import connect, tx_payload

# the lots a person may type: JSON escapes a quote, a backslash and non-ASCII text
ODD_LOTS = ("LOT-Müller-7", 'LOT-"12"', "LOT\\9", "LOT-\u00e9\u4e2d")


def _post(ledger: Ledger) -> None:
    for n in range(40):
        lot = ODD_LOTS[n % len(ODD_LOTS)] if n % 3 == 0 else f"L-{n}"
        result = ledger.execute(
            Receive(
                key=f"rcv-{n}",
                ts=ledger.clock(),
                item="BOLT-M8",
                qty=Decimal(n + 1),
                location="LINE-3",
                lot=lot,
            )
        )
        assert result.ok, result.error
    for value in (100, 103, 110, 111):
        ledger.execute(CounterReading(key="r", ts=ledger.clock(), point="plc3.good", value=value))
    assert ledger.execute(
        Complete(key="req-1", ts=ledger.clock(), work_center="PRESS-3", good=5)
    ).ok


def _as_python_wrote_it(conn: sqlite3.Connection) -> dict[int, str]:
    """Every 'tx' row's transaction as the writer's encoder wrote it (before m005), by id."""
    conn.row_factory = sqlite3.Row
    try:
        journal = {r["seq"]: r for r in conn.execute("SELECT * FROM journal")}
    finally:
        conn.row_factory = None
    ordered = conn.execute("SELECT id, tx FROM outbox WHERE stream = 'tx' ORDER BY id")
    return {
        row_id: json.dumps(tx_payload(journal[seq]), separators=(",", ":"))
        for row_id, seq in ordered.fetchall()
    }


def _expected(messages: list[TxMessage], python: dict[int, str]) -> list[bytes]:
    """The messages' bytes from the JSON Python wrote for their rows."""
    return [
        tx_message("press-3", m.seq, [t for i, t in python.items() if m.first_id <= i <= m.last_id])
        for m in messages
    ]


def _messages(conn: sqlite3.Connection, batch: int) -> list[bytes]:
    return [m.payload for m in PageReader(conn, "press-3", batch).read_by_rows(0, 1, 1000)]


def test_new_rows_point_at_the_journal_and_publish_the_same_bytes(ledger: Ledger) -> None:
    _post(ledger)
    conn = ledger.conn
    expected = _as_python_wrote_it(conn)
    stored = conn.execute("SELECT payload FROM outbox WHERE stream = 'tx' ORDER BY id").fetchall()
    kept = [p for (p,) in stored if p]
    assert len(stored) == len(expected) > 50
    assert kept and all("\\" in p for p in kept)  # only text JSON escapes keeps its payload
    assert len(kept) < len(stored) // 3
    assert conn.execute("SELECT COUNT(*) FROM outbox WHERE stream = 'alert'").fetchone()[0]
    for batch in (1, 7, 100):
        reader = PageReader(conn, "press-3", batch)
        messages = reader.read(0, 1, 1000)
        assert sum(m.count for m in messages) == len(expected)
        want = _expected(messages, expected)
        assert [m.payload for m in messages] == want
        assert [m.payload for m in reader.read_any(0, 1, 1000)] == want
        assert _messages(conn, batch) == want
        assert [m.payload for m in stored_messages(conn, "press-3", 1, 0)] == []


def _downgrade_to_v4(db: Path) -> None:
    """The ledger as schema version 4 left it: the JSON in every row, no pointer column,
    the indexes m005 drops."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        python = _as_python_wrote_it(conn)
        conn.execute("BEGIN")
        conn.executemany(
            "UPDATE outbox SET payload = ? WHERE id = ?", [(t, i) for i, t in python.items()]
        )
        conn.execute("ALTER TABLE outbox DROP COLUMN tx")
        conn.execute("ALTER TABLE journal DROP COLUMN reason")  # m007's
        conn.execute('CREATE INDEX "idx_journal_event" ON "journal" ("event")')
        conn.execute("CREATE INDEX outbox_unsent ON outbox(id) WHERE sent_ts IS NULL")
        conn.execute("DROP TABLE lots")  # m006's
        conn.execute("PRAGMA user_version = 4")
        conn.execute("COMMIT")


def test_a_ledger_of_the_previous_schema_is_converted_in_place(
    ledger: Ledger, tmp_path: Path
) -> None:
    _post(ledger)
    db = Path(ledger.conn.execute("PRAGMA database_list").fetchone()[2])
    reader = PageReader(ledger.conn, "press-3", 5)
    sent = reader.read(0, 1, 3)  # three messages stored as the publisher stores them
    ledger.conn.executemany(
        "INSERT INTO messages (seq, first_id, last_id, count, created_ts)"
        " VALUES (?, ?, ?, ?, '2026-01-05T06:00:00.000Z')",
        [(m.seq, m.first_id, m.last_id, m.count) for m in sent],
    )
    ledger.conn.close()
    _downgrade_to_v4(db)
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as old:
        assert old.execute("PRAGMA user_version").fetchone()[0] == 4
        stored = dict(old.execute("SELECT id, payload FROM outbox WHERE stream = 'tx'"))
    conn = connect(db)  # migrates to the current version
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        messages = PageReader(conn, "press-3", 5).read(0, 1, 1000)
        assert [m.payload for m in messages] == _expected(messages, stored)
        assert _messages(conn, 5) == _expected(messages, stored)
        replayed = stored_messages(conn, "press-3", 1, 3)
        assert [m.payload for m in replayed] == [m.payload for m in sent]
        assert [m.payload for m in sent] == _expected(sent, stored)
        empty = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE stream = 'tx' AND payload = ''"
        ).fetchone()[0]
        # every row whose JSON SQLite builds alike is converted (a quote too: both write \")
        assert empty >= sum(1 for p in stored.values() if "\\" not in p) > len(stored) // 2
        assert empty < len(stored)  # non-ASCII text: Python wrote \u escapes, SQLite would not
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema")}
        assert not {"idx_journal_event", "outbox_unsent"} & names
    finally:
        conn.close()


def test_a_message_whose_journal_rows_are_gone_is_not_replayed(ledger: Ledger) -> None:
    """Retention may prune acknowledged journal rows: a replay leaves such a message out
    (its bytes can no longer be the same) rather than send it short or with nulls."""
    _post(ledger)
    conn = ledger.conn
    sent = PageReader(conn, "press-3", 5).read(0, 1, 2)
    conn.executemany(
        "INSERT INTO messages (seq, first_id, last_id, count, created_ts)"
        " VALUES (?, ?, ?, ?, '2026-01-05T06:00:00.000Z')",
        [(m.seq, m.first_id, m.last_id, m.count) for m in sent],
    )
    pointed = conn.execute(
        "SELECT tx FROM outbox WHERE id BETWEEN ? AND ? AND payload = '' LIMIT 1",
        (sent[1].first_id, sent[1].last_id),
    ).fetchone()
    assert pointed is not None
    conn.execute("DELETE FROM journal WHERE seq = ?", pointed)
    assert [m.payload for m in stored_messages(conn, "press-3", 1, 2)] == [sent[0].payload]
