"""The books' view of lot expiry: the stock table's expiry column and the lots by expiry.
SQL in ledger/lots.py; what "expired" means in domain/expiry.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from lineside.agent.domain.expiry import days_left
from lineside.agent.domain.model import MasterData
from lineside.agent.ledger import lots

EXPIRY_COLUMNS = ("item", "lot", "location", "qty", "uom", "expiry", "days_left", "expired")


def with_expiry(conn: sqlite3.Connection, stock: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stock rows (reports.stock) with their lot's expiry, None for undated stock."""
    dates = lots.expiries(conn)
    return [{**row, "expiry": dates.get((row["item"], row["lot"] or ""))} for row in stock]


def as_text(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's rows for the table: expired as yes or no."""
    return [{**row, "expired": "yes" if row["expired"] else "no"} for row in rows]


def lots_by_expiry(
    conn: sqlite3.Connection, master: MasterData, today: date, within: int | None = None
) -> list[dict[str, Any]]:
    """Dated lots with stock, earliest expiry first: days left from today and whether the
    lot is expired (past its expiry day). within: only those expiring in that many days
    (expired lots included)."""
    until = None if within is None else today + timedelta(days=within)
    out = []
    for r in lots.stock_by_expiry(conn, until):
        left = days_left(date.fromisoformat(r["expiry"]), today)
        item = master.items.get(r["item"])
        out.append(
            {
                "item": r["item"],
                "lot": r["lot"],
                "location": r["location"],
                "qty": r["qty"],
                "uom": item.uom if item else "?",
                "expiry": r["expiry"],
                "days_left": left,
                "expired": left < 0,
            }
        )
    return out
