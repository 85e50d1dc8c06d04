"""The outbox publisher: a bounded window of QoS 1 messages, marked sent only when acknowledged.

Driven by the sync thread, which also runs the paho network loop: on_publish is only ever
called from inside that loop, never while publish() is running, so the mid of a message is
always known before its acknowledgement arrives and no lock is needed here.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lineside.agent.sync.outbox import AlertRow, OutboxStore, TxMessage, is_disk_full
from lineside.agent.sync.payloads import Topics

log = logging.getLogger("lineside.sync")

# Acknowledgements are recorded at least this often even when nothing new is built.
FLUSH_INTERVAL_S = 0.2
# After SQLite refused a write (disk full, locked), wait this long before the next try.
WRITE_RETRY_S = 2.0
DISK_FULL_LOG_EVERY_S = 60.0


class Transport(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        """Queue a message; returns its mid."""
        ...


@dataclass
class Counters:
    """Monotonic counts for metrics; written by the sync thread only."""

    messages: int = 0
    transactions: int = 0
    alerts: int = 0
    acks: int = 0
    resent: int = 0


class Publisher:
    def __init__(
        self,
        store: OutboxStore,
        topics: Topics,
        inflight_max: int,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.topics = topics
        self.inflight_max = inflight_max
        self.clock = clock
        self.monotonic = monotonic
        self.counters = Counters()
        self.last_ack_ts: datetime | None = None
        self._inflight: dict[int, TxMessage | AlertRow] = {}
        self._pending: deque[TxMessage] = deque()
        self._acked: list[TxMessage] = []
        self._acked_alerts: list[int] = []
        self._alert_cursor = 0
        self._more_tx = True
        self._more_alerts = True
        self._last_flush = 0.0
        self._write_blocked_until = 0.0
        self._last_full_log = -DISK_FULL_LOG_EVERY_S
        self._sessions = 0

    # -- state ------------------------------------------------------------------------
    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def unrecorded_acks(self) -> int:
        return len(self._acked) + len(self._acked_alerts)

    def idle(self) -> bool:
        """Nothing in flight and nothing known to be waiting."""
        return not self._inflight and not self._pending and not self._more_tx

    def reset(self) -> None:
        """A new connection: resume from the first unacknowledged message, in order.

        Anything in flight on the old connection may or may not have arrived; it is sent
        again with the same seq and bytes (at-least-once), and so are unsent alerts.
        """
        self._inflight.clear()
        recorded = {m.seq for m in self._acked}
        self._pending = deque(m for m in self.store.unacked() if m.seq not in recorded)
        if self._sessions and self._pending:
            self.counters.resent += len(self._pending)
        self._sessions += 1
        self._alert_cursor = 0
        self._more_tx = self._more_alerts = True

    def poke(self) -> None:
        """Something may have been written to the outbox: look again."""
        self._more_tx = self._more_alerts = True

    # -- publishing --------------------------------------------------------------------
    def pump(self, transport: Transport) -> int:
        """Fill the in-flight window; returns how many messages were handed to the transport."""
        sent = 0
        if self._more_alerts:
            sent += self._pump_alerts(transport)
        while len(self._inflight) < self.inflight_max:
            if not self._pending and not self._refill():
                break
            message = self._pending.popleft()
            mid = transport.publish(self.topics.tx, message.payload, 1, False)
            self._inflight[mid] = message
            self.counters.messages += 1
            self.counters.transactions += message.count
            sent += 1
        return sent

    def _pump_alerts(self, transport: Transport) -> int:
        room = self.inflight_max - len(self._inflight)
        if room <= 0:
            return 0
        rows = self.store.unsent_alerts(self._alert_cursor, room)
        self._more_alerts = len(rows) == room
        sent = 0
        for row in rows:
            self._alert_cursor = row.id
            if row.id in self._acked_alerts:
                continue  # acknowledged on the last connection, not yet recorded
            mid = transport.publish(self.topics.alerts, row.payload, 1, False)
            self._inflight[mid] = row
            self.counters.alerts += 1
            sent += 1
        return sent

    def _refill(self) -> bool:
        """Build and store the next messages (with any acks, one transaction)."""
        if not self._more_tx or self.monotonic() < self._write_blocked_until:
            return False
        new = self.store.prepare(self.inflight_max)
        if not new:
            self._more_tx = False
            if self._acked or self._acked_alerts:
                self.flush(force=True)
            return False
        if not self._write(new):
            return False
        self._pending.extend(new)
        return True

    # -- acknowledgements -----------------------------------------------------------------
    def on_ack(self, mid: int, ok: bool = True, reason: str = "") -> bool:
        """The broker acknowledged mid; False if the mid is not ours (status, stock, replies)."""
        item = self._inflight.pop(mid, None)
        if item is None:
            return False
        if not ok:
            # Refused (MQTT 5 reason code, e.g. not authorized): keep it unsent.
            log.error(
                "broker refused a message on %s: %s; it stays in the outbox",
                self.topics.base,
                reason,
            )
            return True
        self.counters.acks += 1
        self.last_ack_ts = self.clock()
        if isinstance(item, TxMessage):
            self._acked.append(item)
        else:
            self._acked_alerts.append(item.id)
        return True

    def flush(self, force: bool = False) -> bool:
        """Record acknowledged messages as sent (at most every FLUSH_INTERVAL_S unless forced)."""
        if not self._acked and not self._acked_alerts:
            return True
        now = self.monotonic()
        if not force and now - self._last_flush < FLUSH_INTERVAL_S:
            return False
        if now < self._write_blocked_until and not force:
            return False
        return self._write([])

    def _write(self, new: list[TxMessage]) -> bool:
        try:
            self.store.write(new, self._acked, self._acked_alerts, self.clock())
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return False
        self._acked.clear()
        self._acked_alerts.clear()
        self._last_flush = self.monotonic()
        return True

    def _write_failed(self, exc: sqlite3.Error) -> None:
        now = self.monotonic()
        self._write_blocked_until = now + WRITE_RETRY_S
        if is_disk_full(exc):
            # Invariant 5: nothing is deleted to make room; acks wait in memory and are
            # recorded when space returns (at worst they are re-sent: at-least-once).
            if now - self._last_full_log >= DISK_FULL_LOG_EVERY_S:
                self._last_full_log = now
                log.error(
                    "DISK FULL: cannot record %d acknowledged messages in the ledger (%s);"
                    " publishing paused, retrying every %.0f s; no outbox row is deleted",
                    self.unrecorded_acks,
                    exc,
                    WRITE_RETRY_S,
                )
            return
        log.warning("ledger busy, acknowledgements recorded later: %s", exc)
