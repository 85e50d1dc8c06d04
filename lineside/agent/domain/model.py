"""Master data and stock as the engine sees them: frozen dataclasses, Decimal quantities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

ShortagePolicy = Literal["allow", "hold"]
Flush = Literal["standard", "measured"]
Removal = Literal["fifo", "fefo"]
NO_LOT = ""


@dataclass(frozen=True, slots=True)
class Item:
    code: str
    uom: str
    decimals: int = 0
    cost: Decimal = Decimal(0)
    conversion_cost: Decimal = Decimal(0)
    phantom: bool = False
    gtin: str | None = None
    removal: Removal = "fifo"
    min_shelf_life_days: Decimal | None = None  # a lot with fewer days left is not consumed

    def round(self, qty: Decimal) -> Decimal:
        """Round once to the item's decimals, half up (what ERPs do for a posting)."""
        return qty.quantize(Decimal(1).scaleb(-self.decimals), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Component:
    item: str
    qty: Decimal
    scrap_pct: Decimal = Decimal(0)
    stage: str | None = None
    flush: Flush = "standard"

    @property
    def gross_qty(self) -> Decimal:
        """Quantity including planned scrap: qty × (1 + scrap_pct / 100)."""
        return self.qty * (1 + self.scrap_pct / 100)


@dataclass(frozen=True, slots=True)
class Bom:
    item: str
    per: Decimal
    components: tuple[Component, ...]


@dataclass(frozen=True, slots=True)
class WorkCenter:
    code: str
    location: str
    item: str | None = None
    on_shortage: ShortagePolicy = "allow"
    stages: tuple[str, ...] = ()


@dataclass(frozen=True)
class MasterData:
    """Items, BOMs and work centers: the config's, overlaid by item.put / bom.put."""

    items: Mapping[str, Item] = field(default_factory=dict)
    boms: Mapping[str, Bom] = field(default_factory=dict)
    work_centers: Mapping[str, WorkCenter] = field(default_factory=dict)
    locations: frozenset[str] = frozenset()  # where stock may be: work centers' and declared

    def item_by_gtin(self) -> dict[str, str]:
        return {i.gtin: i.code for i in self.items.values() if i.gtin}


@dataclass(frozen=True, slots=True)
class LotBalance:
    """One stock row at a location; lot NO_LOT is stock without a lot (and shortages).
    expiry is the lot's (the same at every location), None when nobody gave one."""

    lot: str
    qty: Decimal
    expiry: date | None = None
