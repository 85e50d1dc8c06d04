"""What the three sync threads share, in one object: who writes each part, who reads it.

- lineside-sync (network.py) writes connected, subscribed, reconnects; reads the window
  and the queue of what the others return for publishing.
- lineside-sync-store (store_loop.py) fills the pipeline, decides when stock is due and
  prunes (pruner); a reload may replace retention.
- lineside-sync-worker (worker.py) runs tasks, returning replies and stock through
  `outgoing`.
last_error is written by whichever thread failed last, read by status; a plain attribute
(one reference assigned at a time) needs no lock. Everything else crosses threads through
the queues, events and the pipeline, which are made for it.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lineside.agent.config import MqttConfig
from lineside.agent.ledger.outbox import journal_head
from lineside.agent.ledger.retention import Pruner, Retention
from lineside.agent.sync import payloads
from lineside.agent.sync.commands_in import CommandParser, LedgerProtocol, Outgoing
from lineside.agent.sync.inbox import Inbox, Returned
from lineside.agent.sync.publisher import Pipeline, Window
from lineside.agent.sync.replay import Replays
from lineside.clock import Clock

log = logging.getLogger("lineside.sync")

TASK_QUEUE_MAX = 10_000
# Messages built ahead of the window hold about this many transactions; the store thread
# refills them by halves, so one commit stores the seqs of many messages.
AHEAD_ROWS = 20_000

Task = Callable[[], None]


class StockWatch:
    """Whether the balances may have changed since the last P/stock (the journal grew)."""

    def __init__(self) -> None:
        self.dirty = True
        self.force = True  # the first snapshot of a connection is published even if unchanged
        self.last_sent = -1e18
        self._journal_seq: object = None

    def check(self, conn: sqlite3.Connection) -> None:
        seq = journal_head(conn)
        if seq != self._journal_seq:
            self._journal_seq = seq
            self.dirty = True

    def connected(self) -> None:
        """A new connection: the broker may have lost the retained snapshot."""
        self.dirty = self.force = True


@dataclass(eq=False)
class Shared:
    """The state of one Sync that more than one of its threads touches."""

    mqtt: MqttConfig
    topics: payloads.Topics
    ledger: LedgerProtocol | None  # None: a bare publisher, no commands, no stock
    db_path: Path
    clock: Clock
    version: str
    parser: CommandParser
    pipeline: Pipeline = field(init=False)
    window: Window = field(init=False)
    inbox: Inbox = field(init=False)
    replays: Replays = field(init=False)
    stop: threading.Event = field(default_factory=threading.Event)  # the network thread's
    store_stop: threading.Event = field(default_factory=threading.Event)  # store and worker
    stop_timeout_s: float = 5.0  # how long a clean stop waits for acknowledgements
    tasks: queue.Queue[Task | None] = field(default_factory=lambda: queue.Queue(TASK_QUEUE_MAX))
    outgoing: queue.SimpleQueue[Returned] = field(default_factory=queue.SimpleQueue)
    stock: StockWatch = field(default_factory=StockWatch)
    stock_pending: threading.Event = field(default_factory=threading.Event)
    retention: Retention | None = None  # ledger.keep_days and archive_dir; None: no pruning
    pruner: Pruner = field(default_factory=Pruner)  # the store thread's
    connected: bool = False
    subscribed: bool = False
    reconnects: int = 0
    last_error: str | None = None

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(ahead=max(2, AHEAD_ROWS // self.mqtt.batch_max))
        self.window = Window(self.pipeline, self.topics, self.mqtt.inflight_max, self.clock)
        self.inbox = Inbox(self.topics, self.ledger, self.parser, self.submit, self.outgoing)
        self.replays = Replays(
            self.db_path,
            self.topics,
            submit=self.submit,
            reply=lambda topic, body: self.outgoing.put(Outgoing(topic, body)),
            wake=lambda: self.pipeline.on_ready(),
            protocol=self.mqtt.protocol,
        )

    def counters(self) -> dict[str, int]:
        """Monotonic counts of all three threads, for metrics."""
        c = self.pipeline.counters
        return {
            "messages_published": c.messages,
            "transactions_published": c.transactions,
            "alerts_published": c.alerts,
            "acks": c.acks,
            "acks_recorded": c.recorded,
            "rows_marked_sent": c.marked,
            "resent_messages": c.resent,
            "replayed_messages": self.replays.resent,
            "reconnects": self.reconnects,
            "commands": self.inbox.received,
            "rows_pruned": self.pruner.pruned,
        }

    def submit(self, task: Task) -> bool:
        """Hand a task to the worker; False (logged) when its queue is full."""
        try:
            self.tasks.put_nowait(task)
        except queue.Full:
            log.warning("sync worker queue full (%d tasks): dropping a task", TASK_QUEUE_MAX)
            return False
        return True
