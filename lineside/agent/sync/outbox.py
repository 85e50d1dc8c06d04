"""The publisher's side of the ledger: read the outbox in pages, persist P/tx messages, record acks.

Every statement here runs on the publisher's own connection. Writes are short explicit
transactions; reads are single statements fetched whole, so no read transaction stays open
and blocks WAL checkpoints.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from lineside.agent.ledger.store import iso
from lineside.agent.sync.payloads import tx_message

SQLITE_FULL = 13
# One read never loads more than this many outbox rows, whatever batch_max × inflight_max is.
PAGE_ROWS = 5000
LAST_ACK_KEY = "sync_last_ack_ts"


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

    def unacked(self) -> list[TxMessage]:
        """Messages built but not acknowledged, in seq order: re-sent first, byte for byte."""
        rows = self.conn.execute(
            "SELECT seq, first_id, last_id, count, payload FROM messages"
            " WHERE acked_ts IS NULL ORDER BY seq"
        ).fetchall()
        return [TxMessage(r[0], r[1], r[2], r[3], r[4].encode("utf-8")) for r in rows]

    def unsent_alerts(self, after_id: int, limit: int) -> list[AlertRow]:
        rows = self.conn.execute(
            "SELECT id, payload FROM outbox WHERE stream = 'alert' AND sent_ts IS NULL"
            " AND id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [AlertRow(int(r[0]), r[1].encode("utf-8")) for r in rows]

    def prepare(self, max_messages: int) -> list[TxMessage]:
        """The next messages from unsent rows after the cursor, not yet stored (see write)."""
        limit = max(self.batch_max, min(max_messages * self.batch_max, PAGE_ROWS))
        rows = self.conn.execute(
            "SELECT id, payload FROM outbox WHERE stream = 'tx' AND sent_ts IS NULL"
            " AND id > ? ORDER BY id LIMIT ?",
            (self.cursor, limit),
        ).fetchall()
        out: list[TxMessage] = []
        seq = self.next_seq
        for start in range(0, len(rows), self.batch_max):
            chunk = rows[start : start + self.batch_max]
            payload = tx_message(self.gateway, seq, [r[1] for r in chunk])
            out.append(TxMessage(seq, chunk[0][0], chunk[-1][0], len(chunk), payload))
            seq += 1
        return out

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
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if new:
                self._check_single_publisher()
                self.conn.executemany(
                    "INSERT INTO messages (seq, first_id, last_id, count, payload, created_ts)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (m.seq, m.first_id, m.last_id, m.count, m.payload.decode("utf-8"), ts)
                        for m in new
                    ],
                )
            self._record_acks(acked_list, alert_list, ts)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        if new:
            self.next_seq = new[-1].seq + 1
            self.cursor = new[-1].last_id

    def _check_single_publisher(self) -> None:
        # The lock file keeps a second publisher out; this catches one that ignored it.
        if self._last_message() != (self.next_seq - 1, self.cursor):
            raise SecondPublisher(
                "another process added P/tx messages to this ledger: only one publisher may run"
            )

    def _record_acks(self, acked: list[TxMessage], alerts: list[int], ts: str) -> None:
        if acked:
            self.conn.executemany(
                "UPDATE messages SET acked_ts = ? WHERE seq = ? AND acked_ts IS NULL",
                [(ts, m.seq) for m in acked],
            )
            self.conn.executemany(
                "UPDATE outbox SET sent_ts = ? WHERE stream = 'tx' AND id BETWEEN ? AND ?"
                " AND sent_ts IS NULL",
                [(ts, m.first_id, m.last_id) for m in acked],
            )
        if alerts:
            self.conn.executemany(
                "UPDATE outbox SET sent_ts = ? WHERE id = ? AND sent_ts IS NULL",
                [(ts, i) for i in alerts],
            )
        if acked or alerts:
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (LAST_ACK_KEY, ts),
            )
