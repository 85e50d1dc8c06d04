"""Money as the books post it: each journal line rounded to the currency's decimals, and
the entry kept balanced by a Rounding Difference line rather than by bending one amount."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ROUNDING_ACCOUNT = "Rounding Difference"


@dataclass(frozen=True, slots=True)
class Currency:
    """code is ISO 4217 (None: amounts without a currency named); decimals its minor unit."""

    code: str | None = None
    decimals: int = 2

    def round(self, amount: Decimal) -> Decimal:
        """Half up, as commercial rounding and invoices do (banker's rounding would move a
        line's 0.005 to the even cent, a rule an accountant checking by hand does not use)."""
        return amount.quantize(Decimal(1).scaleb(-self.decimals), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Line:
    account: str
    debit: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)


def posted_lines(lines: Sequence[Line], currency: Currency) -> list[Line]:
    """lines (balanced, exact) as they are posted: every amount rounded on its own, plus a
    Rounding Difference line on the short side when the rounded sides differ."""
    rounded = [
        Line(ln.account, currency.round(ln.debit), currency.round(ln.credit)) for ln in lines
    ]
    short = sum((ln.debit - ln.credit for ln in rounded), currency.round(Decimal(0)))
    if short:
        zero = currency.round(Decimal(0))
        rounded.append(Line(ROUNDING_ACCOUNT, max(-short, zero), max(short, zero)))
    return rounded
