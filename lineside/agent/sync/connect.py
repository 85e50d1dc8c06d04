"""The one way our MQTT links connect and reconnect: the sync link and the Sparkplug node.

Both run paho's loop by hand on their own thread, with a fresh client per connection (see
client.py for the client, its TLS and credentials). What they share is here: waiting for
the CONNACK, the retry log, and the loop of connections with a backoff between failures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt

from lineside.agent.sync.client import ClientSettings, close_client, explain, explain_refusal
from lineside.drivers.base import Backoff, StopFlag

CONNACK_TIMEOUT_S = 15.0
CONNACK_POLL_S = 0.05  # one loop call while waiting for the CONNACK
RECONNECT_JITTER = 0.2  # many gateways that lost the same broker must not return in step


def link_backoff(min_s: float, max_s: float) -> Backoff:
    """min_s doubling per failure up to max_s (never below min_s), jittered."""
    return Backoff(min_s, max(max_s, min_s), jitter=RECONNECT_JITTER)


def await_connack(
    client: mqtt.Client,
    settings: ClientSettings,
    connack: Callable[[], Any],
    stop: StopFlag,
    cause: Callable[[], str | None] = lambda: None,
) -> str | None:
    """Run the loop until the broker answers the CONNECT already sent.

    None when it accepted; else why not, explained for the log, with the client closed.
    connack() is what the on_connect callback stored (None before); cause() what paho
    said of a closed connection, if anything.
    """
    deadline = time.monotonic() + CONNACK_TIMEOUT_S
    while connack() is None:
        rc = client.loop(CONNACK_POLL_S)
        if connack() is not None:
            break  # a refusal arrives together with the close: report the refusal
        if rc != mqtt.MQTT_ERR_SUCCESS or time.monotonic() > deadline or stop.is_set():
            close_client(client)
            return explain(cause() or "the broker closed the connection", settings)
    if connack().is_failure:
        close_client(client)
        return explain_refusal(connack(), settings)
    return None


def log_retry(logger: logging.Logger, message: str, last: str | None, prefix: str = "") -> str:
    """A failure to connect: the first (and each new kind) loudly, repeats quietly.

    Returns the message, the link's new last error.
    """
    (logger.debug if message == last else logger.error)("%s%s; retrying", prefix, message)
    return message


def reconnecting(
    stop: StopFlag, open_link: Callable[[], mqtt.Client | None], backoff: Backoff
) -> Iterator[tuple[mqtt.Client, int]]:
    """Connections one after the other until stopped, each with the failures before it.

    open_link() gives a connected client, or None after a failure: the n-th failure in a
    row waits backoff.delay(n) before the next try. What to wait after a session ends is
    the caller's to decide, before it asks for the next connection.
    """
    failures = 0
    while not stop.is_set():
        client = open_link()
        if client is None:
            failures += 1
            stop.wait(backoff.delay(failures))
            continue
        yield client, failures
        failures = 0
