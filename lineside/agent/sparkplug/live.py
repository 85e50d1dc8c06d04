"""The narrow interface between the Agent and the Sparkplug node: plain snapshots.

The Agent hands the node a function that returns a LiveState (what it knows in memory);
the node reads the rest (LedgerState) from the ledger on its own connection. Neither
reaches into the other's threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


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
