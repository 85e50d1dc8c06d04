"""Sync with the central broker: the runtime's one object for MQTT (see docs/mqtt.md).

Three threads, all started by start():

- lineside-sync (network) owns the paho client and runs its network loop by hand
  (client.loop()), publishing between loop calls, so paho's callbacks run on this thread,
  in order, never concurrently with our publish() calls. A fresh client is made for every
  connection, so paho never re-sends stale messages behind the publisher's back. It does
  no SQLite work at all.
- lineside-sync-store owns the publisher's ledger connection (publisher.Feeder): builds
  and stores messages ahead of the window, records acknowledgements, marks rows sent,
  notices changes to the ledger, prunes what is past retention.
- lineside-sync-worker does what may block on the Ledger: commands and stock snapshots.
  Replies come back through a queue and the network thread publishes them; so do the
  acknowledgements of commands, sent only once a command is durable (inbox.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as mqtt

from lineside import __version__
from lineside.agent.config import LoadedConfig
from lineside.agent.ledger.store import connect
from lineside.agent.liveness import Loop
from lineside.agent.sync import payloads
from lineside.agent.sync.client import (
    PAHO_LOGGER,
    ClientSettings,
    SyncSetupError,
    backoff_s,
    explain,
    explain_refusal,
    new_client,
    settings_from,
    start_connect,
)
from lineside.agent.sync.client import close_client as _close
from lineside.agent.sync.commands_in import (
    MAX_COMMAND_BYTES,
    CommandParser,
    LedgerProtocol,
    Outgoing,
)
from lineside.agent.sync.inbox import Answer, Inbox, Returned
from lineside.agent.sync.outbox import OutboxStore
from lineside.agent.sync.publisher import Feeder, Pipeline, Window
from lineside.agent.sync.replay import Replays
from lineside.agent.sync.status import prune, sync_status
from lineside.clock import Clock, utc_now

log = logging.getLogger("lineside.sync")

LOOP_WAIT_S = 0.05  # one network loop call waits at most this: latency of replies
STARVING_WAIT_S = 0.001
POLL_S = 0.2  # the store thread looks for rows written by others at least this often
CONNACK_TIMEOUT_S = 15.0
PRUNE_EVERY_S = 3600.0
PRUNE_FIRST_S = 60.0
TASK_QUEUE_MAX = 10_000
STORE_BUSY_TIMEOUT_MS = 5000
# Messages built ahead of the window hold about this many transactions (some 5 MB); the
# store thread refills them by halves, so one commit stores a hundred messages' seqs.
AHEAD_ROWS = 20_000
# paho's own window sits above ours, leaving room for status, stock and replies.
PAHO_INFLIGHT_EXTRA = 16


class _PahoErrors(logging.Filter):
    """The first error paho logs on a connection: the cause, for our own messages.

    A filter on the client's own logger instead of paho's on_log callback: with on_log set,
    paho formats every debug line (two per message) even though nobody reads them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.first: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and self.first is None:
            self.first = record.getMessage()
        return True  # still logged as before


@dataclass
class _Link:
    """What paho tells the network thread about the current connection."""

    connack: Any = None
    session_present: bool = False
    errors: _PahoErrors = field(default_factory=_PahoErrors)
    disconnect_reason: str | None = None

    @property
    def last_paho_error(self) -> str | None:
        return self.errors.first or self.disconnect_reason

    def logger(self) -> logging.Logger:
        """A logger of paho's own for this connection, its records going where paho's go.

        Not registered with logging (one per connection, nothing to leak).
        """
        logger = _UncachedLogger(PAHO_LOGGER)
        logger.parent = logging.getLogger(PAHO_LOGGER)
        logger.addFilter(self.errors)
        return logger


class _UncachedLogger(logging.Logger):
    """Asks its parents every time: logging clears the cache of what is enabled only for
    the loggers it knows, so a cached answer would miss a level changed by a reload."""

    def isEnabledFor(self, level: int) -> bool:
        return self.manager.disable < level and level >= self.getEffectiveLevel()


class _StockWatch:
    """Whether the balances may have changed since the last P/stock (the journal grew)."""

    def __init__(self) -> None:
        self.dirty = True
        self.force = True  # the first snapshot of a connection is published even if unchanged
        self.last_sent = -1e18
        self._journal_seq: object = None

    def check(self, conn: sqlite3.Connection) -> None:
        seq = conn.execute("SELECT MAX(seq) FROM journal").fetchone()[0]
        if seq != self._journal_seq:
            self._journal_seq = seq
            self.dirty = True

    def connected(self) -> None:
        """A new connection: the broker may have lost the retained snapshot."""
        self.dirty = self.force = True


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
        self.mqtt = cfg.mqtt
        self.ledger = ledger
        self.db_path = Path(db_path)
        self.clock = clock
        self.version = version
        self.topics = payloads.Topics(cfg.mqtt.topic_prefix, cfg.gateway.site, cfg.gateway.id)
        self.settings: ClientSettings = settings_from(loaded)  # raises SyncSetupError
        self.parser = CommandParser(clock, max_bytes=max_command_bytes)
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = max(reconnect_max_s, reconnect_min_s)
        self.last_error: str | None = None
        self.reconnects = 0
        self.pipeline = Pipeline(ahead=max(2, AHEAD_ROWS // self.mqtt.batch_max))
        self.window = Window(self.pipeline, self.topics, self.mqtt.inflight_max, clock)
        self._connected = False
        self._subscribed = False
        self._stop = threading.Event()
        self._store_stop = threading.Event()
        self._stop_timeout_s = 5.0
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue(TASK_QUEUE_MAX)
        self._outgoing: queue.SimpleQueue[Returned] = queue.SimpleQueue()
        self.inbox = Inbox(self.topics, ledger, self.parser, self._submit, self._outgoing)
        self._threads: list[threading.Thread] = []
        self._started = False
        self._lock_file: IO[bytes] | None = None
        self._stock = _StockWatch()
        self._stock_pending = threading.Event()
        self._last_stock: bytes | None = None
        self._link = _Link()
        self._other_mids: set[int] = set()
        self.replays = Replays(
            self.db_path,
            self.topics,
            submit=self._submit,
            reply=lambda topic, body: self._outgoing.put(Outgoing(topic, body)),
            wake=lambda: self.pipeline.on_ready(),
            protocol=cfg.mqtt.protocol,
        )

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
            threading.Thread(target=self._run_network, name="lineside-sync", daemon=True),
            threading.Thread(target=self._run_store, name="lineside-sync-store", daemon=True),
            threading.Thread(target=self._work, name="lineside-sync-worker", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish offline status, give in-flight messages up to timeout_s, disconnect."""
        if not self._threads:
            return
        self._stop_timeout_s = timeout_s
        self._stop.set()
        network, store, worker = self._threads
        network.join(timeout_s + CONNACK_TIMEOUT_S)
        self._store_stop.set()  # after the network thread: its last acks get recorded
        self.pipeline.wake_feeder.set()
        store.join(timeout_s + 10)
        self._tasks.put(None)
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
            Loop(network, self._stop.is_set),
            Loop(store, self._store_stop.is_set),
            Loop(worker, self._store_stop.is_set),  # told to end after the store thread
        ]

    def rows_written(self) -> None:
        """The ledger just committed outbox rows: look now instead of at the next poll.

        Rows from other processes (the CLI) are still found by polling.
        """
        self.pipeline.wake_feeder.set()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def commands_ready(self) -> bool:
        """Connected and subscribed to P/cmd/#: commands sent from now on arrive."""
        return self._connected and self._subscribed

    @property
    def last_ack_ts(self) -> datetime | None:
        return self.window.last_ack_ts

    @property
    def commands(self) -> int:
        """Command messages received (retained ones and other topics not counted)."""
        return self.inbox.received

    def counters(self) -> dict[str, int]:
        """Monotonic counts for metrics."""
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
            "commands": self.commands,
        }

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

    # -- network thread ----------------------------------------------------------------------
    def _run_network(self) -> None:
        failures = refused = 0
        try:
            while not self._stop.is_set():
                client = self._open()
                if client is None:
                    failures += 1
                    self._stop.wait(self._backoff(failures))
                    continue
                if failures:
                    log.info(
                        "connected to %s after %d failed attempts", self.settings.where, failures
                    )
                failures = 0
                ended_by_refusal = self._session(client)
                if not self._stop.is_set():
                    self.reconnects += 1
                    refused = refused + 1 if ended_by_refusal else 0
                    self._stop.wait(self._backoff(1 + refused))
        except Exception:
            log.exception("the sync network thread failed; publishing stopped")
            self.last_error = "sync network thread failed (see the log)"
        finally:
            self._connected = False

    def _backoff(self, failures: int) -> float:
        return backoff_s(failures, self.reconnect_min_s, self.reconnect_max_s)

    def _open(self) -> mqtt.Client | None:
        """Connect and wait for the CONNACK; None (with last_error set and logged) on failure."""
        self._link = _Link()
        will = (self.topics.status, payloads.status_will(self.version))
        client = new_client(
            self.settings,
            persistent=True,
            will=will,
            max_inflight=self.mqtt.inflight_max + PAHO_INFLIGHT_EXTRA,
            logger=self._link.logger(),
            manual_ack=True,
        )
        self._wire(client)
        try:
            start_connect(client, self.settings, persistent=True)
        except (OSError, ValueError) as exc:
            self._failed(explain(exc, self.settings))
            return None
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        while self._link.connack is None:
            rc = client.loop(LOOP_WAIT_S)
            if self._link.connack is not None:
                break  # a refusal arrives together with the close: report the refusal
            if rc != mqtt.MQTT_ERR_SUCCESS or time.monotonic() > deadline or self._stop.is_set():
                reason = self._link.last_paho_error or "the broker closed the connection"
                self._failed(explain(reason, self.settings))
                _close(client)
                return None
        if self._link.connack.is_failure:
            self._failed(explain_refusal(self._link.connack, self.settings))
            _close(client)
            return None
        return client

    def _failed(self, message: str) -> None:
        """The first failure (and each new kind) loudly, repeats quietly."""
        if message != self.last_error:
            log.error("%s; retrying", message)
        else:
            log.debug("%s; retrying", message)
        self.last_error = message

    def _wire(self, client: mqtt.Client) -> None:
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    def _session(self, client: mqtt.Client) -> bool:
        """Publish until stopped or the link is lost; True when it ended because the broker
        refused a message (it is offered again on the next connection, after a backoff)."""
        self._connected = True
        self.last_error = None
        log.info(
            "connected to %s as %s (session %s)",
            self.settings.where,
            self.settings.client_id,
            "resumed" if self._link.session_present else "new",
        )
        transport = _Transport(client)
        self.pipeline.on_ready = lambda: _wake(client)
        self._other_mids.clear()
        self.window.reset()
        self.inbox.connected(client)
        online = payloads.status_online(self.version, self.clock())
        self._publish(transport, Outgoing(self.topics.status, online, retain=True))
        # Without a ledger (a bare publisher) only replays can be served.
        commands = self.topics.cmd_filter if self.ledger is not None else self.topics.cmd("replay")
        client.subscribe(commands, qos=1)
        self._stock.connected()
        try:
            while not self._stop.is_set():
                if client.loop(self._loop_wait()) != mqtt.MQTT_ERR_SUCCESS:
                    log.warning(
                        "lost the connection to %s: %s",
                        self.settings.where,
                        self._link.last_paho_error or "closed",
                    )
                    return False
                if self.window.refused:
                    self.last_error = "the broker refused a message (see the log)"
                    client.disconnect()
                    return True
                self._drain_outgoing(transport)
                self.window.pump(transport)
                self.replays.pump(transport.publish_replay)  # beside live traffic, after it
            self._shutdown(client, transport)
            return False
        finally:
            self.replays.lost()
            self.pipeline.on_ready = lambda: None
            self.inbox.disconnected()
            self._connected = self._subscribed = False
            _close(client)

    def _loop_wait(self) -> float:
        # While a backlog drains, the window must not sit empty for a whole LOOP_WAIT_S
        # waiting for the feeder: look again after a moment instead.
        if self.window.inflight < self.mqtt.inflight_max and self.pipeline.starving():
            return STARVING_WAIT_S
        return LOOP_WAIT_S

    def _shutdown(self, client: mqtt.Client, transport: _Transport) -> None:
        """Clean stop: replies out, offline status, in-flight messages acked, DISCONNECT."""
        self._drain_outgoing(transport)
        offline = payloads.status_offline(self.version, self.clock())
        self._publish(transport, Outgoing(self.topics.status, offline, retain=True))
        deadline = time.monotonic() + self._stop_timeout_s
        # Commands being applied get their acknowledgement too, if they finish in time;
        # the others the broker delivers again at the next start.
        while (
            self.window.inflight or self._other_mids or self.inbox.acks.waiting
        ) and time.monotonic() < deadline:
            if client.loop(LOOP_WAIT_S) != mqtt.MQTT_ERR_SUCCESS:
                break
            self._drain_outgoing(transport)
        if self.window.inflight:
            log.warning(
                "stopped with %d messages unacknowledged: they are sent again at the next start",
                self.window.inflight,
            )
        client.disconnect()
        log.info("disconnected from %s", self.settings.where)

    def _publish(self, transport: _Transport, out: Outgoing) -> int:
        mid = transport.publish(out.topic, out.payload, out.qos, out.retain)
        self._other_mids.add(mid)
        return mid

    def _drain_outgoing(self, transport: _Transport) -> None:
        if self._outgoing.empty():  # the usual case: no exception raised and caught
            return
        while True:
            try:
                out = self._outgoing.get_nowait()
            except queue.Empty:
                return
            if isinstance(out, Answer):
                self.inbox.answered(out, lambda reply: self._publish(transport, reply))
            else:
                self._publish(transport, out)

    # -- paho callbacks (network thread, inside client.loop) -----------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._link.connack = reason
        self._link.session_present = bool(getattr(flags, "session_present", False))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        # paho's own error line (e.g. the TLS alert) says more than "Unspecified error".
        if self._link.disconnect_reason is None and getattr(reason, "is_failure", False):
            self._link.disconnect_reason = str(reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        ok = not getattr(reason, "is_failure", False)
        window = self.window.on_ack(mid, ok, "" if ok else str(reason))
        if not window and not self.replays.on_ack(mid):
            self._other_mids.discard(mid)
            self.inbox.reply_acked(mid)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, properties: Any
    ) -> None:
        refused = [str(c) for c in codes if getattr(c, "is_failure", False)]
        self._subscribed = not refused
        if refused:
            log.error(
                "the broker refused our subscription to %s (%s): commands will not"
                " arrive; check the broker's ACL",
                self.topics.cmd_filter,
                ", ".join(refused),
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topics.cmd("replay") and not message.retain:
            # A replay changes nothing in the ledger: nothing to wait for before the PUBACK.
            self.inbox.acks.received(message.mid, message.qos).finish()
            self.replays.request(bytes(message.payload))
            return
        self.inbox.on_message(message)

    # -- store thread ------------------------------------------------------------------------
    def _run_store(self) -> None:
        try:
            conn = connect(self.db_path)
        except sqlite3.Error:
            log.exception("cannot open the ledger %s: publishing stopped", self.db_path)
            return
        conn.execute(f"PRAGMA busy_timeout = {STORE_BUSY_TIMEOUT_MS}")
        feeder = Feeder(
            OutboxStore(conn, self.topics.gateway, self.mqtt.batch_max), self.pipeline, self.clock
        )
        next_prune = time.monotonic() + PRUNE_FIRST_S
        try:
            feeder.start_up()
            while not self._store_stop.is_set():
                self.pipeline.wake_feeder.clear()  # a wake-up during this round is kept
                if feeder.store.data_changed():
                    feeder.poke()
                    self._stock.check(conn)
                self._maybe_stock()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                    self._prune(conn)
                if not feeder.step():
                    self.pipeline.wake_feeder.wait(POLL_S)
            feeder.finish()
        except Exception:
            log.exception("the sync store thread failed; publishing stopped")
            self.last_error = "sync store thread failed (see the log)"
        finally:
            conn.close()

    def _prune(self, conn: sqlite3.Connection) -> None:
        try:
            prune(conn, self.mqtt.retention_days, self.clock())
        except sqlite3.Error as exc:
            log.warning("retention: pruning failed, retried in an hour: %s", exc)

    def _maybe_stock(self) -> None:
        stock = self._stock
        if self.ledger is None or not stock.dirty or self._stock_pending.is_set():
            return
        if not self._connected:
            return
        if time.monotonic() - stock.last_sent < float(self.mqtt.stock_interval_s):
            return
        force, stock.dirty, stock.force = stock.force, False, False
        stock.last_sent = time.monotonic()
        self._stock_pending.set()
        if not self._submit(lambda: self._publish_stock(force)):
            self._stock_pending.clear()

    # -- worker thread -----------------------------------------------------------------------
    def _submit(self, task: Callable[[], None]) -> bool:
        try:
            self._tasks.put_nowait(task)
        except queue.Full:
            log.warning("sync worker queue full (%d tasks): dropping a task", TASK_QUEUE_MAX)
            return False
        return True

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            try:
                task()
            except Exception:  # a task never ends the worker (invariant 7)
                log.exception("sync worker task failed")

    def _publish_stock(self, force: bool) -> None:
        try:
            assert self.ledger is not None
            balances = self.ledger.stock_snapshot()
            body = payloads.dumps(balances)
            if force or body != self._last_stock:
                self._last_stock = body
                payload = payloads.stock(self.topics.gateway, self.clock(), balances)
                self._outgoing.put(Outgoing(self.topics.stock, payload, retain=True))
        finally:
            self._stock_pending.clear()


class _Transport:
    def __init__(self, client: mqtt.Client) -> None:
        self.client = client

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        # rc may be MQTT_ERR_NO_CONN: the loop reports the lost link next, and the
        # window offers the message again on the next connection.
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return int(info.mid)

    def publish_replay(self, topic: str, payload: bytes, properties: Any) -> int:
        return int(self.client.publish(topic, payload, qos=1, properties=properties).mid)


def _lock(db_path: Path) -> IO[bytes]:
    """One publisher per ledger: a second would interleave seqs."""
    path = db_path.with_name(db_path.name + ".sync.lock")
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


def _wake(client: mqtt.Client) -> None:
    """Break the network thread out of client.loop()'s select() now: a message is ready.

    paho wakes its own loop this way when another thread publishes (one byte on its
    socket pair, which the loop reads and discards); we publish from the network thread
    only, so we ring the same bell. Without it a message waits up to LOOP_WAIT_S.
    """
    sock = getattr(client, "_sockpairW", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.send(b"0")
