"""`lineside report scrap`: the scrap postings by reason, order and component item.

Each line is the sum of the scrap postings (and their reversals) of one reason, order and
item, as a positive quantity and cost; the totals per reason and the grand total add up
the lines, so they add up to the scrap postings exactly. Quantities of different items are
never added together: only their cost is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from lineside.agent.domain.scrap import UNSPECIFIED
from lineside.agent.inputs import decimal_text
from lineside.agent.ledger.scrap import scrap_postings
from lineside.agent.tables import render

LINE_COLUMNS = ("reason", "order", "work_center", "item", "qty", "uom", "cost")


def scrap_report(
    conn: sqlite3.Connection, order: str | None = None, item: str | None = None
) -> dict[str, Any]:
    return by_reason(dict(r) for r in scrap_postings(conn, order, item))


def by_reason(postings: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Lines per reason, order and item (in the order first posted), totals per reason."""
    lines: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    for p in postings:
        reason = p["reason"] or UNSPECIFIED  # scrap posted before reasons were recorded
        key = (reason, p["order_no"], p["item"])
        line = lines.setdefault(
            key,
            {
                "reason": reason,
                "order": p["order_no"],
                "work_center": p["work_center"],
                "item": p["item"],
                "qty": Decimal(0),
                "uom": p["uom"],
                "cost": Decimal(0),
            },
        )
        line["qty"] -= Decimal(p["qty"])  # scrap consumes: the journal's qty is negative
        line["cost"] -= Decimal(p["cost"])
    ordered = sorted(lines.values(), key=lambda line: line["reason"])
    totals: dict[str, Decimal] = {}
    for line in ordered:
        totals[line["reason"]] = totals.get(line["reason"], Decimal(0)) + line["cost"]
    return {
        "lines": [
            {**line, "qty": decimal_text(line["qty"]), "cost": decimal_text(line["cost"])}
            for line in ordered
        ],
        "reasons": [{"reason": r, "cost": decimal_text(c)} for r, c in totals.items()],
        "total_cost": decimal_text(sum(totals.values(), Decimal(0))),
    }


def scrap_text(report: dict[str, Any]) -> str:
    """The report as `lineside report scrap` prints it."""
    if not report["lines"]:
        return "(no scrap postings)"
    return "\n".join(
        (
            "Scrap by reason, order and item",
            render(report["lines"], LINE_COLUMNS),
            "",
            "Scrap cost by reason",
            render(
                [*report["reasons"], {"reason": "total", "cost": report["total_cost"]}],
                ("reason", "cost"),
            ),
        )
    )
