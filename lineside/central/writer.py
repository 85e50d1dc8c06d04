"""`lineside central`'s writer: what the network thread received, landed in PostgreSQL.

It takes what arrived in batches, lands each batch in one PostgreSQL transaction
(store.write) and only then hands its acknowledgements back to the network thread, in
the order the messages arrived. A batch the database cannot take is tried again (nothing
is acknowledged meanwhile, so the broker keeps it); a message the database refuses for its
content is kept in lineside_rejected, alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from lineside.agent.sync.connect import link_backoff
from lineside.agent.sync.contract import Contract
from lineside.central.metrics import CentralMetrics
from lineside.central.rows import Rejected, gateway_of, parse_tx
from lineside.central.store import Incoming, Outcome, Reply, Status, write

log = logging.getLogger("lineside.central")

BATCH_MESSAGES = 200  # messages landed per database transaction, at most


@dataclass(frozen=True, slots=True)
class Received:
    generation: int  # the connection it came on: acknowledged on that one only
    mid: int
    qos: int
    incoming: Incoming  # what it is for the database (classified on arrival)
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


class Writer:
    def __init__(
        self,
        inbox: Inbox,
        metrics: CentralMetrics,
        connect: Callable[[], psycopg.Connection[Any]],
        acks: deque[tuple[int, int, int]],
    ) -> None:
        self.inbox = inbox
        self.metrics = metrics
        self.connect = connect
        self.acks = acks  # (generation, mid, qos) of what was committed, in arrival order
        self.database_ok = False
        self.changed_at = time.monotonic()  # when database_ok last went from true to false

    def run(self, stop: threading.Event) -> None:
        conn: psycopg.Connection[Any] | None = None
        failures = 0
        while not stop.is_set():
            batch = self.inbox.take(BATCH_MESSAGES, 0.2)
            if not batch:
                continue
            incoming = [r.incoming for r in batch]
            while not stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = self.connect()
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
                    close_db(conn)
                    conn = None
                    stop.wait(backoff(failures))
            else:
                break  # stopping: the broker keeps what was not acknowledged
            # Acknowledged in arrival order, once committed.
            self.acks.extend((r.generation, r.mid, r.qos) for r in batch)
            self.inbox.oldest_busy = None
        close_db(conn)

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
                log.error("PostgreSQL refused %s: %s", incoming[0].topic, first_line(exc))
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
            self.changed_at = time.monotonic()
        self.metrics.database_up.set(0)
        self.metrics.write_errors.inc()
        if self.database_ok or failures == 1:
            log.error(
                "PostgreSQL: %s; nothing is acknowledged until it is written, retrying",
                first_line(exc),
            )
        self.database_ok = False



def classify(
    topic: str, payload: bytes, replay: bool, prefix: str, contract: Contract
) -> Incoming:
    """What a message is for the database: pure, no I/O."""
    where = gateway_of(topic, prefix)
    if where is None:
        return Incoming(topic, payload, reason="not a lineside topic")
    site, gateway, kind = where
    try:
        if kind == "tx":
            return Incoming(topic, payload, parse_tx(site, gateway, payload), replay=replay)
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


def close_db(conn: psycopg.Connection[Any] | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# The pause before trying PostgreSQL or the broker again: the agent's own reconnect rule.
backoff = link_backoff(0.5, 30.0).delay

