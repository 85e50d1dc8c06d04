"""Sync with the central broker: the runtime's one object for MQTT (see docs/mqtt.md).

A facade over three threads, all started by start(), each in its own module, sharing one
Shared object (shared.py):

- lineside-sync (network.py) owns the paho client: connects, publishes, takes commands.
- lineside-sync-store (store_loop.py) owns the publisher's ledger connection: builds and
  stores messages ahead of the window, records acknowledgements, marks rows sent, prunes.
- lineside-sync-worker (worker.py) does what may block on the Ledger: commands and stock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from lineside import __version__
from lineside.agent.config import LoadedConfig
from lineside.agent.ledger.handover import agent_lock_path
from lineside.agent.ledger.outbox_status import sync_status
from lineside.agent.ledger.retention import retention_of
from lineside.agent.ledger.store import connect
from lineside.agent.liveness import Loop
from lineside.agent.sync import payloads
from lineside.agent.sync.client import SyncSetupError, settings_from
from lineside.agent.sync.commands_in import MAX_COMMAND_BYTES, CommandParser, LedgerProtocol
from lineside.agent.sync.connect import CONNACK_TIMEOUT_S, link_backoff
from lineside.agent.sync.network import NetworkLoop
from lineside.agent.sync.shared import Shared
from lineside.agent.sync.store_loop import StoreLoop
from lineside.agent.sync.worker import Worker
from lineside.clock import Clock, utc_now

log = logging.getLogger("lineside.sync")


class Sync:
    """Publishes the outbox, status and stock; takes commands; one instance per ledger.

    ledger None runs a publisher only: no commands are subscribed, no stock is published.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        ledger: LedgerProtocol | None,
        db_path: Path,
        *,
        clock: Clock = utc_now,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        max_command_bytes: int = MAX_COMMAND_BYTES,
        version: str = __version__,
    ) -> None:
        cfg = loaded.config
        self.db_path = Path(db_path)
        self.clock = clock
        self.settings = settings = settings_from(loaded)  # raises SyncSetupError
        self.shared = s = Shared(
            mqtt=cfg.mqtt,
            topics=payloads.Topics(cfg.mqtt.topic_prefix, cfg.gateway.site, cfg.gateway.id),
            ledger=ledger,
            db_path=self.db_path,
            clock=clock,
            version=version,
            parser=CommandParser(clock, max_bytes=max_command_bytes),
            retention=retention_of(loaded),
        )
        backoff = link_backoff(reconnect_min_s, reconnect_max_s)
        self.network = NetworkLoop(s, settings, backoff)
        self.worker = Worker(s)
        self.store = StoreLoop(s, self.worker.publish_stock)
        self._threads: list[threading.Thread] = []
        self._started = False
        self._lock_file: IO[bytes] | None = None

    # -- public API ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the threads and return at once (the broker may well be down).

        A Sync runs once: after stop(), make a new one (a reloaded config does anyway).
        """
        if self._started:
            raise RuntimeError("a Sync is started once; make a new one")
        self._lock_file = _lock(self.db_path)
        self._started = True
        self._threads = [
            threading.Thread(target=self.network.run, name="lineside-sync", daemon=True),
            threading.Thread(target=self.store.run, name="lineside-sync-store", daemon=True),
            threading.Thread(target=self.worker.run, name="lineside-sync-worker", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish offline status, give in-flight messages up to timeout_s, disconnect."""
        if not self._threads:
            return
        s = self.shared
        s.stop_timeout_s = timeout_s
        s.stop.set()
        network, store, worker = self._threads
        network.join(timeout_s + CONNACK_TIMEOUT_S)
        s.store_stop.set()  # after the network thread: its last acks get recorded
        s.pipeline.wake_feeder.set()
        store.join(timeout_s + 10)
        s.tasks.put(None)
        worker.join(timeout_s + 5)
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        if network.is_alive() or store.is_alive():
            # Keep the lock: a new Sync on this ledger must not publish beside these threads.
            log.error(
                "sync threads %s did not stop in time; the ledger stays locked", ", ".join(alive)
            )
            return
        if alive:
            log.warning("sync threads %s did not stop in time", ", ".join(alive))
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def loops(self) -> list[Loop]:
        """The three threads while they should run (none before start or after stop)."""
        if len(self._threads) != 3:
            return []
        network, store, worker = self._threads
        return [
            Loop(network, self.shared.stop.is_set),
            Loop(store, self.shared.store_stop.is_set),
            Loop(worker, self.shared.store_stop.is_set),  # told to end after the store thread
        ]

    def rows_written(self) -> None:
        """The ledger just committed outbox rows: look now instead of at the next poll.

        Rows from other processes (the CLI) are still found by polling.
        """
        self.shared.pipeline.wake_feeder.set()

    @property
    def connected(self) -> bool:
        return self.shared.connected

    @property
    def commands_ready(self) -> bool:
        """Connected and subscribed to P/cmd/#: commands sent from now on arrive."""
        return self.shared.connected and self.shared.subscribed

    @property
    def last_error(self) -> str | None:
        return self.shared.last_error

    @property
    def reconnects(self) -> int:
        return self.shared.reconnects

    @property
    def last_ack_ts(self) -> datetime | None:
        return self.shared.window.last_ack_ts

    @property
    def commands(self) -> int:
        """Command messages received (retained ones and other topics not counted)."""
        return self.shared.inbox.received

    def counters(self) -> dict[str, int]:
        """Monotonic counts for metrics."""
        return self.shared.counters()

    def status(self) -> dict[str, Any]:
        """sync_status of the ledger plus the live link, for `lineside status` and metrics."""
        conn = connect(self.db_path)
        try:
            data = sync_status(conn, self.clock())
        finally:
            conn.close()
        return {
            **data,
            "connected": self.connected,
            "last_error": self.last_error,
            **self.counters(),
        }


def _lock(db_path: Path) -> IO[bytes]:
    """One publisher per ledger: a second would interleave seqs."""
    path = agent_lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise SyncSetupError(
            f"another lineside process is already syncing {db_path} (lock {path} is held)"
        ) from None
    os.set_inheritable(handle.fileno(), False)
    return handle


__all__ = ["Sync", "SyncSetupError"]
