"""Read-only views of the ledger for people: stock, journal entries, variance, counts, genealogy.

Every sum is taken in Python over Decimal: SQLite's SUM would go through floats.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from lineside.agent.domain.costing import NOT_MEASURED, MeasuredCosts, OrderCosts, entry_lines
from lineside.agent.domain.model import MasterData
from lineside.agent.domain.money import Currency, Line, posted_lines
from lineside.agent.ledger import queries
from lineside.agent.tables import render

TOLERANCE_PCT = {"A": Decimal(1), "B": Decimal(3), "C": Decimal(5)}
CONSUMING = ("backflush", "scrap", "measured")
DEFAULT_CURRENCY = Currency()  # gateway.currency left out: two decimals, no code


def money(value: Decimal) -> str:
    """Exact, without exponent or trailing zeros: 945000, 1404.1366."""
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "") else text


def stock(
    conn: sqlite3.Connection, master: MasterData, item: str | None = None, *, empty: bool = False
) -> list[dict[str, Any]]:
    """Balances per item, location and lot; exhausted lots (0) only when empty is True."""
    out = []
    removed: dict[str, str] = {}  # items no longer in the master data: the journal's unit
    for r in queries.stock(conn, item):
        code = r["item"]
        if code in master.items:
            uom = master.items[code].uom
        else:
            if code not in removed:
                removed[code] = queries.last_uom(conn, code) or "?"
            uom = removed[code]
        if not empty and Decimal(r["qty"]) == 0:
            continue
        out.append(
            {
                "item": r["item"],
                "location": r["location"],
                "lot": r["lot"] or None,
                "qty": r["qty"],
                "uom": uom,
            }
        )
    return out


Key = tuple[str | None, str | None]  # (order, work center when there is no order)


def _key(r: sqlite3.Row) -> Key:
    return (r["order_no"], None if r["order_no"] else r["work_center"])


@dataclass
class _Bucket:
    order: str | None
    work_center: str | None
    item: str | None = None
    units: Decimal = Decimal(0)
    costs: OrderCosts = field(default_factory=OrderCosts)


def journal_entries(
    conn: sqlite3.Connection, master: MasterData, currency: Currency = DEFAULT_CURRENCY
) -> list[dict[str, Any]]:
    """Backflush costing: one entry per order (or work center's default item) at the
    completion trigger (domain/costing.py), posted in the currency (domain/money.py).
    """
    buckets = _order_costs(conn, master)
    return [
        _entry(b, currency)
        for b in buckets.values()
        if b.units
        or b.costs.materials
        or b.costs.scrap
        or any(m.actual or m.standard for m in b.costs.measured.values())
    ]


def _order_costs(conn: sqlite3.Connection, master: MasterData) -> dict[Key, _Bucket]:
    reversed_kind = queries.reversed_kinds(conn)
    buckets: dict[Key, _Bucket] = {}
    for r in queries.work_center_postings(conn):
        b = buckets.setdefault(_key(r), _Bucket(r["order_no"], r["work_center"]))
        kind = reversed_kind.get(r["reverses"], r["kind"]) if r["reverses"] else r["kind"]
        cost, qty, c = Decimal(r["cost"]), Decimal(r["qty"]), b.costs
        if kind == "completion":
            b.item = r["item"]
            b.units += qty
            conversion = master.items[r["item"]].conversion_cost if r["item"] in master.items else 0
            c.conversion += qty * conversion
        elif kind == "backflush":
            c.materials -= cost
        elif kind == "scrap":
            c.scrap -= cost
        elif kind == "measured":
            m = c.measured.setdefault(r["item"], MeasuredCosts())
            m.qty, m.actual = m.qty - qty, m.actual - cost
    for s in queries.standards(conn):
        b = buckets.setdefault(_key(s), _Bucket(s["order_no"], s["work_center"]))
        unit_cost = master.items[s["item"]].cost if s["item"] in master.items else Decimal(0)
        m = b.costs.measured.setdefault(s["item"], MeasuredCosts())
        if s["scrapped"]:
            m.standard_scrap += Decimal(s["exact"]) * unit_cost
        else:
            m.standard_good += Decimal(s["exact"]) * unit_cost
    return buckets


def _entry(b: _Bucket, currency: Currency) -> dict[str, Any]:
    exact = entry_lines(b.costs)
    return {
        "order": b.order,
        "work_center": b.work_center,
        "item": b.item,
        "units": str(b.units),
        "currency": currency.code,
        "lines": [_line(ln, _posted) for ln in posted_lines(exact, currency)],
        "exact": [_line(ln, money) for ln in exact],
        "not_measured": b.costs.not_measured(),
    }


def entry_text(entry: dict[str, Any]) -> str:
    """An entry's posted lines as a table, with the currency and what was not measured."""
    text = render(entry["lines"], ("account", "debit", "credit"))
    if entry["currency"]:
        text = f"amounts in {entry['currency']}\n{text}"
    if entry["not_measured"]:
        text += (
            f"\nnot measured: {', '.join(entry['not_measured'])} (no meter reading for this"
            f" order: its standard is credited to {NOT_MEASURED} until settled)"
        )
    return text


def _posted(value: Decimal) -> str:
    """A rounded amount with all of the currency's decimals: 1500.00, 14.20."""
    return f"{abs(value) if value == 0 else value:f}"


def _line(ln: Line, text: Callable[[Decimal], str]) -> dict[str, str]:
    return {"account": ln.account, "debit": text(ln.debit), "credit": text(ln.credit)}


def variance(conn: sqlite3.Connection, master: MasterData) -> list[dict[str, Any]]:
    """Measured consumption against the BOM's standard, per order (or work center) and item;
    a line with a standard and nothing measured is "not measured", not a variance."""
    actual: dict[tuple[str | None, str | None, str], Decimal] = defaultdict(Decimal)
    reversed_kind = queries.reversed_kinds(conn)
    for r in queries.measured(conn):
        if r["kind"] == "reversal" and reversed_kind.get(r["reverses"]) != "measured":
            continue
        actual[(*_key(r), r["item"])] -= Decimal(r["qty"])
    standard: dict[tuple[str | None, str | None, str], Decimal] = defaultdict(Decimal)
    for s in queries.standards(conn):
        standard[(*_key(s), s["item"])] += Decimal(s["exact"])
    out = []
    for key in sorted(set(actual) | set(standard), key=lambda k: tuple(str(p) for p in k)):
        order, wc, item = key
        std, act = standard.get(key, Decimal(0)), actual.get(key, Decimal(0))
        item_rec = master.items.get(item)
        std_rounded = item_rec.round(std) if item_rec else std
        pct = None if std == 0 else ((act - std) / std * 100).quantize(Decimal("0.01"))
        row = {
            "order": order,
            "work_center": wc,
            "item": item,
            "standard": str(std_rounded),
            "measured": str(act),
            "variance": str(act - std_rounded),
            "variance_pct": None if pct is None else str(pct),
            "uom": item_rec.uom if item_rec else "",
            "note": "",
        }
        if act == 0 and std:  # the meter gave no reading: nothing to compare
            row.update(measured=None, variance=None, variance_pct=None, note="not measured")
        out.append(row)
    return out


def genealogy_of_order(conn: sqlite3.Connection, order: str) -> list[dict[str, Any]]:
    return _genealogy(queries.consumption_of_order(conn, order), ("item", "lot"))


def genealogy_of_lot(conn: sqlite3.Connection, lot: str) -> list[dict[str, Any]]:
    return _genealogy(queries.consumption_of_lot(conn, lot), ("order_no", "item"))


def _genealogy(consumed: Iterable[sqlite3.Row], group: tuple[str, str]) -> list[dict[str, Any]]:
    totals: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    extra: dict[tuple[str, ...], dict[str, Any]] = {}
    for r in consumed:
        key = (r[group[0]], r[group[1]])
        totals[key] -= Decimal(r["qty"])
        extra[key] = {
            "order": r["order_no"],
            "item": r["item"],
            "lot": r["lot"],
            "uom": r["uom"],
            "work_center": r["work_center"],
        }
    return [{**extra[k], "qty": str(q)} for k, q in totals.items() if q != 0]


def abc_classes(conn: sqlite3.Connection) -> dict[str, str]:
    """A: items making the first 80% of consumption value, B the next 15%, C the rest."""
    value: dict[str, Decimal] = defaultdict(Decimal)
    reversed_kind = queries.reversed_kinds(conn)
    for r in queries.consumption_costs(conn):
        kind = reversed_kind.get(r["reverses"]) if r["kind"] == "reversal" else r["kind"]
        if kind in CONSUMING:  # a reversal counts as the negative of what it reverses
            value[r["item"]] -= Decimal(r["cost"])
    total = sum(value.values(), Decimal(0))
    classes: dict[str, str] = {}
    running = Decimal(0)
    for item, v in sorted(value.items(), key=lambda kv: -kv[1]):
        share = running / total if total else Decimal(1)
        classes[item] = "A" if share < Decimal("0.80") else "B" if share < Decimal("0.95") else "C"
        running += v
    return classes


def counts(conn: sqlite3.Connection, master: MasterData, now: datetime) -> dict[str, Any]:
    """Count accuracy per item against its ABC tolerance, and what to count next."""
    classes = abc_classes(conn)
    per_item: dict[str, dict[str, Any]] = {}
    for r in queries.cycle_counts(conn):
        cls = classes.get(r["item"], "C")
        rec = per_item.setdefault(
            r["item"],
            {
                "item": r["item"],
                "class": cls,
                "counts": 0,
                "accurate": 0,
                "last_counted": None,
                "last_variance_value": "0",
            },
        )
        book, diff = Decimal(r["book"]), Decimal(r["diff"])
        tolerance = abs(book) * TOLERANCE_PCT[cls] / 100
        rec["counts"] += 1
        rec["accurate"] += 1 if abs(diff) <= tolerance else 0
        rec["last_counted"] = r["ts"]
        rec["last_variance_value"] = r["value"]
    for rec in per_item.values():
        rec["accuracy_pct"] = str(
            (Decimal(rec["accurate"]) * 100 / rec["counts"]).quantize(Decimal("0.1"))
        )
    return {
        "accuracy": list(per_item.values()),
        "suggestions": _suggestions(conn, master, classes, per_item, now),
    }


def _suggestions(
    conn: sqlite3.Connection,
    master: MasterData,
    classes: dict[str, str],
    per_item: dict[str, dict[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    negative: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    stocked: set[tuple[str, str]] = set()
    for r in queries.stock(conn):
        stocked.add((r["item"], r["location"]))
        negative[(r["item"], r["location"])] += Decimal(r["qty"])
    weight = {"A": 3, "B": 2, "C": 1}
    out = []
    for item, location in stocked:
        if item in master.items and master.items[item].phantom:
            continue
        rec = per_item.get(item)
        cls = classes.get(item, "C")
        days = _days_since(rec["last_counted"], now) if rec else None
        reason, rank = "", (2, 0.0)
        if negative[(item, location)] < 0:
            reason, rank = f"negative balance {negative[(item, location)]}", (0, 0.0)
        elif rec and Decimal(rec["last_variance_value"]) != 0:
            value = abs(Decimal(rec["last_variance_value"]))
            reason, rank = f"last count off by {value} in value", (1, -float(value) * weight[cls])
        else:
            age = 10_000.0 if days is None else days
            reason = "never counted" if days is None else f"counted {days:.0f} days ago"
            rank = (2, -age * weight[cls])
        out.append(
            {"item": item, "location": location, "class": cls, "reason": reason, "_rank": rank}
        )
    out.sort(key=lambda s: (s["_rank"], s["item"], s["location"]))
    return [{k: v for k, v in s.items() if k != "_rank"} for s in out]


def _days_since(ts: str | None, now: datetime) -> float | None:
    if ts is None:
        return None
    then = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return (now - then).total_seconds() / 86400
