"""Backlog figures for `lineside status` and metrics, and retention of what was delivered."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from lineside.agent.ledger.outbox import LAST_ACK_KEY, MARKED_KEY
from lineside.agent.ledger.store import iso, meta

log = logging.getLogger("lineside.sync")

PRUNE_CHUNK = 5000


def sync_status(conn: sqlite3.Connection, now: datetime | None = None) -> dict[str, Any]:
    """Backlog size, oldest unsent row's age, last acknowledgement, next seq, ledger size.

    The backlog counts what the broker has not acknowledged: rows of acknowledged messages
    count as delivered even in the moment before the worker marks them sent. Reads only;
    the partial indexes on unsent rows keep this cheap even with a big backlog.
    """
    now = now or datetime.now(UTC)
    last = conn.execute("SELECT seq FROM messages ORDER BY seq DESC LIMIT 1").fetchone()
    acked = conn.execute(
        "SELECT seq, last_id FROM messages WHERE acked_ts IS NOT NULL ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    acked_seq, acked_upto = (0, 0) if acked is None else (int(acked[0]), int(acked[1]))
    # Messages below the newest acknowledged one that are still unacknowledged (after a
    # reconnect, rarely): their rows are not delivered.
    gap_count, gap_first = conn.execute(
        "SELECT COALESCE(SUM(count), 0), MIN(first_id) FROM messages"
        " WHERE acked_ts IS NULL AND seq < ?",
        (acked_seq,),
    ).fetchone()
    tx_after, tx_first = conn.execute(
        "SELECT COUNT(*), MIN(id) FROM outbox WHERE stream = 'tx' AND sent_ts IS NULL AND id > ?",
        (acked_upto,),
    ).fetchone()
    alerts, alert_first = conn.execute(
        "SELECT COUNT(*), MIN(id) FROM outbox WHERE stream = 'alert' AND sent_ts IS NULL"
    ).fetchone()
    firsts = [i for i in (gap_first, tx_first, alert_first) if i is not None]
    oldest_ts = None
    if firsts:
        row = conn.execute("SELECT created_ts FROM outbox WHERE id = ?", (min(firsts),))
        found = row.fetchone()
        oldest_ts = None if found is None else str(found[0])
    unacked = conn.execute("SELECT COUNT(*) FROM messages WHERE acked_ts IS NULL").fetchone()
    backlog_tx = int(gap_count) + int(tx_after)
    return {
        "backlog": backlog_tx + int(alerts),
        "backlog_tx": backlog_tx,
        "backlog_alerts": int(alerts),
        "oldest_unsent_ts": oldest_ts,
        "oldest_unsent_age_s": _age(oldest_ts, now),
        "last_ack_ts": meta(conn, LAST_ACK_KEY),
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

    Unsent rows are never touched, nor messages whose rows are not yet marked sent. The
    newest outbox row and the newest message are always kept: SQLite gives a new row
    max(id)+1, and the publisher's cursor and next seq rely on ids and seqs never being
    handed out twice. Deletes in chunks so that the write lock is never held long.
    Returns (outbox rows, messages) deleted.
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
        " AND acked_ts < ? AND seq < (SELECT MAX(seq) FROM messages)"
        f" AND seq <= (SELECT COALESCE(MAX(CAST(value AS INTEGER)), 0) FROM meta"
        f" WHERE key = '{MARKED_KEY}') ORDER BY seq LIMIT ?)",
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
            if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                conn.execute("ROLLBACK")
            raise
        total += deleted
        if deleted < PRUNE_CHUNK:
            return total
