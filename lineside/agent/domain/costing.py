"""Backflush costing of one order (or one work center without an order): the exact journal
lines, before money is rounded to the currency (domain/money.py).

Measured lines (`flush: measured`) are costed from two sides: their standard (BOM quantity
× units, good and scrapped apart) and what the meter posted. A line whose meter posted
nothing for the order was not measured: its standard is credited to Not Measured, a
clearing account the accountant settles, instead of showing as a 100 % favourable variance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from lineside.agent.domain.money import Line

NOT_MEASURED = "Not Measured"


@dataclass
class MeasuredCosts:
    """One measured item of one order: what the meter posted and the standard, at cost."""

    qty: Decimal = Decimal(0)  # measured quantity posted, net of reversals, consumed > 0
    actual: Decimal = Decimal(0)  # its cost
    standard_good: Decimal = Decimal(0)  # standard cost for the good units
    standard_scrap: Decimal = Decimal(0)  # standard cost for the scrapped units

    @property
    def measured(self) -> bool:
        return self.qty != 0

    @property
    def standard(self) -> Decimal:
        return self.standard_good + self.standard_scrap


@dataclass
class OrderCosts:
    """What one order posted, at standard cost, consumed > 0."""

    materials: Decimal = Decimal(0)  # backflush postings
    scrap: Decimal = Decimal(0)  # scrap postings (components of scrapped units)
    conversion: Decimal = Decimal(0)  # units completed × conversion_cost
    measured: dict[str, MeasuredCosts] = field(default_factory=dict)

    def not_measured(self) -> list[str]:
        """The measured items with a standard but no reading, by item code."""
        return sorted(code for code, m in self.measured.items() if not m.measured and m.standard)


def entry_lines(c: OrderCosts) -> list[Line]:
    """The exact lines of the order's entry; debits equal credits.

    Finished Goods gets the good units' standard, Scrap Loss the scrapped units' (their
    components posted as scrap and their measured standard), Material Usage Variance what
    the meters posted against the standard of all units, Not Measured the standard of
    lines without a reading.
    """
    measured = [m for m in c.measured.values() if m.measured]
    standard_good = sum((m.standard_good for m in c.measured.values()), Decimal(0))
    standard_scrap = sum((m.standard_scrap for m in c.measured.values()), Decimal(0))
    actual = sum((m.actual for m in measured), Decimal(0))
    variance = actual - sum((m.standard for m in measured), Decimal(0))
    unread = sum((m.standard for m in c.measured.values() if not m.measured), Decimal(0))
    lines = [
        Line("Finished Goods", debit=c.materials + standard_good + c.conversion),
        Line("Materials and In-Process", credit=c.materials + actual + c.scrap),
        Line("Conversion Costs Allocated", credit=c.conversion),
    ]
    if c.scrap or standard_scrap:
        lines.append(Line("Scrap Loss", debit=c.scrap + standard_scrap))
    if variance:
        lines.append(
            Line(
                "Material Usage Variance",
                debit=max(variance, Decimal(0)),
                credit=max(-variance, Decimal(0)),
            )
        )
    if unread:
        lines.append(Line(NOT_MEASURED, credit=unread))
    return lines
