"""The ledger's registers besides stock and journal: counters, held events, orders, counts,
master data overlays. Part of the unit of work (unit.py), in the same transaction."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from lineside.agent.domain.held import Held, from_json
from lineside.agent.inputs import decimal_text
from lineside.agent.ledger.queries import master_overlays
from lineside.agent.ledger.store import iso, meta, set_meta, uuid4_strings


class Registers:
    """Reads and writes of the small tables, on the unit of work's connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._orders: dict[str, tuple[str, str] | None] = {}  # active order per work center

    # -- counters ------------------------------------------------------------------------
    def counter_state(self, point: str) -> tuple[str, str] | None:
        """The point's last value and when it was written (ISO 8601)."""
        row = self.conn.execute(
            "SELECT value, ts FROM counters WHERE point = ?", (point,)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def save_counter(self, point: str, value: str, ts: datetime) -> None:
        self.conn.execute(
            "INSERT INTO counters (point, value, ts) VALUES (?, ?, ?) ON CONFLICT (point)"
            " DO UPDATE SET value = excluded.value, ts = excluded.ts",
            (point, value, iso(ts)),
        )

    # -- lots' expiry dates ----------------------------------------------------------------
    def lot_expiry(self, item: str, lot: str) -> date | None:
        row = self.conn.execute(
            "SELECT expiry FROM lots WHERE item = ? AND lot = ?", (item, lot)
        ).fetchone()
        return None if row is None else date.fromisoformat(row[0])

    def set_lot_expiry(self, item: str, lot: str, expiry: date) -> None:
        self.conn.execute(
            "INSERT INTO lots (item, lot, expiry) VALUES (?, ?, ?)"
            " ON CONFLICT (item, lot) DO UPDATE SET expiry = excluded.expiry",
            (item, lot, expiry.isoformat()),
        )

    def first_lot_alert(self, item: str, lot: str, bit: int) -> bool:
        """Record that the lot raised the alert of this bit; False if it had already."""
        cur = self.conn.execute(
            "UPDATE lots SET alerts = alerts | ?1 WHERE item = ?2 AND lot = ?3 AND alerts & ?1 = 0",
            (bit, item, lot),
        )
        return cur.rowcount == 1

    # -- held events ---------------------------------------------------------------------
    def hold(self, key: str, ts: datetime, work_center: str | None, reason: str, held: Held) -> int:
        cur = self.conn.execute(
            "INSERT INTO held (key, ts, work_center, reason, command, status)"
            " VALUES (?, ?, ?, ?, ?, 'held')",
            (key, iso(ts), work_center, reason, held.to_json()),
        )
        return int(cur.lastrowid or 0)

    def held_events(self) -> list[tuple[int, Held]]:
        """The events still waiting, oldest first."""
        found = self.conn.execute(
            "SELECT id, command FROM held WHERE status = 'held' ORDER BY id"
        ).fetchall()
        return [(int(r[0]), from_json(r[1])) for r in found]

    def held(self, held_id: int) -> tuple[str, Held] | None:
        """A held event's status (held, posted, discarded) and payload, or None."""
        row = self.conn.execute(
            "SELECT status, command FROM held WHERE id = ?", (held_id,)
        ).fetchone()
        return None if row is None else (str(row[0]), from_json(row[1]))

    def resolve_held(
        self, held_id: int, status: str, ts: datetime, reason: str | None = None
    ) -> None:
        """Posted or discarded: the status and when. reason, when given, replaces the old."""
        self.conn.execute(
            "UPDATE held SET status = ?, resolved_ts = ?, reason = COALESCE(?, reason)"
            " WHERE id = ?",
            (status, iso(ts), reason, held_id),
        )

    def still_held(self, held_id: int, reason: str) -> None:
        """A retry that could not post: the event keeps waiting, for this reason now."""
        self.conn.execute("UPDATE held SET reason = ? WHERE id = ?", (reason, held_id))

    # -- orders --------------------------------------------------------------------------
    def active_order(self, work_center: str) -> tuple[str, str] | None:
        if work_center not in self._orders:
            row = self.conn.execute(
                "SELECT order_no, item FROM orders WHERE work_center = ? AND status = 'active'",
                (work_center,),
            ).fetchone()
            self._orders[work_center] = None if row is None else (str(row[0]), str(row[1]))
        return self._orders[work_center]

    def order(self, order_no: str) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM orders WHERE order_no = ?", (order_no,))
        cur.row_factory = sqlite3.Row
        row: sqlite3.Row | None = cur.fetchone()
        return None if row is None else dict(row)

    def start_order(
        self, order_no: str, wc: str, item: str, qty: Decimal | None, ts: datetime
    ) -> None:
        self.conn.execute(
            "INSERT INTO orders (order_no, work_center, item, qty, status, started_ts)"
            " VALUES (?, ?, ?, ?, 'active', ?)",
            (order_no, wc, item, None if qty is None else decimal_text(qty), iso(ts)),
        )
        self._orders.clear()

    def close_order(self, order_no: str, ts: datetime) -> None:
        self.conn.execute(
            "UPDATE orders SET status = 'closed', closed_ts = ? WHERE order_no = ?",
            (iso(ts), order_no),
        )
        self._orders.clear()

    # -- counts and master data -----------------------------------------------------------
    def record_count(self, row: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO counts (ts, item, location, lot, book, counted, diff, value, event)"
            " VALUES (:ts, :item, :location, :lot, :book, :counted, :diff, :value, :event)",
            row,
        )

    def put_master(self, table: str, key: str, data: dict[str, Any], ts: datetime) -> None:
        column = "code" if table == "master_items" else "item"
        self.conn.execute(
            f"INSERT INTO {table} ({column}, data, ts) VALUES (?, ?, ?) ON CONFLICT ({column})"
            " DO UPDATE SET data = excluded.data, ts = excluded.ts",
            (key, json.dumps(data), iso(ts)),
        )
        # A fresh token, not a counter: a rolled-back put would hand its number out again,
        # and a Ledger that had read the master data of the undone put would keep them.
        self.set_meta("master_version", uuid4_strings(1)[0])

    def meta(self, key: str) -> str | None:
        return meta(self.conn, key)

    def set_meta(self, key: str, value: str) -> None:
        set_meta(self.conn, key, value)

    def master_overlays(self) -> dict[str, dict[str, Any]]:
        return master_overlays(self.conn)
