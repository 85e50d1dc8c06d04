"""Reads of the lots' expiry dates for the books (stock, report expiry); the unit of work
writes them (registers.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date

from lineside.agent.ledger.store import rows


def expiries(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    """Every dated lot's expiry (YYYY-MM-DD), by item and lot."""
    return {
        (item, lot): day for item, lot, day in conn.execute("SELECT item, lot, expiry FROM lots")
    }


def stock_by_expiry(conn: sqlite3.Connection, until: date | None = None) -> Iterator[sqlite3.Row]:
    """Stock rows above zero of dated lots (item, lot, location, qty, expiry), earliest
    expiry first; until: only lots that expire on or before that day."""
    sql = (
        "SELECT s.item, s.lot, s.location, s.qty, l.expiry FROM lots AS l"
        " JOIN stock AS s USING (item, lot) WHERE CAST(s.qty AS REAL) > 0"
    )
    params: tuple[str, ...] = ()
    if until is not None:
        sql += " AND l.expiry <= ?"
        params = (until.isoformat(),)
    return rows(conn, sql + " ORDER BY l.expiry, s.item, s.lot, s.location", params)
