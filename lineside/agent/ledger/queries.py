"""Read-only questions to the ledger that are not a report: for status, gauges and the demo."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

from lineside.agent.ledger.store import rows

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
