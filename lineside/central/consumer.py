"""`lineside central run`: many gateways' P/tx into PostgreSQL exactly once (docs/central.md).

Three threads:

- the network thread (run()) owns the paho client (MQTT 5, manual_ack) and its loop: it
  subscribes to `$share/GROUP/PREFIX/+/+/tx`, `.../status` and `.../reply/replay`, parses
  what arrives (writer.classify) and queues it for the writer, acknowledges to the broker
  what the writer has committed (in the order it arrived, never a message of an earlier
  connection), and publishes replay requests. It does no database work.
- the writer (writer.py) lands what arrived in PostgreSQL, a batch per transaction, and
  only then hands its acknowledgements back.
- the scanner (scanner.py) decides gaps from the database and asks gateways for replays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
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
from lineside.central.scanner import Scanner
from lineside.central.schema import migrate
from lineside.central.writer import Inbox, Received, Writer, backoff, classify, first_line

log = logging.getLogger("lineside.central")

LOOP_WAIT_S = 0.02  # an acknowledgement waits at most this long for the network thread
CONNACK_TIMEOUT_S = 15.0
# The user property a gateway sets on a replayed message (agent/sync/replay.py).
REPLAY_PROPERTY = "lineside-replay"


class Central:
    def __init__(self, loaded: LoadedCentral, metrics: CentralMetrics | None = None) -> None:
        self.config = loaded.config
        self.mqtt = loaded.config.mqtt
        self.settings: ClientSettings = settings_for(loaded, self.mqtt, self.mqtt.client_id)
        self.metrics = metrics or CentralMetrics()
        self.inbox = Inbox()
        self.metrics.lag.set_function(lambda: self.inbox.lag(time.monotonic()))
        self.stop = threading.Event()
        self.connected = False
        self._acks: deque[tuple[int, int, int]] = deque()
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._generation = 0
        self._down_at = time.monotonic()  # when the broker link last went
        self._link: dict[str, Any] = {}
        self.writer = Writer(self.inbox, self.metrics, self._connect_db, self._acks)
        self.contract = Contract()
        self.scanner = Scanner(self.config, self.mqtt.client_id, self.metrics, self.publish)

    # -- the whole process ----------------------------------------------------------------
    def run(self) -> None:
        """Migrate, start the writer and the scanner, and run the network loop until stop."""
        self._migrate()
        threads = [
            threading.Thread(target=self.writer.run, args=(self.stop,), name="central-writer",
                             daemon=True),
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
        broker = self.connected or now - self._down_at < limit
        database = self.writer.database_ok or now - self.writer.changed_at < limit
        body = {
            "broker_connected": self.connected,
            "database_ok": self.writer.database_ok,
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
                log.error("cannot reach PostgreSQL to migrate (%s); retrying", first_line(exc))
                self.stop.wait(backoff(failures))

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
                self.stop.wait(backoff(failures))
                continue
            failures = 0
            self._session(client)
            if not self.stop.is_set():
                self.stop.wait(backoff(1))

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
            self._down_at = time.monotonic()
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
        # Parsed here, on arrival: the writer's thread waits for PostgreSQL meanwhile.
        incoming = classify(
            message.topic, bytes(message.payload), replay, self.mqtt.topic_prefix, self.contract
        )
        self.inbox.put(Received(generation, message.mid, message.qos, incoming, time.monotonic()))
