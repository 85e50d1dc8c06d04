"""The publisher's side of the ledger: read the outbox in pages, store P/tx messages, record acks.

A P/tx message is stored as (seq, first_id, last_id, count) before it is published. Its
bytes are not stored: they are rebuilt from outbox rows first_id..last_id of stream 'tx',
which never change and never move (prune keeps the newest row, so SQLite never hands an id
out twice), so a re-send after a restart repeats the seq with identical bytes.

An acknowledgement is recorded on the message (one row per batch_max transactions), in the
publisher's own short transaction. Marking the message's outbox rows sent (sent_ts) is
done afterwards by mark_sent on the worker thread, so the network loop never waits for the
rewrite of a hundred rows per message.

Every statement runs on the caller's own connection. Reads are single statements fetched
whole, so no read transaction stays open and blocks WAL checkpoints.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lineside.agent.ledger.outbox_pages import (
    PAGE_ROWS,
    TX_JSON,
    PageReader,
    TxMessage,
    tx_message,
)
from lineside.agent.ledger.store import connect, iso, meta, set_meta

log = logging.getLogger("lineside.sync")

SQLITE_FULL = 13
LAST_ACK_KEY = "sync_last_ack_ts"
MARKED_KEY = "sync_marked_seq"  # every message up to this seq has its outbox rows marked sent


class SecondPublisher(RuntimeError):
    """Another process wrote P/tx messages into this ledger while we were publishing."""


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    payload: bytes


def is_disk_full(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    return code == SQLITE_FULL or "disk is full" in str(exc)


def transaction(conn: sqlite3.Connection) -> _Transaction:
    return _Transaction(conn)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error (if SQLite has not already)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:  # SQLite rolls back by itself after SQLITE_FULL
            self.conn.execute("ROLLBACK")


class OutboxStore:
    def __init__(self, conn: sqlite3.Connection, gateway: str, batch_max: int) -> None:
        self.conn = conn
        self.gateway = gateway
        self.batch_max = batch_max
        self._data_version = -1
        self.pages = PageReader(conn, gateway, batch_max)
        last = self._last_message()
        self.next_seq = last[0] + 1
        self.cursor = last[1]  # the highest outbox id already in a message

    def _last_message(self) -> tuple[int, int]:
        row = self.conn.execute(
            "SELECT seq, last_id FROM messages ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def data_changed(self) -> bool:
        """True when another connection committed since the last call (PRAGMA data_version)."""
        version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        changed = version != self._data_version
        self._data_version = version
        return changed

    # -- reading ---------------------------------------------------------------------------
    def unacked(self) -> list[TxMessage]:
        """Messages stored but not acknowledged, in seq order, rebuilt byte for byte."""
        rows = self.conn.execute(
            "SELECT seq, first_id, last_id, count FROM messages WHERE acked_ts IS NULL ORDER BY seq"
        ).fetchall()
        return [self._rebuild(int(s), int(a), int(b), int(n)) for s, a, b, n in rows]

    def _rebuild(self, seq: int, first_id: int, last_id: int, count: int) -> TxMessage:
        payloads = _payloads(self.conn, first_id, last_id)
        if len(payloads) != count:
            # Outbox rows of an unacknowledged message were deleted by hand: send what is
            # left under the same seq, and say so (consumers see a repeat that differs).
            log.error(
                "P/tx seq %d: %d of its %d outbox rows (ids %d..%d) are missing",
                seq,
                count - len(payloads),
                count,
                first_id,
                last_id,
            )
        payload = tx_message(self.gateway, seq, payloads)
        return TxMessage(seq, first_id, last_id, count, payload)

    def unsent_alerts(self, after_id: int, limit: int) -> list[AlertRow]:
        rows = self.conn.execute(
            "SELECT id, payload FROM outbox WHERE stream = 'alert' AND sent_ts IS NULL"
            " AND id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [AlertRow(int(r[0]), r[1].encode("utf-8")) for r in rows]

    def prepare(self, max_messages: int) -> list[TxMessage]:
        """Up to max_messages next messages from unsent rows after the cursor, not yet
        stored (see write), read a page at a time."""
        out: list[TxMessage] = []
        after, seq = self.cursor, self.next_seq
        while len(out) < max_messages:
            wanted = max(1, min(max_messages - len(out), PAGE_ROWS // self.batch_max))
            page = self.pages.read(after, seq, wanted)
            out.extend(page)
            if len(page) < wanted:
                break
            after, seq = page[-1].last_id, page[-1].seq + 1
        return out

    # -- writing ---------------------------------------------------------------------------
    def write(
        self,
        new: list[TxMessage],
        acked: Iterable[TxMessage],
        acked_alerts: Iterable[int],
        now: datetime,
    ) -> None:
        """Store new messages and record acknowledgements in one transaction (one fsync).

        Raises sqlite3.Error (disk full, busy) with nothing changed; the caller retries.
        """
        ts = iso(now)
        acked_list, alert_list = list(acked), list(acked_alerts)
        # One statement each, whatever the number of rows: every statement hands Python's
        # GIL to the network thread and waits to get it back.
        with transaction(self.conn) as conn:
            if new:
                self._check_single_publisher()
                conn.execute(
                    "INSERT INTO messages (seq, first_id, last_id, count, created_ts)"
                    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, ?"
                    " FROM json_each(?)",
                    (ts, json.dumps([[m.seq, m.first_id, m.last_id, m.count] for m in new])),
                )
            if acked_list:
                conn.execute(
                    "UPDATE messages SET acked_ts = ? WHERE acked_ts IS NULL"
                    " AND seq IN (SELECT value FROM json_each(?))",
                    (ts, json.dumps([m.seq for m in acked_list])),
                )
            if alert_list:
                conn.execute(
                    "UPDATE outbox SET sent_ts = ? WHERE sent_ts IS NULL"
                    " AND id IN (SELECT value FROM json_each(?))",
                    (ts, json.dumps(alert_list)),
                )
            if acked_list or alert_list:
                set_meta(conn, LAST_ACK_KEY, ts)
        if new:
            self.next_seq = new[-1].seq + 1
            self.cursor = new[-1].last_id

    def _check_single_publisher(self) -> None:
        # The lock file keeps a second publisher out; this catches one that ignored it.
        if self._last_message() != (self.next_seq - 1, self.cursor):
            raise SecondPublisher(
                "another process added P/tx messages to this ledger: only one publisher may run"
            )


def _payloads(conn: sqlite3.Connection, first_id: int, last_id: int) -> list[str]:
    """The transactions' JSON of the 'tx' rows first_id..last_id; a row whose journal row
    is gone (pruned) has none, so the message no longer counts as whole."""
    return [
        str(r[0])
        for r in conn.execute(
            f"SELECT {TX_JSON} FROM outbox AS o WHERE stream = 'tx' AND id BETWEEN ? AND ?"
            " ORDER BY id",
            (first_id, last_id),
        )
        if r[0] is not None
    ]


def stored_messages(
    conn: sqlite3.Connection, gateway: str, from_seq: int, to_seq: int
) -> list[TxMessage]:
    """The stored P/tx messages from_seq..to_seq that the ledger still holds whole, rebuilt
    byte for byte (for a replay). A message pruned after retention_days, or whose outbox
    rows are gone, is left out: its bytes can no longer be the same."""
    found = conn.execute(
        "SELECT seq, first_id, last_id, count FROM messages WHERE seq BETWEEN ? AND ? ORDER BY seq",
        (from_seq, to_seq),
    ).fetchall()
    out = []
    for seq, first_id, last_id, count in found:
        payloads = _payloads(conn, int(first_id), int(last_id))
        if len(payloads) == int(count):
            out.append(
                TxMessage(
                    int(seq),
                    int(first_id),
                    int(last_id),
                    int(count),
                    tx_message(gateway, int(seq), payloads),
                )
            )
    return out


def mark_sent(conn: sqlite3.Connection, max_messages: int | None = None) -> tuple[int, int]:
    """Mark the outbox rows of acknowledged messages sent, oldest first.

    Stops at the first message not yet acknowledged (so everything up to the MARKED_KEY
    watermark is marked), or after max_messages. Each transaction covers at most 10
    messages, so the write lock is only held briefly. Safe to run from any connection, any
    number of times. Returns (messages, rows) marked.
    """
    total = messages = 0
    left = max_messages
    while left is None or left > 0:
        chunk = 10 if left is None else min(10, left)
        marked = marked_seq(conn)
        done = conn.execute(
            "SELECT seq, first_id, last_id, acked_ts FROM messages WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (marked, chunk),
        ).fetchall()
        batch: list[tuple[int, int, int, str]] = []
        for seq, first_id, last_id, acked_ts in done:
            if acked_ts is None or seq != marked + len(batch) + 1:
                break
            batch.append((seq, first_id, last_id, acked_ts))
        if not batch:
            break
        with transaction(conn):
            if marked_seq(conn) != marked:
                continue  # someone else marked meanwhile: read again
            for _, first_id, last_id, acked_ts in batch:
                total += conn.execute(
                    "UPDATE outbox SET sent_ts = ? WHERE stream = 'tx' AND id BETWEEN ? AND ?"
                    " AND sent_ts IS NULL",
                    (acked_ts, first_id, last_id),
                ).rowcount
            set_meta(conn, MARKED_KEY, str(batch[-1][0]))
        messages += len(batch)
        if left is not None:
            left -= len(batch)
    return messages, total


def newest_seq(conn: sqlite3.Connection) -> int:
    """The seq of the newest stored P/tx message (0 before the first)."""
    return int(conn.execute("SELECT MAX(seq) FROM messages").fetchone()[0] or 0)


def journal_head(conn: sqlite3.Connection) -> object:
    """The newest journal seq: when it moves, stock balances may have changed."""
    return conn.execute("SELECT MAX(seq) FROM journal").fetchone()[0]


def open_for_publisher(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """The publisher's own connection: waits at most busy_timeout_ms for the write lock."""
    conn = connect(path)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return conn


def marked_seq(conn: sqlite3.Connection) -> int:
    return int(meta(conn, MARKED_KEY) or 0)
