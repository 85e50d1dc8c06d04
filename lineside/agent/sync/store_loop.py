"""The lineside-sync-store thread: the publisher's own ledger connection (publisher.Feeder).

It builds and stores messages ahead of the window, records acknowledgements, marks rows
sent, notices commits of other connections, prunes what is past retention, and decides
when a P/stock snapshot is due (the worker builds it).

Pruning runs once an hour: sent outbox rows past mqtt.retention_days, then journal rows
past ledger.keep_days a batch at a time, with a pause between batches in which the
thread goes on publishing, until nothing is left to prune.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable

from lineside.agent.ledger.outbox import OutboxStore, open_for_publisher
from lineside.agent.ledger.outbox_status import prune
from lineside.agent.sync.publisher import Feeder
from lineside.agent.sync.shared import Shared

log = logging.getLogger("lineside.sync")

POLL_S = 0.2  # the store thread looks for rows written by others at least this often
PRUNE_EVERY_S = 3600.0
PRUNE_FIRST_S = 60.0
PRUNE_PAUSE_S = 0.2  # between two batches of journal rows: the writer and publisher go on
STORE_BUSY_TIMEOUT_MS = 5000


class StoreLoop:
    """The store thread's body, until store_stop is set (after the network thread ended)."""

    def __init__(self, shared: Shared, stock_task: Callable[[bool], None]) -> None:
        self.shared = shared
        self.stock_task = stock_task  # on the worker: P/stock, forced or only if changed
        self._pruning = False  # within a round of journal batches

    def run(self) -> None:
        s = self.shared
        try:
            conn = open_for_publisher(s.db_path, STORE_BUSY_TIMEOUT_MS)
        except sqlite3.Error:
            log.exception("cannot open the ledger %s: publishing stopped", s.db_path)
            return
        store = OutboxStore(conn, s.topics.gateway, s.mqtt.batch_max)
        feeder = Feeder(store, s.pipeline, s.clock)
        next_prune = time.monotonic() + PRUNE_FIRST_S
        try:
            feeder.start_up()
            while not s.store_stop.is_set():
                s.pipeline.wake_feeder.clear()  # a wake-up during this round is kept
                if store.data_changed():
                    feeder.poke()
                    s.stock.check(conn)
                self._maybe_stock()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self._prune(conn)
                if not feeder.step():
                    s.pipeline.wake_feeder.wait(POLL_S)
            feeder.finish()
        except Exception:
            log.exception("the sync store thread failed; publishing stopped")
            s.last_error = "sync store thread failed (see the log)"
        finally:
            conn.close()

    def _prune(self, conn: sqlite3.Connection) -> float:
        """One step of retention; returns the seconds until the next."""
        s = self.shared
        try:
            if not self._pruning:
                prune(conn, s.mqtt.retention_days, s.clock())
            self._pruning = s.retention is not None and s.pruner.batch(conn, s.retention, s.clock())
        except sqlite3.Error as exc:
            log.warning("retention: pruning failed, retried in an hour: %s", exc)
            self._pruning = False
        return PRUNE_PAUSE_S if self._pruning else PRUNE_EVERY_S

    def _maybe_stock(self) -> None:
        s, stock = self.shared, self.shared.stock
        if s.ledger is None or not stock.dirty or s.stock_pending.is_set():
            return
        if not s.connected:
            return
        if time.monotonic() - stock.last_sent < float(s.mqtt.stock_interval_s):
            return
        force, stock.dirty, stock.force = stock.force, False, False
        stock.last_sent = time.monotonic()
        s.stock_pending.set()
        if not s.submit(lambda: self.stock_task(force)):
            s.stock_pending.clear()
