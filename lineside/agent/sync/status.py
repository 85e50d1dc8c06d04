"""Backlog figures for `lineside status` and metrics, and retention of what was delivered."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from lineside.agent.ledger.store import iso
from lineside.agent.sync.outbox import LAST_ACK_KEY

log = logging.getLogger("lineside.sync")

PRUNE_CHUNK = 5000


def sync_status(conn: sqlite3.Connection, now: datetime | None = None) -> dict[str, Any]:
    """Backlog size, oldest unsent row's age, last acknowledgement, next seq, ledger size.

    Reads only (the partial indexes on unsent rows keep this cheap even with a big backlog).
    """
    now = now or datetime.now(UTC)
    backlog = {
        str(stream): int(n)
        for stream, n in conn.execute(
            "SELECT stream, COUNT(*) FROM outbox WHERE sent_ts IS NULL GROUP BY stream"
        )
    }
    oldest = conn.execute(
        "SELECT created_ts FROM outbox WHERE sent_ts IS NULL ORDER BY id LIMIT 1"
    ).fetchone()
    oldest_ts = None if oldest is None else str(oldest[0])
    last = conn.execute("SELECT seq FROM messages ORDER BY seq DESC LIMIT 1").fetchone()
    unacked = conn.execute("SELECT COUNT(*) FROM messages WHERE acked_ts IS NULL").fetchone()
    ack = conn.execute("SELECT value FROM meta WHERE key = ?", (LAST_ACK_KEY,)).fetchone()
    return {
        "backlog": sum(backlog.values()),
        "backlog_tx": backlog.get("tx", 0),
        "backlog_alerts": backlog.get("alert", 0),
        "oldest_unsent_ts": oldest_ts,
        "oldest_unsent_age_s": _age(oldest_ts, now),
        "last_ack_ts": None if ack is None else str(ack[0]),
        "next_seq": (0 if last is None else int(last[0])) + 1,
        "unacked_messages": int(unacked[0]),
        "ledger_bytes": ledger_bytes(conn),
    }


def _age(ts: str | None, now: datetime) -> float | None:
    if ts is None:
        return None
    try:
        then = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return round(max(0.0, (now - then).total_seconds()), 3)


def ledger_bytes(conn: sqlite3.Connection) -> int:
    """The ledger's size on disk: the database file with its WAL and shared-memory files."""
    row = conn.execute("PRAGMA database_list").fetchone()
    if row is None or not row[2]:
        return 0
    main = Path(row[2])
    total = 0
    for path in (main, main.with_name(main.name + "-wal"), main.with_name(main.name + "-shm")):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def prune(
    conn: sqlite3.Connection, retention_days: Decimal | float, now: datetime | None = None
) -> tuple[int, int]:
    """Delete outbox rows sent, and messages acknowledged, more than retention_days ago.

    Unsent rows are never touched. The newest outbox row and the newest message are always
    kept: SQLite gives a new row max(id)+1, and the publisher's cursor and next seq rely on
    ids and seqs never being handed out twice. Deletes in chunks so that the write lock is
    never held long. Returns (outbox rows, messages) deleted.
    """
    now = now or datetime.now(UTC)
    cutoff = iso(now - timedelta(days=float(retention_days)))
    rows = _prune_chunks(
        conn,
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sent_ts IS NOT NULL"
        " AND sent_ts < ? AND id < (SELECT MAX(id) FROM outbox) ORDER BY id LIMIT ?)",
        cutoff,
    )
    messages = _prune_chunks(
        conn,
        "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE acked_ts IS NOT NULL"
        " AND acked_ts < ? AND seq < (SELECT MAX(seq) FROM messages) ORDER BY seq LIMIT ?)",
        cutoff,
    )
    if rows or messages:
        log.info(
            "retention: pruned %d sent outbox rows and %d acknowledged messages older than %s",
            rows,
            messages,
            cutoff,
        )
    return rows, messages


def _prune_chunks(conn: sqlite3.Connection, sql: str, cutoff: str) -> int:
    total = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            deleted = conn.execute(sql, (cutoff, PRUNE_CHUNK)).rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        total += deleted
        if deleted < PRUNE_CHUNK:
            return total
