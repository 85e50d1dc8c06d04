"""An in-memory unit of work: what a handler asks of the ledger, without SQLite."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from lineside.agent.domain.backflush import Carry, Move
from lineside.agent.domain.held import Held
from lineside.agent.domain.model import LotBalance
from lineside.agent.ledger.queries import MASTER_VERSION_KEY
from lineside.agent.ledger.store import Posting, iso, move_transaction


class FakeWork:
    """The ledger's tables as dicts; an attempt that raises puts all of them back."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.stock: dict[tuple[str, str, str], Decimal] = {}  # arrival order is FIFO order
        self.journal: list[dict[str, Any]] = []
        self.carried: dict[tuple[str, str], Carry] = {}
        self.standards: dict[tuple[str, str], Decimal] = {}
        self.counters: dict[str, tuple[str, str]] = {}
        self.held_rows: dict[int, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.counts: list[dict[str, Any]] = []
        self.metas: dict[str, str] = {}
        self.overlays: dict[str, dict[str, Any]] = {"items": {}, "boms": {}}
        self.expiries: dict[tuple[str, str], date] = {}
        self.lot_alerts: set[tuple[str, str, int]] = set()

    @contextmanager
    def attempt(self, savepoint: bool = True) -> Iterator[None]:
        before = copy.deepcopy(self.__dict__)
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    # stock and journal
    def lots(self, item: str, location: str) -> list[LotBalance]:
        return [
            LotBalance(lot, qty, self.expiries.get((item, lot)))
            for (i, loc, lot), qty in self.stock.items()
            if (i, loc) == (item, location)
        ]

    def lots_of(self, items: Sequence[str], location: str) -> dict[str, list[LotBalance]]:
        return {item: lots for item in items if (lots := self.lots(item, location))}

    def balance(self, item: str, location: str, lot: str) -> Decimal:
        return self.stock.get((item, location, lot), Decimal(0))

    def on_hand(self, item: str) -> list[Decimal]:
        return [q for (i, _, _), q in self.stock.items() if i == item and q]

    def post(self, move: Move, uom: str, posting: Posting) -> dict[str, Any]:
        return self.post_many([(move, uom)], posting)[0]

    def post_many(
        self, moves: Sequence[tuple[Move, str]], posting: Posting
    ) -> list[dict[str, Any]]:
        out = []
        for move, uom in moves:
            key = (move.item, move.location, move.lot)
            self.stock[key] = self.stock.get(key, Decimal(0)) + move.qty
            tx = move_transaction(
                f"tx-{len(self.journal) + 1}", iso(posting.ts), move, uom, posting
            )
            row = {**tx, "order_no": posting.order_no, "lot": move.lot}
            self.journal.append({**row, "reverses": posting.reverses})
            out.append(tx)
        self.posted.extend(out)
        return out

    def transaction(self, tx_id: str) -> dict[str, Any] | None:
        return next((dict(r) for r in self.journal if r["id"] == tx_id), None)

    def reversal_of(self, tx_id: str) -> str | None:
        return next((str(r["id"]) for r in self.journal if r["reverses"] == tx_id), None)

    def alert(self, kind: str, ts: datetime, **fields: Any) -> None:
        self.alerts.append({"kind": kind, "ts": iso(ts), **fields})

    # lots' expiry dates
    def lot_expiry(self, item: str, lot: str) -> date | None:
        return self.expiries.get((item, lot))

    def set_lot_expiry(self, item: str, lot: str, expiry: date) -> None:
        self.expiries[(item, lot)] = expiry

    def first_lot_alert(self, item: str, lot: str, bit: int) -> bool:
        if (item, lot, bit) in self.lot_alerts:
            return False
        self.lot_alerts.add((item, lot, bit))
        return True

    # carries and standards
    def carries(self, bucket: str, items: Sequence[str]) -> dict[str, Carry]:
        return {i: self.carried[(bucket, i)] for i in items if (bucket, i) in self.carried}

    def save_carries(self, bucket: str, carries: dict[str, Carry]) -> None:
        for item, carry in carries.items():
            self.carried[(bucket, item)] = carry

    def save_carry(self, bucket: str, item: str, carry: Carry) -> None:
        self.carried[(bucket, item)] = carry

    def add_standard(
        self, bucket: str, item: str, qty: Decimal, order_no: str | None, work_center: str
    ) -> None:
        self.standards[(bucket, item)] = self.standards.get((bucket, item), Decimal(0)) + qty

    # counters
    def counter_state(self, point: str) -> tuple[str, str] | None:
        return self.counters.get(point)

    def save_counter(self, point: str, value: str, ts: datetime) -> None:
        self.counters[point] = (value, ts.isoformat())

    # held events
    def hold(self, key: str, ts: datetime, work_center: str | None, reason: str, held: Held) -> int:
        held_id = len(self.held_rows) + 1
        self.held_rows[held_id] = {"status": "held", "held": held, "reason": reason, "key": key}
        return held_id

    def held_events(self) -> list[tuple[int, Held]]:
        return [(n, r["held"]) for n, r in self.held_rows.items() if r["status"] == "held"]

    def held(self, held_id: int) -> tuple[str, Held] | None:
        row = self.held_rows.get(held_id)
        return None if row is None else (row["status"], row["held"])

    def resolve_held(
        self, held_id: int, status: str, ts: datetime, reason: str | None = None
    ) -> None:
        self.held_rows[held_id]["status"] = status
        if reason is not None:
            self.held_rows[held_id]["reason"] = reason

    def still_held(self, held_id: int, reason: str) -> None:
        self.held_rows[held_id]["reason"] = reason

    # orders
    def active_order(self, work_center: str) -> tuple[str, str] | None:
        for order_no, o in self.orders.items():
            if o["work_center"] == work_center and o["status"] == "active":
                return order_no, str(o["item"])
        return None

    def order(self, order_no: str) -> dict[str, Any] | None:
        found = self.orders.get(order_no)
        return None if found is None else dict(found)

    def start_order(
        self, order_no: str, wc: str, item: str, qty: Decimal | None, ts: datetime
    ) -> None:
        self.orders[order_no] = {"work_center": wc, "item": item, "qty": qty, "status": "active"}

    def close_order(self, order_no: str, ts: datetime) -> None:
        self.orders[order_no]["status"] = "closed"

    # counts and master data
    def record_count(self, row: dict[str, Any]) -> None:
        self.counts.append(row)

    def put_master(self, table: str, key: str, data: dict[str, Any], ts: datetime) -> None:
        self.overlays["items" if table == "master_items" else "boms"][key] = data
        self.metas[MASTER_VERSION_KEY] = f"v{len(self.journal)}-{key}"

    def meta(self, key: str) -> str | None:
        return self.metas.get(key)

    def master_overlays(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.overlays)
