"""The Sparkplug B 3.0 edge node: its own MQTT connection and thread, `lineside-sparkplug`.

The thread owns a fresh paho client per connection and runs its network loop by hand, so
paho's callbacks and every publish happen on it, in order: seq needs no lock. It also owns
a ledger connection of its own, to store bdSeq and read figures. It learns what the agent
knows only through the LiveSource the Agent passes in.

A session (docs/sparkplug.md): bdSeq stored, CONNECT with NDEATH(bdSeq) as the will (QoS
1, not retained, clean session); subscribe NCMD, DCMD (and the primary host's STATE); wait
for the primary host if one is configured; NBIRTH (seq 0, bdSeq, Node Control/Rebirth) and
a DBIRTH per work center; then NDATA/DDATA with what changed, at most once per interval.
A Rebirth command repeats the births with the same bdSeq. Stopping publishes NDEATH first.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from lineside import __version__
from lineside.agent.config import LoadedConfig
from lineside.agent.ledger import live as ledger_live
from lineside.agent.ledger.store import connect
from lineside.agent.liveness import Loop
from lineside.agent.sparkplug import codec
from lineside.agent.sparkplug.codec import DataType, Metric, Value
from lineside.agent.sparkplug.host import PrimaryHost, Seq, Topics
from lineside.agent.sparkplug.live import LedgerReader, LedgerState, LiveSource, LiveState
from lineside.agent.sparkplug.metrics import (
    BDSEQ,
    REBIRTH,
    LineWatch,
    MetricDef,
    changes,
    device_values,
    layout,
    node_values,
)
from lineside.agent.sync.client import (
    ClientSettings,
    close_client,
    explain,
    new_client,
    settings_from,
    sparkplug_broker,
    start_connect,
)
from lineside.agent.sync.connect import await_connack, link_backoff, log_retry, reconnecting
from lineside.clock import Clock, utc_now

log = logging.getLogger("lineside.sparkplug")
PAHO_LOGGER = "lineside.sparkplug.paho"
LOOP_WAIT_S = 0.25
DEATH_ACK_S = 1.0


def client_settings(loaded: LoadedConfig) -> ClientSettings:
    """The node's broker: its own host if given, else the mqtt: broker; files read now."""
    spb = loaded.config.sparkplug
    assert spb is not None
    client_id = f"{loaded.config.gateway.id}-sparkplug"
    key = "mqtt" if spb.host is None else "sparkplug"
    return settings_from(loaded, client_id, section=sparkplug_broker(loaded), key=key)


class SparkplugNode:
    """One edge node per gateway; start() once, stop() once (a reload makes a new one)."""

    def __init__(
        self,
        loaded: LoadedConfig,
        db_path: Path,
        live: LiveSource,
        *,
        clock: Clock = utc_now,
        version: str = __version__,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
    ) -> None:
        cfg = loaded.config
        assert cfg.sparkplug is not None
        self.cfg = cfg
        self.spb = cfg.sparkplug
        self.db_path = db_path
        self.live = live
        self.clock = clock
        self.version = version
        self.topics = Topics(self.spb.group_id, cfg.gateway.id)
        self.settings = client_settings(loaded)  # raises SyncSetupError
        self.layout = layout(cfg)
        self.interval_s = float(self.spb.interval_s)
        self.backoff = link_backoff(reconnect_min_s, reconnect_max_s)
        self.born = False  # in a Sparkplug session: NBIRTH sent on this connection
        self.bdseq: int | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lineside-sparkplug", daemon=True)
        self._conn: sqlite3.Connection | None = None
        self._unused_bdseq: int | None = None
        self._seq = Seq()
        self._host = PrimaryHost()
        self._lines = LineWatch(float(self.spb.stopped_after_s))
        self._figures = LedgerReader(self.spb.stock)
        self._reported: dict[str | None, dict[str, Value]] = {}
        self._connack: Any = None
        self._death_mid: int | None = None
        self._death_acked = False
        self._rebirth = False
        self._host_left = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def loops(self) -> list[Loop]:
        """The node's thread, for the agent's health and watchdog."""
        return [Loop(self._thread, self._stop.is_set)]

    def stop(self, timeout_s: float = 2.0) -> None:
        """NDEATH, DISCONNECT, and the thread ends; waits at most about timeout_s."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("sparkplug: the node did not stop within %.1f s", timeout_s)

    def _run(self) -> None:
        try:
            self._conn = connect(self.db_path)
            for client, _ in reconnecting(self._stop, self._open, self.backoff):
                try:
                    self._session(client)
                except Exception:  # a bug must not end Sparkplug for good: a new session
                    log.exception("sparkplug: internal error; starting a new session")
                if not self._stop.is_set():
                    self._stop.wait(self.backoff.delay(1))
        except Exception:
            log.exception("sparkplug: the node failed; Sparkplug publishing stopped")
        finally:
            self.born = False
            if self._conn is not None:
                self._conn.close()

    # -- connecting ------------------------------------------------------------------------
    def _claim_bdseq(self) -> int:
        """The bdSeq of this CONNECT, stored before it is sent (reused if none was sent)."""
        if self._unused_bdseq is not None:
            return self._unused_bdseq
        assert self._conn is not None
        try:
            return ledger_live.next_bdseq(self._conn)
        except sqlite3.Error as exc:
            value = 0 if self.bdseq is None else (self.bdseq + 1) % 256
            log.error("sparkplug: bdSeq %d could not be stored (%s): a restart may reuse it",
                      value, exc)
            return value

    def _open(self) -> mqtt.Client | None:
        bdseq = self._claim_bdseq()
        self._connack = None
        will = self._death_payload(bdseq)
        client = new_client(
            self.settings,
            persistent=False,
            will=(self.topics.ndeath, will),
            will_retain=False,
            logger=logging.getLogger(PAHO_LOGGER),
        )
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        try:
            start_connect(client, self.settings, persistent=False)
        except (OSError, ValueError) as exc:
            self._unused_bdseq = bdseq  # no CONNECT went out with it
            self._failed(explain(exc, self.settings))
            return None
        self._unused_bdseq = None
        self.bdseq = bdseq
        failure = await_connack(client, self.settings, lambda: self._connack, self._stop)
        if failure is not None:
            self._failed(failure)
            return None
        return client

    def _failed(self, message: str) -> None:
        self.last_error = log_retry(log, message, self.last_error, prefix="sparkplug: ")

    # -- a session -------------------------------------------------------------------------
    def _session(self, client: mqtt.Client) -> None:
        self.last_error = None
        self._rebirth = self._host_left = False
        self._host.new_session()
        topics = [(self.topics.ncmd, 1), (self.topics.dcmd_filter, 1)]
        if self.spb.primary_host_id is not None:
            topics.append((Topics.state(self.spb.primary_host_id), 1))
        client.subscribe(topics)  # before NBIRTH: the broker takes them in order
        log.info("sparkplug: connected to %s as edge node %s/%s (bdSeq %d)",
                 self.settings.where, self.topics.group, self.topics.node, self.bdseq)
        next_report = 0.0
        try:
            while not self._stop.is_set():
                wait = max(0.0, min(LOOP_WAIT_S, next_report - time.monotonic()))
                if client.loop(wait if self.born else LOOP_WAIT_S) != mqtt.MQTT_ERR_SUCCESS:
                    log.warning("sparkplug: lost the connection to %s", self.settings.where)
                    return
                if self._host_left:
                    log.warning("sparkplug: the primary host %s is offline: NDEATH and"
                                " connecting again", self.spb.primary_host_id)
                    self._die(client)
                    return
                if not self.born and (self.spb.primary_host_id is None or self._host.online):
                    self._birth(client)
                    next_report = time.monotonic() + self.interval_s
                elif self.born and self._rebirth:
                    log.info("sparkplug: rebirth requested")
                    self._birth(client)
                    next_report = time.monotonic() + self.interval_s
                elif self.born and time.monotonic() >= next_report:
                    self._report(client)
                    next_report = time.monotonic() + self.interval_s
            self._die(client)
        finally:
            self.born = False
            close_client(client)

    def _birth(self, client: mqtt.Client) -> None:
        """NBIRTH (seq 0, the connection's bdSeq) and every DBIRTH: current values of all."""
        assert self.bdseq is not None
        self._rebirth = False
        ts, now = self._now_ms(), self.clock()
        live, ledger = self.live(), self._ledger_state(now)
        values = node_values(self.cfg, live, ledger, now, self.version)
        head = [Metric(BDSEQ, DataType.Int64, self.bdseq, ts),
                Metric(REBIRTH, DataType.Boolean, False, ts)]
        body = codec.encode(head + _metrics(self.layout.node, values, ts), ts, self._seq.birth(),
                            birth=True)
        self._publish(client, self.topics.nbirth, body)
        self._reported = {None: values}
        for code, defs in self.layout.devices.items():
            values = self._device_values(code, live, ledger)
            body = codec.encode(_metrics(defs, values, ts), ts, self._seq.next(), birth=True)
            self._publish(client, self.topics.dbirth(code), body)
            self._reported[code] = values
        self.born = True

    def _report(self, client: mqtt.Client) -> None:
        """Report by exception: NDATA and DDATA with the metrics that changed, if any."""
        ts, now = self._now_ms(), self.clock()
        live, ledger = self.live(), self._ledger_state(now)
        values = node_values(self.cfg, live, ledger, now, self.version)
        self._report_one(client, None, self.layout.node, values, ts)
        for code, defs in self.layout.devices.items():
            self._report_one(client, code, defs, self._device_values(code, live, ledger), ts)

    def _report_one(self, client: mqtt.Client, code: str | None, defs: tuple[MetricDef, ...],
                    values: dict[str, Value], ts: int) -> None:
        changed = changes(self._reported.get(code, {}), values)
        if not changed:
            return
        metrics = _metrics([d for d in defs if d.name in changed], changed, ts)
        topic = self.topics.ndata if code is None else self.topics.ddata(code)
        self._publish(client, topic, codec.encode(metrics, ts, self._seq.next(), birth=False))
        self._reported[code] = values

    def _device_values(self, code: str, live: LiveState, ledger: LedgerState) -> dict[str, Value]:
        wc = self.cfg.work_centers[code]
        return device_values(code, wc, live, ledger, self._lines, time.monotonic())

    def _publish(self, client: mqtt.Client, topic: str, payload: bytes) -> None:
        client.publish(topic, payload, qos=0, retain=False)

    def _die(self, client: mqtt.Client) -> None:
        """An intentional disconnect: NDEATH first (the broker drops the will on DISCONNECT)."""
        assert self.bdseq is not None
        self._death_acked = False
        info = client.publish(self.topics.ndeath, self._death_payload(self.bdseq), qos=1)
        self._death_mid = info.mid
        deadline = time.monotonic() + DEATH_ACK_S
        while not self._death_acked and time.monotonic() < deadline:
            if client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
        client.disconnect()
        self.born = False
        log.info("sparkplug: NDEATH published, disconnected from %s", self.settings.where)

    def _death_payload(self, bdseq: int) -> bytes:
        ts = self._now_ms()
        return codec.encode([Metric(BDSEQ, DataType.Int64, bdseq, ts)], ts, None, birth=True)

    def _now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def _ledger_state(self, now: datetime) -> LedgerState:
        assert self._conn is not None
        return self._figures.read(self._conn, now)

    # -- paho callbacks (this thread, inside client.loop) -------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        self._connack = reason

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        if mid == self._death_mid:  # QoS 0 messages are "published" too: only this counts
            self._death_acked = True

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic, payload = message.topic, bytes(message.payload)
        if self.spb.primary_host_id is not None and topic == Topics.state(
            self.spb.primary_host_id
        ):
            self._on_state(payload)
        elif topic == self.topics.ncmd:
            self._on_ncmd(payload)
        else:
            log.warning("sparkplug: %s refused: lineside is read-only over Sparkplug", topic)

    def _on_state(self, payload: bytes) -> None:
        try:
            change = self._host.update(payload)
        except ValueError as exc:
            log.warning("sparkplug: STATE of %s ignored: %s", self.spb.primary_host_id, exc)
            return
        if change == "online" and not self.born:
            log.info("sparkplug: the primary host %s is online", self.spb.primary_host_id)
        elif change == "offline" and self.born:
            self._host_left = True

    def _on_ncmd(self, payload: bytes) -> None:
        try:
            metrics = codec.decode(payload)
        except codec.PayloadError as exc:
            log.warning("sparkplug: NCMD refused: %s", exc)
            return
        for metric in metrics:
            if metric.name == REBIRTH and metric.value is True:
                self._rebirth = True
            elif metric.name != REBIRTH:
                log.warning("sparkplug: NCMD metric %s refused: lineside is read-only over"
                            " Sparkplug (only Node Control/Rebirth is taken)",
                            metric.name or f"alias {metric.alias}")


def _metrics(defs: Any, values: dict[str, Value], ts: int) -> list[Metric]:
    return [Metric(d.name, d.datatype, values[d.name], ts, d.alias) for d in defs]
