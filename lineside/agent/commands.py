"""Commands: what someone or something asks the ledger to do. One handler each (handlers/).

Every command carries an idempotency key: applying the same key twice changes nothing
and returns the first result again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeGuard


@dataclass(frozen=True, kw_only=True)
class Command:
    key: str
    ts: datetime
    cause: str = ""


@dataclass(frozen=True, kw_only=True)
class Complete(Command):
    """Production reported at a work center (by hand, or a counter's delta)."""

    work_center: str
    good: int = 0
    scrap: int = 0
    stage: str | None = None  # units that passed this stage (its components only)
    reason: str | None = None  # the scrapped units' reason code (None: unspecified)


@dataclass(frozen=True, kw_only=True)
class CounterReading(Command):
    """A fresh value of a counter point: interpreted, then posted with the new last value."""

    point: str
    value: int | Decimal


@dataclass(frozen=True, kw_only=True)
class MeterReading(Command):
    """A fresh totalizer value of a meter point: its delta is measured consumption."""

    point: str
    value: Decimal


def is_reading(command: Command) -> TypeGuard[CounterReading | MeterReading]:
    """A counter's or meter's value: state, not a request (its key is its point)."""
    return isinstance(command, CounterReading | MeterReading)


@dataclass(frozen=True, kw_only=True)
class StockCommand(Command):
    """A quantity of an item at a location, maybe of one lot."""

    item: str
    qty: Decimal
    location: str
    lot: str | None = None


@dataclass(frozen=True, kw_only=True)
class Receive(StockCommand):
    """Stock that arrived: qty is added. expiry is the lot's (a lot has one expiry)."""

    expiry: date | None = None


@dataclass(frozen=True, kw_only=True)
class Count(StockCommand):
    """A cycle count: qty is what is there, the difference becomes an adjustment."""


@dataclass(frozen=True, kw_only=True)
class StartOrder(Command):
    order: str
    work_center: str
    item: str
    qty: Decimal | None = None


@dataclass(frozen=True, kw_only=True)
class CloseOrder(Command):
    order: str


@dataclass(frozen=True, kw_only=True)
class Reverse(Command):
    tx_id: str


@dataclass(frozen=True, kw_only=True)
class PutMaster(Command):
    """Master data over MQTT: one entry of the config's, by its item code."""

    item: str
    data: dict[str, Any]  # the keys of the entry in the config


@dataclass(frozen=True, kw_only=True)
class PutItem(PutMaster):
    """An item, as under items: in the config."""


@dataclass(frozen=True, kw_only=True)
class PutBom(PutMaster):
    """A BOM, as under boms: in the config."""


@dataclass(frozen=True, kw_only=True)
class ReleaseHeld(Command):
    """A person looked at a held event and posts it (an implausible jump that was real)."""

    held_id: int


@dataclass(frozen=True, kw_only=True)
class DiscardHeld(Command):
    """A person looked at a held event and drops it, saying why (kept in the ledger)."""

    held_id: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class Notice(Command):
    """An alert that changes no stock (a device went down, a scan was refused)."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Result:
    """What a handler answers; ok False carries a message for a person."""

    ok: bool
    error: str | None = None
    refused: bool = False
    internal: bool = False  # a bug's, not the command's answer: never remembered, may be retried
    transactions: tuple[dict[str, Any], ...] = ()
    alerts: tuple[dict[str, Any], ...] = ()
    duplicate: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    def reply(self, request_id: str) -> dict[str, Any]:
        return {"request_id": request_id, "ok": self.ok, "error": self.error}


class Rejected(Exception):
    """Bad input: the command is refused with this message and nothing changes, except
    that the ledger remembers the refusal under the command's key (a repeat gets it again)."""


class Refused(Rejected):
    """Valid input that the ledger's state forbids (already reversed, order exists)."""
