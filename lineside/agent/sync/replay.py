"""P/cmd/replay: the stored P/tx messages of a seq range again, same seq, same bytes.

A central system that lost messages (a broker restarted without persistence, a consumer
away longer than its session) asks for a range; the gateway re-publishes the messages it
still holds and answers on P/reply/replay what it re-sent and what it no longer holds
(retention_days pruned it). Rules (docs/mqtt.md):

- Bounded: one answer covers at most MAX_MESSAGES seqs from from_seq; the reply's to_seq
  says where it stopped, and the caller asks again from there.
- Paced: replayed messages go out only beside live traffic (the live window is filled
  first on every turn of the network loop) and at most REPLAY_INFLIGHT unacknowledged at
  a time; requests are served one at a time, at most MAX_WAITING queued.
- The answer is published once every re-sent message has been acknowledged by the
  broker. A connection lost meanwhile drops the request unanswered: ask again.

Threads: requests arrive and messages are published on the network thread; the stored
messages are read, a chunk at a time, on the sync worker thread (its own SQLite
connection), asked for by the network side when its buffer runs low.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lineside.agent.ledger.outbox import newest_seq, stored_messages
from lineside.agent.ledger.outbox_pages import TxMessage
from lineside.agent.ledger.store import connect
from lineside.agent.sync.contract import Contract
from lineside.agent.sync.payloads import Topics, dumps

log = logging.getLogger("lineside.sync")

NAME = "replay"
MAX_MESSAGES = 1000  # seqs one answer covers at most
REPLAY_INFLIGHT = 8  # replayed messages unacknowledged at one time
CHUNK = 50  # messages read from the ledger at a time
MAX_WAITING = 16  # requests queued behind the one being served
PROPERTY = "lineside-replay"  # MQTT 5 user property on a replayed message: the request_id

Ranges = list[list[int]]


@dataclass(frozen=True, slots=True)
class Request:
    request_id: str
    from_seq: int
    to_seq: int | None


def parse(payload: bytes, contract: Contract) -> Request | tuple[str | None, str]:
    """A request, or (request_id if one could be read, why it is refused)."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"payload is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return None, "payload must be a JSON object"
    raw = data.get("request_id")
    request_id = raw if isinstance(raw, str) and 0 < len(raw) <= 128 else None
    errors = contract.errors(f"cmd.{NAME}", data)
    if not errors and data.get("to_seq") is not None and data["to_seq"] < data["from_seq"]:
        errors = ["to_seq: less than from_seq"]
    if errors or request_id is None:
        return request_id, "; ".join(errors) or "missing request_id"
    return Request(request_id, int(data["from_seq"]), data.get("to_seq"))


@dataclass
class Job:
    """One request being served (network thread only, but for `arrived`)."""

    request: Request
    to_seq: int = 0  # the end of the range this answer covers
    last_seq: int = 0
    next_read: int = 0  # the next seq to read from the ledger
    buffer: deque[TxMessage] = field(default_factory=deque)
    arrived: deque[tuple[list[TxMessage], int, int]] = field(default_factory=deque)
    reading: bool = False
    started: bool = False  # the first chunk arrived: to_seq and last_seq are known
    error: str | None = None  # the ledger could not be read
    inflight: set[int] = field(default_factory=set)
    resent: list[int] = field(default_factory=list)

    def done(self) -> bool:
        return (
            self.started
            and self.next_read > self.to_seq
            and not self.reading
            and not self.arrived
            and not self.buffer
            and not self.inflight
        )


class Replays:
    def __init__(
        self,
        db_path: Path,
        topics: Topics,
        *,
        submit: Callable[[Callable[[], None]], bool],
        reply: Callable[[str, bytes], None],
        wake: Callable[[], None],
        protocol: str,
        contract: Contract | None = None,
    ) -> None:
        self.db_path = db_path
        self.topics = topics
        self.submit = submit
        self.reply = reply
        self.wake = wake
        self.v5 = protocol == "5"
        self.contract = contract or Contract()
        self.waiting: deque[Request] = deque()
        self.job: Job | None = None
        self.resent = 0  # messages re-published, for metrics

    # -- network thread ----------------------------------------------------------------------
    def request(self, payload: bytes) -> None:
        """A P/cmd/replay arrived."""
        parsed = parse(payload, self.contract)
        if isinstance(parsed, tuple):
            request_id, error = parsed
            if request_id is None:
                log.warning("replay request refused, no reply possible: %s", error)
            else:
                log.warning("replay request %s refused: %s", request_id, error)
                self._answer(request_id, ok=False, error=error)
            return
        if len(self.waiting) >= MAX_WAITING:
            self._answer(
                parsed.request_id,
                ok=False,
                error="the gateway is busy with other replays: try again later",
            )
            return
        self.waiting.append(parsed)

    def pump(self, publish: Callable[[str, bytes, Any], int]) -> None:
        """Publish what is ready within the replay window; start the next request."""
        if self.job is None:
            if not self.waiting:
                return
            self.job = Job(self.waiting.popleft())
            self.job.next_read = self.job.request.from_seq
            self._read(self.job)
            return
        job = self.job
        if job.error is not None and not job.reading:
            self._answer(job.request.request_id, ok=False, error=job.error)
            self.job = None
            return
        while job.arrived:
            messages, to_seq, last_seq = job.arrived.popleft()
            job.buffer.extend(messages)
            job.to_seq, job.last_seq, job.started = to_seq, last_seq, True
        while job.buffer and len(job.inflight) < REPLAY_INFLIGHT:
            message = job.buffer.popleft()
            job.inflight.add(publish(self.topics.tx, message.payload, self._properties(job)))
            job.resent.append(message.seq)
            self.resent += 1
        if not job.buffer and not job.reading and job.next_read <= job.to_seq:
            self._read(job)
        if job.done():
            self._finish(job)

    def on_ack(self, mid: int) -> bool:
        """The broker acknowledged mid; False when it is not a replayed message."""
        if self.job is None or mid not in self.job.inflight:
            return False
        self.job.inflight.discard(mid)
        return True

    def lost(self) -> None:
        """The connection is gone: the request being served is dropped, unanswered."""
        if self.job is not None:
            log.warning(
                "replay %s interrupted by the lost connection: not answered",
                self.job.request.request_id,
            )
        self.job = None

    def _properties(self, job: Job) -> Any:
        if not self.v5:
            return None
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = (PROPERTY, job.request.request_id)
        return props

    def _read(self, job: Job) -> None:
        job.reading = True
        start = job.next_read
        if not self.submit(lambda: self._read_chunk(job, start)):
            job.reading = False  # the worker is full: asked again on the next pump

    def _finish(self, job: Job) -> None:
        request = job.request
        resent = _ranges(job.resent)
        covered = range(request.from_seq, job.to_seq + 1)
        sent = set(job.resent)
        not_held = _ranges([s for s in covered if s not in sent])
        log.info(
            "replay %s: seq %d..%d, re-sent %s, no longer held %s, newest %d",
            request.request_id,
            request.from_seq,
            job.to_seq,
            resent or "none",
            not_held or "none",
            job.last_seq,
        )
        self._answer(
            request.request_id,
            ok=True,
            error=None,
            from_seq=request.from_seq,
            to_seq=job.to_seq,
            resent=resent,
            not_held=not_held,
            last_seq=job.last_seq,
        )
        self.job = None

    def _answer(self, request_id: str, **fields: Any) -> None:
        self.reply(self.topics.reply(NAME), dumps({"request_id": request_id, **fields}))

    # -- worker thread -----------------------------------------------------------------------
    def _read_chunk(self, job: Job, start: int) -> None:
        try:
            conn = connect(self.db_path)
            try:
                newest = newest_seq(conn)
                request = job.request
                end = min(request.to_seq or newest, newest, request.from_seq + MAX_MESSAGES - 1)
                last = min(end, start + CHUNK - 1)
                gateway = self.topics.gateway
                messages = stored_messages(conn, gateway, start, last) if start <= last else []
            finally:
                conn.close()
        except sqlite3.Error as exc:
            log.error("replay %s: cannot read the ledger: %s", job.request.request_id, exc)
            job.error = f"internal error: cannot read the ledger: {exc}"
        else:
            job.next_read = last + 1
            job.arrived.append((messages, end, newest))
        job.reading = False
        self.wake()  # the network thread publishes them now, not at its next loop timeout


def _ranges(seqs: list[int]) -> Ranges:
    """[[first, last], …] of sorted seqs."""
    out: Ranges = []
    for seq in sorted(seqs):
        if out and out[-1][1] == seq - 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out
