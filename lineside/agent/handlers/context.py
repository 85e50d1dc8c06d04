"""What every handler may read besides its unit of work, and the checks they share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from lineside.agent import master as masterdata
from lineside.agent.commands import Rejected
from lineside.agent.config import LinesideConfig
from lineside.agent.domain.backflush import Move, Requirement
from lineside.agent.domain.expiry import ALERT_BIT, Blocked
from lineside.agent.domain.model import NO_LOT, Item, MasterData, WorkCenter
from lineside.agent.inputs import BadInput, check_code, check_quantity, decimal_text
from lineside.agent.ledger.queries import MASTER_VERSION_KEY
from lineside.agent.ledger.store import Posting
from lineside.agent.ledger.work import Work
from lineside.agent.points import PointMap, point_map


@dataclass
class Context:
    """The config, its points, the master data (rebuilt when item.put / bom.put change it)
    and what the writer remembers between commands."""

    config: LinesideConfig
    points: PointMap
    master: MasterData = field(default_factory=MasterData)
    master_version: str | None = None
    seen_at: dict[str, datetime] = field(default_factory=dict)  # a point's last read, any value
    explosions: dict[tuple[str, str], tuple[list[Requirement], list[str]]] = field(
        default_factory=dict
    )

    @classmethod
    def of(cls, config: LinesideConfig) -> Context:
        return cls(config, point_map(config))

    def refresh_master(
        self, version: str | None, overlays: Callable[[], Mapping[str, Any]]
    ) -> None:
        """Rebuild master data when its version in the ledger changed (from any process)."""
        version = version or "0"
        if version != self.master_version:
            self.master = masterdata.build(self.config, overlays())
            self.master_version = version
            self.explosions.clear()

    def refresh_from(self, uow: Work) -> None:
        self.refresh_master(uow.meta(MASTER_VERSION_KEY), uow.master_overlays)

    def work_center(self, code: str) -> WorkCenter:
        wc = self.master.work_centers.get(code)
        if wc is None:
            known = ", ".join(sorted(self.master.work_centers)) or "none configured"
            raise Rejected(f"unknown work center {code!r} (known: {known})")
        return wc

    def item(self, code: str) -> Item:
        item = self.master.items.get(code)
        if item is None:
            checked(check_code, code, "item")  # a clearer reason than "unknown" first
            raise Rejected(f"unknown item {code!r}")
        return item

    def location(self, code: str) -> None:
        """Stock only moves to a location the config knows: a work center's or a declared one."""
        if code not in self.master.locations:
            checked(check_code, code, "location")
            known = ", ".join(sorted(self.master.locations)) or "none configured"
            raise Rejected(f"unknown location {code!r} (known: {known})")

    def stocked_item(self, code: str) -> Item:
        item = self.item(code)
        if item.phantom:
            raise Rejected(f"{code} is a phantom item: it is never stocked")
        return item


def quantity(item: Item, qty: Decimal, *, positive: bool) -> Decimal:
    qty = checked(check_quantity, qty, "qty")
    if positive and qty <= 0:
        raise Rejected("quantity must be more than 0")
    if item.round(qty) != qty:
        raise Rejected(f"{qty} has more decimals than {item.code} allows ({item.decimals})")
    return qty


def lot_code(lot: str | None) -> str:
    return NO_LOT if lot is None else lot


def checked(check: Callable[[Any, str], Any], value: Any, name: str) -> Any:
    """value through an inputs check (None passes), its BadInput as the command's refusal."""
    if value is None:
        return None
    try:
        return check(value, name)
    except BadInput as exc:
        raise Rejected(str(exc)) from None


def post_moves(ctx: Context, uow: Work, moves: list[Move], posting: Posting) -> None:
    """Post moves with their quantities written at each item's decimals."""
    if not moves:
        return
    items = [ctx.item(m.item) for m in moves]
    uow.post_many([(_at_decimals(m, i), i.uom) for m, i in zip(moves, items, strict=True)], posting)


def negative_alert(
    uow: Work, item: str, location: str, ts: datetime, event: str, missing: Decimal
) -> None:
    """Alert when the balance crosses below zero, not again for every unit after."""
    balance = uow.balance(item, location, NO_LOT)
    if balance + missing < 0:
        return
    uow.alert(
        "negative_stock",
        ts,
        item=item,
        location=location,
        qty=decimal_text(balance),
        event=event,
        action="count this item",
    )


def passed_over_alerts(
    uow: Work, blocked: Iterable[Blocked], location: str, ts: datetime, event: str
) -> None:
    """lot_expired / lot_short_shelf_life: once per item and lot, ever (the ledger keeps
    which it raised), however many postings pass the lot over."""
    for b in blocked:
        if not uow.first_lot_alert(b.item, b.lot, ALERT_BIT[b.reason]):
            continue
        action = "remove the lot from the line" if b.reason == "lot_expired" else "use it elsewhere"
        uow.alert(
            b.reason,
            ts,
            item=b.item,
            lot=b.lot,
            expiry=b.expiry.isoformat(),
            days_left=b.days_left,
            location=location,
            event=event,
            action=action,
        )


def _at_decimals(move: Move, item: Item) -> Move:
    rounded = item.round(move.qty)
    return move if str(rounded) == str(move.qty) else replace(move, qty=rounded)
