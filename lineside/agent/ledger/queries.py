"""The ledger's read-only questions: what reports.py shapes and the CLI prints, and what
status, the gauges and the demo ask.

Every function answers rows in the order its caller needs them; none of them writes.
Quantities stay the ledger's decimal strings, and any sum is taken in Decimal, never
with SQLite's SUM, which goes through floats.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from itertools import chain
from typing import Any

from lineside.agent.domain.held import SCRAP_STANDARD
from lineside.agent.ledger.store import rows, tx_payload

MASTER_VERSION_KEY = "master_version"


def master_overlays(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """The items and BOMs put over MQTT (item.put, bom.put), as their config keys."""
    return {
        "items": {k: json.loads(v) for k, v in conn.execute("SELECT code, data FROM master_items")},
        "boms": {k: json.loads(v) for k, v in conn.execute("SELECT item, data FROM master_boms")},
    }


def counter_values(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """Each point's last value and when it was written."""
    return {
        r["point"]: (r["value"], r["ts"])
        for r in rows(conn, "SELECT point, value, ts FROM counters")
    }


def active_orders(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    sql = "SELECT order_no, work_center, item, qty, started_ts FROM orders WHERE status = 'active'"
    return [dict(r) for r in rows(conn, sql)]


def waiting_held(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The held events still waiting, oldest first."""
    sql = "SELECT id, ts, work_center, reason FROM held WHERE status = 'held' ORDER BY id"
    return [dict(r) for r in rows(conn, sql)]


def held_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM held WHERE status = 'held'").fetchone()[0])


def consumed(conn: sqlite3.Connection) -> dict[str, Decimal]:
    """What the line used up per item: backflush, scrap and measured moves, as a positive."""
    used: dict[str, Decimal] = {}
    for item, qty in conn.execute(
        "SELECT item, qty FROM journal WHERE kind IN ('backflush', 'scrap', 'measured')"
    ):
        used[item] = used.get(item, Decimal(0)) - Decimal(qty)
    return used


# What genealogy adds up, and what retention folds into its summary before pruning.
GENEALOGY_KINDS = ("backflush", "scrap", "measured", "reversal")
CONSUMING_OR_REVERSAL = "(" + ", ".join(f"'{kind}'" for kind in GENEALOGY_KINDS) + ")"


def stock(conn: sqlite3.Connection, item: str | None = None) -> Iterator[sqlite3.Row]:
    """Balances (item, location, lot, qty) in FIFO order within an item and location."""
    sql = "SELECT item, location, lot, qty FROM stock"
    params: tuple[str, ...] = ()
    if item:
        sql += " WHERE item = ?"
        params = (item,)
    return rows(conn, sql + " ORDER BY item, location, fifo, lot", params)


def last_uom(conn: sqlite3.Connection, item: str) -> str | None:
    """The unit of the item's newest transaction: for items gone from the master data."""
    last = conn.execute(
        "SELECT uom FROM journal WHERE item = ? ORDER BY seq DESC LIMIT 1", (item,)
    ).fetchone()
    return str(last[0]) if last else None


def transactions(
    conn: sqlite3.Connection,
    *,
    limit: int | None = None,
    kind: str | None = None,
    item: str | None = None,
    order: str | None = None,
) -> list[dict[str, Any]]:
    """The newest transactions that match, oldest first, as the MQTT contract has them;
    all of them without a limit."""
    where, params = [], []
    for column, value in (("kind", kind), ("item", item), ("order_no", order)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    sql = "SELECT * FROM journal" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY seq DESC" + (f" LIMIT {int(limit)}" if limit else "")
    return [tx_payload(r) for r in reversed(list(rows(conn, sql, params)))]


def reversed_kinds(conn: sqlite3.Connection) -> dict[str, str]:
    """The kind of every transaction that has been reversed, by its id."""
    return {
        r["id"]: r["kind"]
        for r in rows(
            conn,
            "SELECT id, kind FROM journal WHERE id IN "
            "(SELECT reverses FROM journal WHERE reverses IS NOT NULL)",
        )
    }


def work_center_postings(conn: sqlite3.Connection) -> Iterator[sqlite3.Row]:
    """Journal rows with a work center (kind, item, qty, cost, order_no, work_center,
    reverses), in posting order: what the journal entries are costed from."""
    return rows(
        conn,
        "SELECT kind, item, qty, cost, order_no, work_center, reverses FROM journal"
        " WHERE work_center IS NOT NULL ORDER BY seq",
    )


def standards(conn: sqlite3.Connection) -> Iterator[sqlite3.Row]:
    """The BOM's standard consumption (order_no, work_center, item, exact) of measured
    items, and whether it is that of scrapped units (scrapped 1) or of good ones (0)."""
    return rows(
        conn,
        "SELECT order_no, work_center, item, exact, substr(bucket, 1, ?) = ? AS scrapped"
        " FROM standards",
        (len(SCRAP_STANDARD), SCRAP_STANDARD),
    )


def measured(conn: sqlite3.Connection) -> Iterator[sqlite3.Row]:
    """Measured consumption and every reversal (the caller keeps those of measured rows)."""
    return rows(
        conn,
        "SELECT order_no, work_center, item, qty, reverses, kind FROM journal"
        " WHERE kind IN ('measured', 'reversal')",
    )


def consumption_of_order(conn: sqlite3.Connection, order: str) -> Iterator[sqlite3.Row]:
    """What an order consumed from named lots, reversals included, in posting order: the
    pruned rows' sums first (the genealogy summary), then the journal's rows."""
    return _consumption(conn, "order_no = ? AND lot != ''", order)


def consumption_of_lot(conn: sqlite3.Connection, lot: str) -> Iterator[sqlite3.Row]:
    """What orders consumed from a lot, reversals included, in posting order: the pruned
    rows' sums first (the genealogy summary), then the journal's rows."""
    return _consumption(conn, "lot = ? AND order_no IS NOT NULL", lot)


def _consumption(conn: sqlite3.Connection, where: str, value: str) -> Iterator[sqlite3.Row]:
    pruned = (
        "SELECT order_no, item, lot, qty, uom, 'pruned' AS kind, work_center FROM genealogy"
        f" WHERE {where} ORDER BY first_seq"
    )
    kept = (
        f"SELECT order_no, item, lot, qty, uom, kind, work_center FROM journal WHERE {where}"
        f" AND kind IN {CONSUMING_OR_REVERSAL} ORDER BY seq"
    )
    return chain(rows(conn, pruned, (value,)), rows(conn, kept, (value,)))


def oldest_kept(conn: sqlite3.Connection) -> str | None:
    """The ts of the oldest journal row retention has kept, or None for an empty journal."""
    row = conn.execute("SELECT ts FROM journal ORDER BY seq LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def consumption_costs(conn: sqlite3.Connection) -> Iterator[sqlite3.Row]:
    """Item, cost, kind and reverses of every consumption and reversal: for ABC classes."""
    return rows(
        conn,
        f"SELECT item, cost, kind, reverses FROM journal WHERE kind IN {CONSUMING_OR_REVERSAL}",
    )


def cycle_counts(conn: sqlite3.Connection) -> Iterator[sqlite3.Row]:
    """Every cycle count posted, oldest first."""
    return rows(conn, "SELECT * FROM counts ORDER BY id")


def orders(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every production order, in the order they were started."""
    return [dict(r) for r in rows(conn, "SELECT * FROM orders ORDER BY started_ts")]


def held(conn: sqlite3.Connection, *, everything: bool = False) -> Iterator[sqlite3.Row]:
    """Held events (id, ts, work_center, status, reason, command), oldest first: those
    still waiting, or with everything also those posted or discarded."""
    sql = "SELECT id, ts, work_center, status, reason, command FROM held"
    sql += "" if everything else " WHERE status = 'held'"
    return rows(conn, sql + " ORDER BY id")
