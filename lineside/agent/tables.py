"""Aligned plain-text tables for people; --json output bypasses this entirely."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _numeric(text: str) -> bool:
    try:
        Decimal(text)
    except (InvalidOperation, ValueError):
        return False
    return True


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str = "(none)") -> str:
    """Columns left-aligned, numbers right-aligned, one header line."""
    if not rows:
        return empty
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(_numeric(row[i]) or row[i] == "-" for row in cells) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    header = line([c.upper().replace("_", " ") for c in columns])
    return "\n".join([header, *(line(row) for row in cells)])
