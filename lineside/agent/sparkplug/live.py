"""The narrow interface between the Agent and the Sparkplug node: plain snapshots.

The Agent hands the node a function that returns a LiveState (what it knows in memory);
the node reads the rest (LedgerState) from the ledger on its own connection. Neither
reaches into the other's threads.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from lineside.agent.ledger import live as ledger_live
from lineside.agent.ledger.outbox_status import sync_status

log = logging.getLogger("lineside.sparkplug")
REFRESH_S = 5.0  # figures are read again when the ledger changed, or this often


@dataclass(frozen=True)
class LiveState:
    """What the agent knows now: last values read, devices up or down, the P/tx link."""

    values: Mapping[str, str] = field(default_factory=dict)  # "device.point" -> last value
    devices_up: Mapping[str, bool | None] = field(default_factory=dict)
    broker_connected: bool = False


LiveSource = Callable[[], LiveState]


@dataclass(frozen=True)
class LedgerState:
    """What the ledger says: outbox backlog, its size, held events, orders, stock."""

    backlog: int = 0
    oldest_unsent: datetime | None = None
    ledger_bytes: int = 0
    held: Mapping[str, int] = field(default_factory=dict)  # per work center
    orders: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # wc -> (order, item)
    stock: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)  # (location, item)


class LedgerReader:
    """LedgerState from the node's own connection, read again only when another connection
    has committed (or every REFRESH_S, for the ages); on an SQLite error the last one."""

    def __init__(self, stock_items: Sequence[str]) -> None:
        self.stock_items = list(stock_items)
        self.state = LedgerState()
        self._read: tuple[int, float] = (-1, -1e18)  # data_version and when it was read

    def read(self, conn: sqlite3.Connection, now: datetime) -> LedgerState:
        try:
            version = ledger_live.data_version(conn)
            if version == self._read[0] and time.monotonic() - self._read[1] < REFRESH_S:
                return self.state
            status = sync_status(conn, now)
            oldest = status.get("oldest_unsent_ts")
            self.state = LedgerState(
                backlog=int(status["backlog"]),
                oldest_unsent=None if oldest is None else _parse_ts(str(oldest)),
                ledger_bytes=int(status["ledger_bytes"]),
                held=ledger_live.held_per_work_center(conn),
                orders=ledger_live.active_orders(conn),
                stock=ledger_live.on_hand(conn, self.stock_items),
            )
            self._read = (version, time.monotonic())
        except sqlite3.Error as exc:
            log.warning("sparkplug: ledger figures not read (%s): the last ones stay", exc)
        return self.state


def _parse_ts(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
