"""What the Sparkplug node reads from the ledger, and the one thing it writes (its bdSeq).

Reads are plain SELECTs on the node's own connection (WAL: they never wait for the writer).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from decimal import Decimal

from lineside.agent.ledger.store import meta, set_meta

BDSEQ_KEY = "sparkplug_bdseq"


def next_bdseq(conn: sqlite3.Connection) -> int:
    """The bdSeq of the next MQTT CONNECT: 0 the first time, then +1 per connect, 255 -> 0.

    Committed before the CONNECT is sent, so that after a kill -9 the next process uses
    the one after it, never the same again.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        last = meta(conn, BDSEQ_KEY)
        value = 0 if last is None else (int(last) + 1) % 256
        set_meta(conn, BDSEQ_KEY, str(value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return value


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection commits (SQLite's PRAGMA data_version)."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def held_per_work_center(conn: sqlite3.Connection) -> dict[str, int]:
    """Events held (waiting to be posted) per work center."""
    rows = conn.execute(
        "SELECT work_center, COUNT(*) FROM held WHERE status = 'held' GROUP BY work_center"
    )
    return {str(wc): int(n) for wc, n in rows if wc is not None}


def active_orders(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """The active order of each work center that has one: (order, item)."""
    rows = conn.execute("SELECT work_center, order_no, item FROM orders WHERE status = 'active'")
    return {str(wc): (str(order), str(item)) for wc, order, item in rows}


def on_hand(conn: sqlite3.Connection, items: Iterable[str]) -> dict[tuple[str, str], Decimal]:
    """Stock on hand of items per (location, item), all lots together, exact."""
    wanted = sorted(set(items))
    if not wanted:
        return {}
    marks = ", ".join("?" for _ in wanted)
    out: dict[tuple[str, str], Decimal] = {}
    for item, location, qty in conn.execute(
        f"SELECT item, location, qty FROM stock WHERE item IN ({marks})", wanted
    ):
        key = (str(location), str(item))
        out[key] = out.get(key, Decimal(0)) + Decimal(qty)
    return out
