"""Commands in on P/cmd/{name}: each acknowledged to the broker only once it is durable.

paho runs with manual_ack. The network thread receives a command and queues it for the
worker; the worker applies it (its ledger transaction, or its remembered refusal, commits)
and hands the answer back to the network thread, which publishes the reply and, once the
broker has taken the reply (its PUBACK), acknowledges the command. PUBACKs go out in the
order the PUBLISHes arrived, as MQTT requires (3.1.1 and 5.0, section 4.6). Whatever a
crash interrupts was never acknowledged, so the broker delivers it again after the
reconnect, and the ledger applies it once (its request_id is remembered with its
effects) and answers it again: every command delivered is applied once and answered.

Every delivery is finished, whatever becomes of its command (applied, refused, not
readable, the worker busy, a retained message ignored): one left unfinished would hold
back the acknowledgements of all that came after it.
"""

from __future__ import annotations

import logging
import queue
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from lineside.agent.sync import payloads
from lineside.agent.sync.commands_in import (
    CommandParser,
    LedgerProtocol,
    Outgoing,
    Parsed,
    handle,
    sniff_request_id,
)

log = logging.getLogger("lineside.sync.commands")

BUSY = "the gateway is busy: try again later"


class Delivery:
    """One PUBLISH received on a connection, to be acknowledged once its command is done."""

    __slots__ = ("acks", "done", "mid", "qos")

    def __init__(self, acks: InOrderAcks, mid: int, qos: int) -> None:
        self.acks = acks
        self.mid = mid
        self.qos = qos
        self.done = False

    def finish(self) -> None:
        """Network thread only: this delivery may be acknowledged (after those before it)."""
        self.done = True
        self.acks.flush()


class InOrderAcks:
    """The acknowledgements of one connection, sent in the order its messages arrived."""

    def __init__(self, ack: Callable[[int, int], Any]) -> None:
        self._ack = ack
        self._waiting: deque[Delivery] = deque()
        self._open = True

    def received(self, mid: int, qos: int) -> Delivery:
        delivery = Delivery(self, mid, qos)
        if qos > 0:  # QoS 0 is never acknowledged (nor delivered again)
            self._waiting.append(delivery)
        return delivery

    def flush(self) -> None:
        while self._open and self._waiting and self._waiting[0].done:
            head = self._waiting.popleft()
            self._ack(head.mid, head.qos)

    def close(self) -> None:
        """The connection is gone: its packet ids mean nothing on the next one, where the
        broker delivers again what was not acknowledged."""
        self._open = False
        self._waiting.clear()

    @property
    def waiting(self) -> int:
        return len(self._waiting)


@dataclass(frozen=True, slots=True)
class Answer:
    """A command done: its reply (None when nobody can be answered) and its delivery."""

    reply: Outgoing | None
    delivery: Delivery


Returned = Outgoing | Answer


class Inbox:
    """What happens to a command message, on the network thread and on the worker."""

    def __init__(
        self,
        topics: payloads.Topics,
        ledger: LedgerProtocol | None,
        parser: CommandParser,
        submit: Callable[[Callable[[], None]], bool],
        returned: queue.SimpleQueue[Returned],
    ) -> None:
        self.topics = topics
        self.ledger = ledger
        self.parser = parser
        self._submit = submit
        self._returned = returned
        self.acks = InOrderAcks(lambda mid, qos: None)
        self.acks.close()
        self.received = 0
        self._retained_logged: set[str] = set()
        self._replies: dict[int, Delivery] = {}  # mid of a reply -> its command

    def connected(self, client: mqtt.Client) -> None:
        self.acks = InOrderAcks(client.ack)
        self._replies.clear()

    def disconnected(self) -> None:
        self.acks.close()
        self._replies.clear()

    def answered(self, answer: Answer, publish: Callable[[Outgoing], int]) -> None:
        """Network thread: publish the reply; the command is acknowledged once it is taken."""
        if answer.reply is None:
            answer.delivery.finish()
        elif answer.delivery.acks is self.acks:
            self._replies[publish(answer.reply)] = answer.delivery
        else:  # from a connection that is gone: the broker delivers the command again
            publish(answer.reply)

    def reply_acked(self, mid: int) -> None:
        """Network thread: the broker acknowledged message mid, perhaps a reply."""
        delivery = self._replies.pop(mid, None)
        if delivery is not None:
            delivery.finish()

    # -- network thread ------------------------------------------------------------------
    def on_message(self, message: mqtt.MQTTMessage) -> None:
        delivery = self.acks.received(message.mid, message.qos)
        topic = message.topic
        if not topic.startswith(self.topics.cmd_prefix) or self.ledger is None:
            delivery.finish()
            return
        if message.retain:
            self._ignore_retained(topic)
            delivery.finish()
            return
        name = topic[len(self.topics.cmd_prefix) :]
        payload = bytes(message.payload)
        self.received += 1
        if self._submit(lambda: self._run(name, payload, delivery)):
            return
        request_id = sniff_request_id(payload)
        busy = None
        if request_id is not None:
            busy = Outgoing(self.topics.reply(name), payloads.reply(request_id, False, BUSY))
        log.warning("command on %s not taken: %s", topic, BUSY)
        self._returned.put(Answer(busy, delivery))

    def _ignore_retained(self, topic: str) -> None:
        """A retained command comes again with every subscription: it is never a request."""
        level = logging.DEBUG if topic in self._retained_logged else logging.WARNING
        self._retained_logged.add(topic)
        log.log(
            level,
            "ignored a retained command on %s: commands must be sent without retain"
            " (clear it by publishing an empty retained message to that topic)",
            topic,
        )

    # -- worker thread -------------------------------------------------------------------
    def _run(self, name: str, payload: bytes, delivery: Delivery) -> None:
        assert self.ledger is not None
        out = None
        try:
            try:
                parsed = self.parser.parse(name, payload)
            except Exception as exc:  # a bug in the checks: still an answer, never silence
                log.exception("command on %s could not be checked", self.topics.cmd(name))
                error = f"internal error: {type(exc).__name__}: {exc}"
                parsed = Parsed(name, sniff_request_id(payload), error=error)
            out = handle(parsed, self.ledger, self.topics)
        finally:  # durable now, or refused: acknowledged once the reply is out
            self._returned.put(Answer(out, delivery))
