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

from lineside.agent.ledger.store import iso
from lineside.agent.sync.payloads import tx_message

log = logging.getLogger("lineside.sync")

SQLITE_FULL = 13
# One read never loads more than this many outbox rows, whatever batch_max × inflight_max is.
PAGE_ROWS = 5000
LAST_ACK_KEY = "sync_last_ack_ts"
MARKED_KEY = "sync_marked_seq"  # every message up to this seq has its outbox rows marked sent


class SecondPublisher(RuntimeError):
    """Another process wrote P/tx messages into this ledger while we were publishing."""


@dataclass(frozen=True, slots=True)
class TxMessage:
    """One P/tx message: outbox rows first_id..last_id of stream 'tx', count of them."""

    seq: int
    first_id: int
    last_id: int
    count: int
    payload: bytes


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
        payloads = [
            str(r[0])
            for r in self.conn.execute(
                "SELECT payload FROM outbox WHERE stream = 'tx' AND id BETWEEN ? AND ? ORDER BY id",
                (first_id, last_id),
            )
        ]
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
        """The next messages from unsent rows after the cursor, not yet stored (see write).

        Each message is read as one row that SQLite concatenates itself: a row-by-row read
        hands Python's GIL back and forth once per transaction, which starves the network
        thread while a big backlog drains.
        """
        out: list[TxMessage] = []
        after, seq = self.cursor, self.next_seq
        for _ in range(max(1, min(max_messages, PAGE_ROWS // self.batch_max))):
            message = self._read_message(seq, after)
            if message is None:
                break
            out.append(message)
            after, seq = message.last_id, seq + 1
        return out

    def _read_message(self, seq: int, after: int) -> TxMessage | None:
        count, ids, joined = self.conn.execute(
            "SELECT COUNT(*), group_concat(id), group_concat(payload, ',') FROM"
            " (SELECT id, payload FROM outbox WHERE stream = 'tx' AND sent_ts IS NULL"
            "  AND id > ? ORDER BY id LIMIT ?)",
            (after, self.batch_max),
        ).fetchone()
        if not count:
            return None
        order = [int(i) for i in str(ids).split(",")]
        if order != sorted(order):
            # SQLite does not promise the order inside group_concat; it keeps the
            # subquery's in practice, and this check makes sure of it.
            return self._read_message_by_rows(seq, after)
        head = f'{{"gateway":{json.dumps(self.gateway)},"seq":{seq},"transactions":['
        payload = (head + str(joined) + "]}").encode("utf-8")
        return TxMessage(seq, order[0], order[-1], int(count), payload)

    def _read_message_by_rows(self, seq: int, after: int) -> TxMessage:
        rows = self.conn.execute(
            "SELECT id, payload FROM outbox WHERE stream = 'tx' AND sent_ts IS NULL"
            " AND id > ? ORDER BY id LIMIT ?",
            (after, self.batch_max),
        ).fetchall()
        payload = tx_message(self.gateway, seq, [r[1] for r in rows])
        return TxMessage(seq, rows[0][0], rows[-1][0], len(rows), payload)

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
        with transaction(self.conn) as conn:
            if new:
                self._check_single_publisher()
                conn.executemany(
                    "INSERT INTO messages (seq, first_id, last_id, count, created_ts)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(m.seq, m.first_id, m.last_id, m.count, ts) for m in new],
                )
            if acked_list:
                conn.executemany(
                    "UPDATE messages SET acked_ts = ? WHERE seq = ? AND acked_ts IS NULL",
                    [(ts, m.seq) for m in acked_list],
                )
            if alert_list:
                conn.executemany(
                    "UPDATE outbox SET sent_ts = ? WHERE id = ? AND sent_ts IS NULL",
                    [(ts, i) for i in alert_list],
                )
            if acked_list or alert_list:
                _set_meta(conn, LAST_ACK_KEY, ts)
        if new:
            self.next_seq = new[-1].seq + 1
            self.cursor = new[-1].last_id

    def _check_single_publisher(self) -> None:
        # The lock file keeps a second publisher out; this catches one that ignored it.
        if self._last_message() != (self.next_seq - 1, self.cursor):
            raise SecondPublisher(
                "another process added P/tx messages to this ledger: only one publisher may run"
            )


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
            _set_meta(conn, MARKED_KEY, str(batch[-1][0]))
        messages += len(batch)
        if left is not None:
            left -= len(batch)
    return messages, total


def marked_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (MARKED_KEY,)).fetchone()
    return 0 if row is None else int(row[0])


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
