"""The lineside-sync-worker thread: what may block on the Ledger, one task at a time.

Commands (inbox.py) and P/stock snapshots. What they publish goes back to the network
thread through Shared.outgoing; so do the acknowledgements of commands, sent only once a
command is durable.
"""

from __future__ import annotations

import logging

from lineside.agent.sync import payloads
from lineside.agent.sync.commands_in import Outgoing
from lineside.agent.sync.shared import Shared

log = logging.getLogger("lineside.sync")


class Worker:
    """Runs tasks in order until it takes None (Sync.stop puts it last)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self._last_stock: bytes | None = None

    def run(self) -> None:
        while True:
            task = self.shared.tasks.get()
            if task is None:
                return
            try:
                task()
            except Exception:  # a task never ends the worker (invariant 7)
                log.exception("sync worker task failed")

    def publish_stock(self, force: bool) -> None:
        """Hand P/stock to the network thread if the balances changed (or force)."""
        s = self.shared
        try:
            assert s.ledger is not None
            balances = s.ledger.stock_snapshot()
            body = payloads.dumps(balances)
            if force or body != self._last_stock:
                self._last_stock = body
                payload = payloads.stock(s.topics.gateway, s.clock(), balances)
                s.outgoing.put(Outgoing(s.topics.stock, payload, retain=True))
        finally:
            s.stock_pending.clear()
