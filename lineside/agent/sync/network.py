"""The lineside-sync thread: the paho client, its callbacks, connecting, closing, waking.

It runs paho's network loop by hand (client.loop()), publishing between loop calls, so
paho's callbacks run on this thread, in order, never concurrently with our publish()
calls. A fresh client is made for every connection, so paho never re-sends stale messages
behind the publisher's back. It does no SQLite work at all: a slow SD card never stalls it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from lineside.agent.sync import payloads
from lineside.agent.sync.client import (
    PAHO_LOGGER,
    ClientSettings,
    explain,
    new_client,
    start_connect,
)
from lineside.agent.sync.client import close_client as _close
from lineside.agent.sync.commands_in import Outgoing
from lineside.agent.sync.connect import await_connack, log_retry, reconnecting
from lineside.agent.sync.inbox import Answer
from lineside.agent.sync.shared import Shared
from lineside.drivers.base import Backoff

log = logging.getLogger("lineside.sync")

LOOP_WAIT_S = 0.05  # one network loop call waits at most this: latency of replies
STARVING_WAIT_S = 0.001
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
class Link:
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


class NetworkLoop:
    """Connects, publishes from the window, takes commands, reconnects after a backoff."""

    def __init__(self, shared: Shared, settings: ClientSettings, backoff: Backoff) -> None:
        self.shared = shared
        self.settings = settings
        self.backoff = backoff
        self.link = Link()
        self._other_mids: set[int] = set()

    def run(self) -> None:
        s = self.shared
        refused = 0
        try:
            for client, failures in reconnecting(s.stop, self._open, self.backoff):
                if failures:
                    log.info(
                        "connected to %s after %d failed attempts", self.settings.where, failures
                    )
                ended_by_refusal = self._session(client)
                if not s.stop.is_set():
                    s.reconnects += 1
                    refused = refused + 1 if ended_by_refusal else 0
                    s.stop.wait(self.backoff.delay(1 + refused))
        except Exception:
            log.exception("the sync network thread failed; publishing stopped")
            s.last_error = "sync network thread failed (see the log)"
        finally:
            s.connected = False

    def _open(self) -> mqtt.Client | None:
        """Connect and wait for the CONNACK; None (with last_error set and logged) on failure."""
        s = self.shared
        self.link = link = Link()
        client = new_client(
            self.settings,
            persistent=True,
            will=(s.topics.status, payloads.status_will(s.version)),
            max_inflight=s.mqtt.inflight_max + PAHO_INFLIGHT_EXTRA,
            logger=link.logger(),
            manual_ack=True,
        )
        self._wire(client)
        try:
            start_connect(client, self.settings, persistent=True)
        except (OSError, ValueError) as exc:
            s.last_error = log_retry(log, explain(exc, self.settings), s.last_error)
            return None
        failure = await_connack(
            client, self.settings, lambda: link.connack, s.stop, lambda: link.last_paho_error
        )
        if failure is not None:
            s.last_error = log_retry(log, failure, s.last_error)
            return None
        return client

    def _wire(self, client: mqtt.Client) -> None:
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    def _session(self, client: mqtt.Client) -> bool:
        """Publish until stopped or the link is lost; True when it ended because the broker
        refused a message (it is offered again on the next connection, after a backoff)."""
        s = self.shared
        s.connected = True
        s.last_error = None
        log.info(
            "connected to %s as %s (session %s)",
            self.settings.where,
            self.settings.client_id,
            "resumed" if self.link.session_present else "new",
        )
        transport = _Transport(client)
        s.pipeline.on_ready = lambda: _wake(client)
        self._other_mids.clear()
        s.window.reset()
        s.inbox.connected(client)
        online = payloads.status_online(s.version, s.clock())
        self._publish(transport, Outgoing(s.topics.status, online, retain=True))
        # Without a ledger (a bare publisher) only replays can be served.
        commands = s.topics.cmd_filter if s.ledger is not None else s.topics.cmd("replay")
        client.subscribe(commands, qos=1)
        s.stock.connected()
        try:
            while not s.stop.is_set():
                if client.loop(self._loop_wait()) != mqtt.MQTT_ERR_SUCCESS:
                    log.warning(
                        "lost the connection to %s: %s",
                        self.settings.where,
                        self.link.last_paho_error or "closed",
                    )
                    return False
                if s.window.refused:
                    s.last_error = "the broker refused a message (see the log)"
                    client.disconnect()
                    return True
                self._drain_outgoing(transport)
                s.window.pump(transport)
                s.replays.pump(transport.publish_replay)  # beside live traffic, after it
            self._shutdown(client, transport)
            return False
        finally:
            s.replays.lost()
            s.pipeline.on_ready = lambda: None
            s.inbox.disconnected()
            s.connected = s.subscribed = False
            _close(client)

    def _loop_wait(self) -> float:
        # While a backlog drains, the window must not sit empty for a whole LOOP_WAIT_S
        # waiting for the feeder: look again after a moment instead.
        s = self.shared
        if s.window.inflight < s.mqtt.inflight_max and s.pipeline.starving():
            return STARVING_WAIT_S
        return LOOP_WAIT_S

    def _shutdown(self, client: mqtt.Client, transport: _Transport) -> None:
        """Clean stop: replies out, offline status, in-flight messages acked, DISCONNECT."""
        s = self.shared
        self._drain_outgoing(transport)
        offline = payloads.status_offline(s.version, s.clock())
        self._publish(transport, Outgoing(s.topics.status, offline, retain=True))
        deadline = time.monotonic() + s.stop_timeout_s
        # Commands being applied get their acknowledgement too, if they finish in time;
        # the others the broker delivers again at the next start.
        while (
            s.window.inflight or self._other_mids or s.inbox.acks.waiting
        ) and time.monotonic() < deadline:
            if client.loop(LOOP_WAIT_S) != mqtt.MQTT_ERR_SUCCESS:
                break
            self._drain_outgoing(transport)
        if s.window.inflight:
            log.warning(
                "stopped with %d messages unacknowledged: they are sent again at the next start",
                s.window.inflight,
            )
        client.disconnect()
        log.info("disconnected from %s", self.settings.where)

    def _publish(self, transport: _Transport, out: Outgoing) -> int:
        mid = transport.publish(out.topic, out.payload, out.qos, out.retain)
        self._other_mids.add(mid)
        return mid

    def _drain_outgoing(self, transport: _Transport) -> None:
        outgoing = self.shared.outgoing
        if outgoing.empty():  # the usual case: no exception raised and caught
            return
        while True:
            try:
                out = outgoing.get_nowait()
            except queue.Empty:
                return
            if isinstance(out, Answer):
                self.shared.inbox.answered(out, lambda reply: self._publish(transport, reply))
            else:
                self._publish(transport, out)

    # -- paho callbacks (inside client.loop) -------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.link.connack = reason
        self.link.session_present = bool(getattr(flags, "session_present", False))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        # paho's own error line (e.g. the TLS alert) says more than "Unspecified error".
        if self.link.disconnect_reason is None and getattr(reason, "is_failure", False):
            self.link.disconnect_reason = str(reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        s = self.shared
        ok = not getattr(reason, "is_failure", False)
        window = s.window.on_ack(mid, ok, "" if ok else str(reason))
        if not window and not s.replays.on_ack(mid):
            self._other_mids.discard(mid)
            s.inbox.reply_acked(mid)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, properties: Any
    ) -> None:
        refused = [str(c) for c in codes if getattr(c, "is_failure", False)]
        self.shared.subscribed = not refused
        if refused:
            log.error(
                "the broker refused our subscription to %s (%s): commands will not"
                " arrive; check the broker's ACL",
                self.shared.topics.cmd_filter,
                ", ".join(refused),
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        s = self.shared
        if message.topic == s.topics.cmd("replay") and not message.retain:
            # A replay changes nothing in the ledger: nothing to wait for before the PUBACK.
            s.inbox.acks.received(message.mid, message.qos).finish()
            s.replays.request(bytes(message.payload))
            return
        s.inbox.on_message(message)


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
