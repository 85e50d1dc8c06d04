"""The outbox publisher, in two halves that meet in a Pipeline.

- Feeder (the store thread) does all the SQLite work: it reads the outbox in pages, stores
  each P/tx message with its seq before it is offered for publishing, records the
  acknowledgements (on the message: one row per batch), marks the acknowledged rows sent,
  and keeps messages ready ahead of the window, refilled by halves so that one commit
  stores many seqs. An fsync on a slow SD card never stalls the network loop. It is woken
  once per refill and once per ACK_BATCH acks, not per message: every wake-up costs both
  threads a hand-over of Python's GIL.
- Window (the network thread, which also runs paho's loop) publishes ready messages
  while fewer than inflight_max are unacknowledged, and hands each acknowledgement back by
  mid. on_publish only ever runs inside that thread's loop call, never while publish() is
  running, so the mid of a message is always known before its acknowledgement arrives.

Rows are marked sent only after the broker acknowledged their message (on_publish by mid),
never from wait_for_publish(). After a reconnect the window offers what was in flight
again, first and in order (same seq, same bytes); after a restart the Feeder rebuilds the
unacknowledged messages from the ledger.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lineside.agent.ledger.outbox import AlertRow, OutboxStore, is_disk_full, mark_sent
from lineside.agent.ledger.outbox_pages import TxMessage
from lineside.agent.sync.payloads import Topics

log = logging.getLogger("lineside.sync")

Item = TxMessage | AlertRow
# After SQLite refused a write (disk full, locked), wait this long before the next try.
WRITE_RETRY_S = 2.0
DISK_FULL_LOG_EVERY_S = 60.0
ACK_BATCH = 64  # acks recorded together while a backlog drains
MARK_MESSAGES = 10  # messages whose rows are marked sent per transaction (lock held briefly)
MARK_AT_LEAST_EVERY_S = 1.0
FINISH_MARK_S = 3.0


class Transport(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        """Queue a message; returns its mid."""
        ...


@dataclass
class Counters:
    """Monotonic counts for metrics (each written by one thread only)."""

    messages: int = 0
    transactions: int = 0
    alerts: int = 0
    acks: int = 0
    resent: int = 0
    recorded: int = 0  # acknowledgements stored in the ledger
    marked: int = 0  # outbox rows marked sent


class Pipeline:
    """What the two halves share, under one lock: items ready to publish, acks to record."""

    def __init__(self, ahead: int) -> None:
        self.ahead = ahead
        self.low_water = ahead // 2  # refills come in halves: one commit for many messages
        self.lock = threading.Lock()
        self.ready: deque[Item] = deque()
        self.acked: list[Item] = []
        self.wake_feeder = threading.Event()
        self.more = False  # the feeder's last read was a full page: more rows are waiting
        self.counters = Counters()
        self.on_ready: Callable[[], None] = lambda: None  # wakes the network thread

    def take(self) -> Item | None:
        with self.lock:
            item = self.ready.popleft() if self.ready else None
            # Waking the store thread costs both threads a GIL hand-over: once per refill.
            if self.low() and not self.wake_feeder.is_set():
                self.wake_feeder.set()
            return item

    def low(self) -> bool:
        """At or below the low-water mark: time for the feeder to refill."""
        return len(self.ready) <= self.low_water

    def starving(self) -> bool:
        """Nothing ready but the feeder expects more: the network side should look soon."""
        return self.more and not self.ready

    def offer(self, items: list[Item]) -> None:
        with self.lock:
            self.ready.extend(items)
        if items:
            self.on_ready()

    def room(self) -> int:
        with self.lock:
            return self.ahead - len(self.ready)

    def give_back(self, items: list[Item]) -> None:
        """Items published on a lost connection go first again, in their order."""
        with self.lock:
            self.ready.extendleft(reversed(items))

    def ack(self, item: Item) -> None:
        # Waking the feeder costs both threads a GIL hand-over: once per ACK_BATCH acks (it
        # also records them with each refill, and at its poll when no backlog drains).
        with self.lock:
            self.acked.append(item)
            waiting = len(self.acked)
        if waiting == ACK_BATCH:
            self.wake_feeder.set()

    def acks_waiting(self) -> int:
        return len(self.acked)

    def take_acks(self) -> list[Item]:
        with self.lock:
            acked, self.acked = self.acked, []
            return acked

    def return_acks(self, acked: list[Item]) -> None:
        with self.lock:
            self.acked[:0] = acked


class Window:
    """The network side: at most inflight_max messages unacknowledged, matched by mid."""

    def __init__(
        self,
        pipeline: Pipeline,
        topics: Topics,
        inflight_max: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.pipeline = pipeline
        self.topics = topics
        self.inflight_max = inflight_max
        self.clock = clock
        self.last_ack_ts: datetime | None = None
        self._inflight: dict[int, Item] = {}  # in publish order
        self._refused: list[Item] = []  # refused by the broker: offered again after reconnect

    @property
    def refused(self) -> int:
        """Messages the broker refused on this connection (MQTT 5 reason codes)."""
        return len(self._refused)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def reset(self) -> None:
        """A new connection: what was in flight may not have arrived; offer it again first."""
        again = sorted([*self._refused, *self._inflight.values()], key=_publish_order)
        self._inflight.clear()
        self._refused.clear()
        if again:
            self.pipeline.counters.resent += len(again)
            self.pipeline.give_back(again)

    def pump(self, transport: Transport) -> int:
        """Fill the window from the ready items; returns how many were published."""
        sent = 0
        counters = self.pipeline.counters
        while len(self._inflight) < self.inflight_max:
            item = self.pipeline.take()
            if item is None:
                break
            if isinstance(item, TxMessage):
                mid = transport.publish(self.topics.tx, item.payload, 1, False)
                counters.messages += 1
                counters.transactions += item.count
            else:
                mid = transport.publish(self.topics.alerts, item.payload, 1, False)
                counters.alerts += 1
            self._inflight[mid] = item
            sent += 1
        return sent

    def on_ack(self, mid: int, ok: bool = True, reason: str = "") -> bool:
        """The broker acknowledged mid; False if the mid is not ours (status, stock, replies)."""
        item = self._inflight.pop(mid, None)
        if item is None:
            return False
        if not ok:
            # Refused (an MQTT 5 reason code, e.g. not authorized): it stays unsent; the
            # network side drops the connection and offers it again after a backoff.
            topic = self.topics.tx if isinstance(item, TxMessage) else self.topics.alerts
            log.error(
                "the broker refused a message on %s (%s): it stays in the outbox and is sent"
                " again after reconnecting; check the broker's ACL",
                topic,
                reason,
            )
            self._refused.append(item)
            return True
        self.pipeline.counters.acks += 1
        self.last_ack_ts = self.clock()
        self.pipeline.ack(item)
        return True


def _publish_order(item: Item) -> tuple[int, int]:
    # Alerts and messages each keep their own order; between the two it does not matter.
    return (0, item.seq) if isinstance(item, TxMessage) else (1, item.id)


class Feeder:
    """The store side: builds, stores and offers messages; records acks; marks rows sent."""

    def __init__(
        self,
        store: OutboxStore,
        pipeline: Pipeline,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.clock = clock
        self.monotonic = monotonic
        self._alert_cursor = 0
        self._more_tx = self._more_alerts = True
        self._last_mark = 0.0
        self._blocked_until = 0.0
        self._last_full_log = -DISK_FULL_LOG_EVERY_S
        self._unmarked = True

    def start_up(self) -> None:
        """Unacknowledged messages of an earlier run go first, rebuilt byte for byte."""
        again = self.store.unacked()
        if again:
            log.info(
                "re-sending %d unacknowledged P/tx messages from seq %d", len(again), again[0].seq
            )
            self.pipeline.counters.resent += len(again)
            self.pipeline.offer(list(again))

    def poke(self) -> None:
        """Something may have been written to the outbox: look again."""
        self._more_tx = self._more_alerts = True

    def step(self) -> bool:
        """One round of work; False when there was nothing to do (the caller may wait)."""
        if self.monotonic() < self._blocked_until:
            return False
        room = self.pipeline.room()
        alerts = self._read_alerts(room) if room > 0 and self._more_alerts else []
        self.pipeline.offer(alerts)  # alerts need no storing: they are outbox rows already
        room -= len(alerts)
        # Refills come at the low-water mark, many messages to a commit (an fsync each).
        refill = room > 0 and self._more_tx and self.pipeline.low()
        # At most half the pipeline per commit, so the first messages go out soon.
        new = self.store.prepare(min(room, max(1, self.pipeline.ahead // 2))) if refill else []
        if refill and not new:
            self._more_tx = False
        self.pipeline.more = self._more_tx
        # While a backlog drains, acks ride along with the refills' commits, or go in batches:
        # what is not recorded is sent again after a crash.
        record = new or not self._more_tx or self.pipeline.acks_waiting() >= ACK_BATCH
        acked = self.pipeline.take_acks() if record else []
        if (new or acked) and not self._write(new, acked):
            return False
        self.pipeline.offer(list(new))  # offered only once stored with its seq
        marked = self._mark_some() if self._may_mark() else 0
        return bool(new or alerts or acked or marked)

    def _may_mark(self) -> bool:
        """Marking rows sent is the least urgent work: while a backlog drains it gives the
        CPU and the write lock to publishing, except for one chunk a second (the acks are
        safe in messages meanwhile, and sync_status counts from them)."""
        if not self._more_tx:
            return True
        now = self.monotonic()
        if now - self._last_mark >= MARK_AT_LEAST_EVERY_S:
            self._last_mark = now
            return True
        return False

    def _read_alerts(self, room: int) -> list[Item]:
        rows = self.store.unsent_alerts(self._alert_cursor, room)
        self._more_alerts = len(rows) == room
        if rows:
            self._alert_cursor = rows[-1].id
        return list(rows)

    def _write(self, new: list[TxMessage], acked: list[Item]) -> bool:
        messages = [a for a in acked if isinstance(a, TxMessage)]
        alerts = [a.id for a in acked if isinstance(a, AlertRow)]
        try:
            self.store.write(new, messages, alerts, self.clock())
        except sqlite3.Error as exc:
            self.pipeline.return_acks(acked)
            if new:  # not stored, so not offered: they are read again next time
                self._more_tx = True
            self._failed(exc, f"record {len(acked)} acknowledgements and {len(new)} new messages")
            return False
        self.pipeline.counters.recorded += len(acked)
        if messages:
            self._unmarked = True
        return True

    def _mark_some(self) -> int:
        if not self._unmarked:
            return 0
        try:
            messages, rows = mark_sent(self.store.conn, MARK_MESSAGES)
        except sqlite3.Error as exc:
            self._failed(exc, "mark acknowledged rows sent")
            return 0
        self.pipeline.counters.marked += rows
        if messages == 0:
            self._unmarked = False
        return messages

    def finish(self, budget_s: float = FINISH_MARK_S) -> None:
        """At stop: record every acknowledgement, and mark acknowledged rows sent for up to
        budget_s (what is left is marked after the next start: the acks are recorded)."""
        acked = self.pipeline.take_acks()
        if acked:
            self._write([], acked)
        self._unmarked = True
        deadline = self.monotonic() + budget_s
        while self._mark_some() and self.monotonic() < deadline:
            pass

    def _failed(self, exc: sqlite3.Error, what: str) -> None:
        now = self.monotonic()
        self._blocked_until = now + WRITE_RETRY_S
        self.pipeline.more = False  # nothing is coming soon: the network side may idle
        if is_disk_full(exc):
            # Invariant 5: nothing is deleted to make room; acks wait in memory and are
            # recorded when space returns (at worst they are re-sent: at-least-once).
            if now - self._last_full_log >= DISK_FULL_LOG_EVERY_S:
                self._last_full_log = now
                log.error(
                    "DISK FULL: cannot %s in the ledger (%s); publishing new messages paused,"
                    " retrying every %.0f s; no outbox row is deleted",
                    what,
                    exc,
                    WRITE_RETRY_S,
                )
            return
        log.warning(
            "cannot %s yet (ledger busy or failing), retrying in %.0f s: %s",
            what,
            WRITE_RETRY_S,
            exc,
        )
