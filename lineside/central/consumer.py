"""`lineside central run`: many gateways' P/tx into PostgreSQL exactly once (docs/central.md).

Three threads:

- the network thread (run()) owns the paho client (MQTT 5, manual_ack) and its loop: it
  subscribes to `$share/GROUP/PREFIX/+/+/tx`, `.../status` and `.../reply/replay`, queues
  what arrives for the writer, acknowledges to the broker what the writer has committed (in
  the order it arrived, never a message of an earlier connection), and publishes replay
  requests. It does no database work.
- the writer takes what arrived in batches, lands each batch in one PostgreSQL transaction
  (store.write) and only then hands its acknowledgements back. A batch the database
  cannot take is tried again (nothing is acknowledged meanwhile, so the broker keeps it);
  a message the database refuses for its content is kept in lineside_rejected, alone.
- the scanner (scanner.py) decides gaps from the database and asks gateways for replays.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from lineside.agent.sync.client import (
    ClientSettings,
    explain,
    explain_refusal,
    new_client,
    settings_for,
)
from lineside.agent.sync.contract import Contract
from lineside.central.config import LoadedCentral
from lineside.central.metrics import CentralMetrics
from lineside.central.rows import Rejected, gateway_of, parse_tx
from lineside.central.scanner import Scanner
from lineside.central.schema import migrate
from lineside.central.store import Incoming, Outcome, Reply, Status, write

log = logging.getLogger("lineside.central")

LOOP_WAIT_S = 0.02  # an acknowledgement waits at most this long for the network thread
CONNACK_TIMEOUT_S = 15.0
BATCH_MESSAGES = 200  # messages landed per database transaction, at most
REPLAY_PROPERTY = "lineside-replay"  # user property the gateway sets on a replayed message


@dataclass(frozen=True, slots=True)
class Received:
    generation: int  # the connection it came on: acknowledged on that one only
    mid: int
    qos: int
    topic: str
    payload: bytes
    replay: bool
    at: float  # time.monotonic() on arrival


class Inbox:
    """What the network thread received and the writer has not yet committed."""

    def __init__(self) -> None:
        self._items: deque[Received] = deque()
        self._ready = threading.Condition()
        self.oldest_busy: float | None = None  # arrival of the batch being written

    def put(self, item: Received) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def take(self, limit: int, wait_s: float) -> list[Received]:
        with self._ready:
            if not self._items:
                self._ready.wait(wait_s)
            out = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
        self.oldest_busy = out[0].at if out else None
        return out

    def lag(self, now: float) -> float:
        oldest = self.oldest_busy
        with self._ready:
            if oldest is None and self._items:
                oldest = self._items[0].at
        return 0.0 if oldest is None else max(0.0, now - oldest)


class Central:
    def __init__(self, loaded: LoadedCentral, metrics: CentralMetrics | None = None) -> None:
        self.config = loaded.config
        self.mqtt = loaded.config.mqtt
        self.settings: ClientSettings = settings_for(self.mqtt, loaded.resolve, self.mqtt.client_id)
        self.metrics = metrics or CentralMetrics()
        self.inbox = Inbox()
        self.metrics.lag.set_function(lambda: self.inbox.lag(time.monotonic()))
        self.stop = threading.Event()
        self.connected = False
        self.database_ok = False
        self._acks: deque[tuple[int, int, int]] = deque()
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._generation = 0
        self._up_at = {"broker": time.monotonic(), "database": time.monotonic()}
        self._link: dict[str, Any] = {}
        self.contract = Contract()
        self.scanner = Scanner(self.config, self.mqtt.client_id, self.metrics, self.publish)

    # -- the whole process ----------------------------------------------------------------
    def run(self) -> None:
        """Migrate, start the writer and the scanner, and run the network loop until stop."""
        self._migrate()
        threads = [
            threading.Thread(target=self._write_loop, name="central-writer", daemon=True),
            threading.Thread(target=self.scanner.run, args=(self.stop,), name="central-scan",
                             daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            self._network_loop()
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(10)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """For /healthz: broker and database, each failing only once down for longer than
        health.broker_down_after_s (a restart of either is not an outage)."""
        limit = self.config.health.broker_down_after_s if self.config.health else 120
        now = time.monotonic()
        broker = self.connected or now - self._up_at["broker"] < limit
        database = self.database_ok or now - self._up_at["database"] < limit
        body = {
            "broker_connected": self.connected,
            "database_ok": self.database_ok,
            "lag_s": round(self.inbox.lag(now), 3),
        }
        return broker and database, body

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue a QoS 1 message; the network thread sends it while connected."""
        self._outgoing.append((topic, payload))

    def _migrate(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                with self._connect_db() as conn:
                    version = migrate(conn)
                log.info("PostgreSQL schema at version %d", version)
                return
            except psycopg.OperationalError as exc:
                failures += 1
                log.error("cannot reach PostgreSQL to migrate (%s); retrying", _first_line(exc))
                self.stop.wait(_backoff(failures))

    def _connect_db(self) -> psycopg.Connection[Any]:
        pg = self.config.postgres
        return psycopg.connect(
            pg.dsn, connect_timeout=pg.connect_timeout_s, application_name="lineside central"
        )

    # -- network thread ----------------------------------------------------------------------
    def _network_loop(self) -> None:
        failures = 0
        while not self.stop.is_set():
            client = self._open()
            if client is None:
                failures += 1
                self.stop.wait(_backoff(failures))
                continue
            failures = 0
            self._session(client)
            if not self.stop.is_set():
                self.stop.wait(_backoff(1))

    def _open(self) -> mqtt.Client | None:
        self._generation += 1
        self._link = {}
        client = new_client(self.settings, persistent=self.mqtt.session_expiry_s > 0)
        client.manual_ack_set(True)  # PUBACK only once the database has committed
        client.on_connect = lambda c, u, flags, reason, p: self._link.update(
            connack=reason, session=bool(getattr(flags, "session_present", False))
        )
        client.on_disconnect = lambda c, u, f, reason, p: self._link.setdefault("gone", reason)
        client.on_subscribe = lambda c, u, mid, codes, p: self._subscribed(codes)
        generation = self._generation
        client.on_message = lambda c, u, message: self._on_message(generation, message)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.mqtt.session_expiry_s
        props.ReceiveMaximum = self.mqtt.receive_max
        try:
            client.connect(
                self.settings.host,
                self.settings.port,
                self.settings.keepalive_s,
                clean_start=self.mqtt.session_expiry_s == 0,
                properties=props,
            )
        except (OSError, ValueError) as exc:
            log.error("%s; retrying", explain(exc, self.settings))
            return None
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        while "connack" not in self._link:
            if client.loop(LOOP_WAIT_S) != mqtt.MQTT_ERR_SUCCESS or time.monotonic() > deadline:
                if "connack" in self._link:
                    break
                closed = explain("the broker closed the connection", self.settings)
                log.error("%s; retrying", closed)
                return None
        if self._link["connack"].is_failure:
            log.error("%s; retrying", explain_refusal(self._link["connack"], self.settings))
            return None
        return client

    def _session(self, client: mqtt.Client) -> None:
        prefix, group = self.mqtt.topic_prefix, self.config.group
        options = SubscribeOptions(qos=1)
        client.subscribe(
            [(f"$share/{group}/{prefix}/+/+/{leaf}", options) for leaf in
             ("tx", "status", "reply/replay")]
        )
        resumed = self._link.get("session", False)
        log.info(
            "connected to %s as %s (session %s), group %s",
            self.settings.where, self.settings.client_id, "resumed" if resumed else "new", group,
        )
        if not resumed:
            self.scanner.probe_all()  # what was sent while nobody of ours was subscribed
        self.connected = True
        self.metrics.broker_up.set(1)
        try:
            while not self.stop.is_set():
                if client.loop(LOOP_WAIT_S) != mqtt.MQTT_ERR_SUCCESS:
                    self._lost()
                    return
                self._send_acks(client)
                while self._outgoing:
                    topic, payload = self._outgoing.popleft()
                    client.publish(topic, payload, qos=1)
            self._send_acks(client)
            client.disconnect()
        finally:
            self.connected = False
            self._up_at["broker"] = time.monotonic()
            self.metrics.broker_up.set(0)
            self._generation += 1  # acknowledgements still to come belong to a closed link

    def _subscribed(self, codes: Any) -> None:
        refused = [str(c) for c in codes if getattr(c, "is_failure", False)]
        if refused:
            log.error(
                "the broker refused our subscriptions (%s): nothing arrives; check the"
                " broker's ACL and that it supports shared subscriptions", ", ".join(refused),
            )

    def _lost(self) -> None:
        reason = self._link.get("gone")
        text = str(reason) if reason is not None else "closed"
        if "session taken over" in text.lower():
            log.error(
                "the broker gave our session to another client with id %s: every process"
                " needs its own mqtt.client_id", self.settings.client_id,
            )
        else:
            log.warning("lost the connection to %s: %s", self.settings.where, text)

    def _send_acks(self, client: mqtt.Client) -> None:
        while self._acks:
            generation, mid, qos = self._acks.popleft()
            if generation == self._generation and qos > 0:
                client.ack(mid, qos)

    def _on_message(self, generation: int, message: mqtt.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        replay = any(k == REPLAY_PROPERTY for k, _ in getattr(props, "UserProperty", None) or [])
        self.inbox.put(
            Received(generation, message.mid, message.qos, message.topic,
                     bytes(message.payload), replay, time.monotonic())
        )

    # -- writer thread ------------------------------------------------------------------------
    def _write_loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        failures = 0
        while not self.stop.is_set():
            batch = self.inbox.take(BATCH_MESSAGES, 0.2)
            if not batch:
                continue
            incoming = [classify(r, self.mqtt.topic_prefix, self.contract) for r in batch]
            while not self.stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = self._connect_db()
                    self._land(conn, incoming)
                    self.database_ok = True
                    self.metrics.database_up.set(1)
                    failures = 0
                    break
                except Exception as exc:  # the link, or a bug: nothing acknowledged, retried
                    failures += 1
                    if not isinstance(exc, psycopg.OperationalError):
                        log.exception("writing a batch failed; retrying it")
                    self._database_down(exc, failures)
                    _close_db(conn)
                    conn = None
                    self.stop.wait(_backoff(failures))
            else:
                break  # stopping: the broker keeps what was not acknowledged
            # Acknowledged in arrival order, once committed.
            self._acks.extend((r.generation, r.mid, r.qos) for r in batch)
            self.inbox.oldest_busy = None
        _close_db(conn)

    def _land(self, conn: psycopg.Connection[Any], incoming: list[Incoming]) -> None:
        started = time.monotonic()
        try:
            outcome = write(conn, incoming)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            # Not the link: something in the content. Land them one by one, so that one
            # message the database refuses is that message's rejection alone.
            conn.rollback()
            self.metrics.write_errors.inc()
            if len(incoming) == 1:
                log.error("PostgreSQL refused %s: %s", incoming[0].topic, _first_line(exc))
                outcome = write(conn, [_refused(incoming[0], f"refused by PostgreSQL: {exc}")])
            else:
                for item in incoming:
                    self._land(conn, [item])
                return
        self.metrics.write_seconds.observe(time.monotonic() - started)
        self._count(outcome, incoming)

    def _count(self, out: Outcome, incoming: list[Incoming]) -> None:
        m = self.metrics
        m.commits.inc()
        m.messages.labels("tx", "landed").inc(out.landed)
        m.messages.labels("tx", "repeat").inc(out.repeats - len(out.different))
        m.messages.labels("tx", "repeat_different").inc(len(out.different))
        m.messages.labels("any", "rejected").inc(out.rejected)
        m.messages.labels("status", "landed").inc(
            sum(1 for i in incoming if isinstance(i.event, Status)))
        m.messages.labels("reply", "landed").inc(
            sum(1 for i in incoming if isinstance(i.event, Reply)))
        m.transactions.inc(out.transactions)
        m.duplicates.inc(out.duplicates)
        m.replayed.inc(out.replayed)
        m.not_held.inc(out.not_held)
        for site, gateway, seq in out.different:
            log.error(
                "%s/%s seq %d came again with DIFFERENT bytes (a bug, or its ledger was"
                " replaced): its transactions were landed by id", site, gateway, seq,
            )
        if out.not_held:
            log.error("%d seqs are no longer held by their gateway: lost", out.not_held)
        for item in incoming:
            if item.message is None and item.event is None:
                log.warning("rejected a message on %s: %s", item.topic, item.reason)

    def _database_down(self, exc: BaseException, failures: int) -> None:
        if self.database_ok:
            self._up_at["database"] = time.monotonic()
        self.metrics.database_up.set(0)
        self.metrics.write_errors.inc()
        if self.database_ok or failures == 1:
            log.error(
                "PostgreSQL: %s; nothing is acknowledged until it is written, retrying",
                _first_line(exc),
            )
        self.database_ok = False


def classify(received: Received, prefix: str, contract: Contract) -> Incoming:
    """What a message is for the database: pure, no I/O."""
    where = gateway_of(received.topic, prefix)
    topic, payload = received.topic, received.payload
    if where is None:
        return Incoming(topic, payload, reason="not a lineside topic")
    site, gateway, kind = where
    try:
        if kind == "tx":
            return Incoming(topic, payload, parse_tx(site, gateway, payload),
                            replay=received.replay)
        data = json.loads(payload)
    except Rejected as exc:
        return Incoming(topic, payload, reason=str(exc))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Incoming(topic, payload, reason=f"not JSON: {exc}")
    if not isinstance(data, dict):
        return Incoming(topic, payload, reason="not a JSON object")
    if kind == "status" and isinstance(data.get("online"), bool):
        version = data.get("version")
        return Incoming(topic, payload, event=Status(
            site, gateway, data["online"], version if isinstance(version, str) else None))
    if kind == "reply/replay":
        errors = contract.errors("reply.replay", data)
        if not errors:
            return Incoming(topic, payload, event=Reply(site, gateway, data))
        return Incoming(topic, payload, reason="; ".join(errors))
    return Incoming(topic, payload, reason=f"not a {kind} payload")


def _refused(item: Incoming, reason: str) -> Incoming:
    return Incoming(item.topic, item.payload, reason=reason)


def _close_db(conn: psycopg.Connection[Any] | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _backoff(failures: int, low: float = 0.5, high: float = 30.0) -> float:
    return float(min(high, low * 2 ** min(failures - 1, 16)) * random.uniform(0.8, 1.2))

