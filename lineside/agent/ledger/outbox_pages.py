"""How the publisher reads unsent outbox rows into P/tx messages, a page at a time.

A message spans the ids first..first + batch_max - 1, where first is the next unsent 'tx'
row after the previous message: it holds up to batch_max transactions (fewer where alerts
were written in between). It never reaches past the newest outbox row: SQLite's writers
take turns, so every id below the newest is committed, and no row can appear later inside
a message already read.

While a backlog drains, Python's GIL is what the store thread shares with the network
thread, and SQLite's own work is the only work that runs without it. So one statement
reads a whole page and SQLite builds every message's bytes itself; Python makes one copy
per message. Each statement hands the GIL over and waits to get it back, so a read per row,
or even per message, starves the network thread. Pages stay small (PAGE_ROWS) because a
bigger result is a fresh block of memory from the kernel each time, which costs more than
the extra statements.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger("lineside.sync")

PAGE_ROWS = 1000  # one read never loads more outbox rows than this (unless batch_max is more)
# A 'tx' row whose payload is '' points at its journal row (seq in column tx), and SQLite
# builds the transaction's JSON from it: the bytes Python's encoder wrote before, for
# every row unit.py leaves derivable (text that JSON need not escape). Other rows keep it.
# Only a scrap row (and its reversal) has a reason: the key is there when the column is set.
_TX_FIELDS = """'id', j.id, 'ts', j.ts, 'kind', j.kind, 'item', j.item,
    'location', j.location, 'qty', j.qty, 'uom', j.uom, 'lot', NULLIF(j.lot, ''),
    'order', j.order_no, 'work_center', j.work_center, 'cost', j.cost, 'cause', j.cause"""
TX_JSON = f"""CASE WHEN o.payload != '' THEN o.payload ELSE (
  SELECT CASE WHEN j.reason IS NULL THEN json_object({_TX_FIELDS})
    ELSE json_object({_TX_FIELDS}, 'reason', j.reason) END
  FROM journal AS j WHERE j.seq = o.tx) END"""
UNSENT_TX = "FROM outbox WHERE stream = 'tx' AND sent_ts IS NULL"
UNSENT_AFTER = (
    f"SELECT o.id, {TX_JSON} FROM outbox AS o WHERE stream = 'tx' AND sent_ts IS NULL"
    " AND id > ? ORDER BY id LIMIT ?"
)
# Messages' bytes are joined by the record separator, which JSON text never holds raw.
RECORD_SEPARATOR = b"\x1e"
PAGE_START = (
    f"SELECT (SELECT id {UNSENT_TX} AND id > ? ORDER BY id LIMIT 1), (SELECT MAX(id) FROM outbox)"
)
# The usual page: every id from first to last is an unsent 'tx' row (the count tells), so
# a message starts every batch ids, and each row's separator says whether one begins.
READ_RUN = f"""
SELECT COUNT(*), CAST(:head || :seq || ',"transactions":[' || group_concat({TX_JSON},
         CASE WHEN (o.id - :first) % :batch = 0
              THEN ']}}' || char(30) || :head || (:seq + (o.id - :first) / :batch)
                   || ',"transactions":['
              ELSE ',' END) || ']}}' AS BLOB)
FROM outbox AS o NOT INDEXED
WHERE o.id BETWEEN :first AND :last AND o.stream = 'tx' AND o.sent_ts IS NULL
"""
# Any page (alerts or sent rows in between): each message's start found by an index seek,
# and "k first last count" per message beside the bytes.
READ_PAGE = f"""
WITH RECURSIVE start(k, first) AS (
  SELECT 0, (SELECT id {UNSENT_TX} AND id > :after ORDER BY id LIMIT 1)
  UNION ALL
  SELECT k + 1, (SELECT id {UNSENT_TX} AND id > MIN(start.first + :batch - 1,
                 (SELECT MAX(id) FROM outbox)) ORDER BY id LIMIT 1)
  FROM start WHERE k + 1 < :messages AND start.first IS NOT NULL
), message AS (
  SELECT k, first, MIN(first + :batch - 1, (SELECT MAX(id) FROM outbox)) AS last
  FROM start WHERE first IS NOT NULL
)
SELECT
  group_concat(k || ' ' || first || ' ' || last || ' '
               || (SELECT COUNT(*) {UNSENT_TX} AND id BETWEEN first AND last), ','),
  CAST(group_concat(:head || (:seq + k) || ',"transactions":[' || (
         SELECT group_concat({TX_JSON}, ',') FROM outbox AS o NOT INDEXED
         WHERE o.stream = 'tx' AND o.sent_ts IS NULL AND o.id BETWEEN first AND last
       ) || ']}}', char(30)) AS BLOB)
FROM message
"""


def tx_message(gateway: str, seq: int, transactions: Sequence[str]) -> bytes:
    """A P/tx message from outbox payloads that are already JSON (not parsed again: speed).

    The same bytes as READ_RUN and READ_PAGE build inside SQLite.
    """
    head = f'{{"gateway":{json.dumps(gateway)},"seq":{seq},"transactions":['
    return (head + ",".join(transactions) + "]}").encode("utf-8")


@dataclass(frozen=True, slots=True)
class TxMessage:
    """One P/tx message: outbox rows first_id..last_id of stream 'tx', count of them."""

    seq: int
    first_id: int
    last_id: int
    count: int
    payload: bytes


class PageReader:
    def __init__(self, conn: sqlite3.Connection, gateway: str, batch_max: int) -> None:
        self.conn = conn
        self.gateway = gateway
        self.batch_max = batch_max
        self._head = f'{{"gateway":{json.dumps(gateway)},"seq":'
        self._ordered = aggregates_in_order(conn)

    def read(self, after: int, seq: int, messages: int) -> list[TxMessage]:
        """Up to `messages` messages from the unsent 'tx' rows after id `after`, the first
        numbered `seq`; fewer only when the outbox has no more."""
        if not self._ordered:
            return self.read_by_rows(after, seq, messages)
        first, newest = self.conn.execute(PAGE_START, (after,)).fetchone()
        if first is None:
            return []
        last = min(first + messages * self.batch_max - 1, newest)
        params = {"first": first, "last": last, "batch": self.batch_max, "head": self._head}
        count, joined = self.conn.execute(READ_RUN, {**params, "seq": seq}).fetchone()
        if count != last - first + 1:
            return self.read_any(after, seq, messages)
        payloads = joined.split(RECORD_SEPARATOR)
        if len(payloads) != -(-count // self.batch_max):
            return self.read_by_rows(after, seq, messages)  # not as planned: play safe
        out: list[TxMessage] = []
        for k, payload in enumerate(payloads):
            start = first + k * self.batch_max
            end = min(start + self.batch_max - 1, last)
            out.append(TxMessage(seq + k, start, end, end - start + 1, payload))
        return out

    def read_any(self, after: int, seq: int, messages: int) -> list[TxMessage]:
        """As read, for a page with other rows in between (READ_PAGE)."""
        params = {"after": after, "batch": self.batch_max, "messages": messages}
        index, joined = self.conn.execute(
            READ_PAGE, {**params, "head": self._head, "seq": seq}
        ).fetchone()
        if index is None:
            return []
        payloads = joined.split(RECORD_SEPARATOR)
        entries = [tuple(map(int, entry.split())) for entry in index.split(",")]
        if len(payloads) != len(entries) or [e[0] for e in entries] != list(range(len(entries))):
            return self.read_by_rows(after, seq, messages)  # not as planned: play safe
        return [
            TxMessage(seq + k, first_id, last_id, count, payload)
            for (k, first_id, last_id, count), payload in zip(entries, payloads, strict=True)
        ]

    def read_by_rows(self, after: int, seq: int, messages: int) -> list[TxMessage]:
        """As read, a row at a time: slow, and sure of the order."""
        newest = self.conn.execute("SELECT MAX(id) FROM outbox").fetchone()[0]
        rows = self.conn.execute(UNSENT_AFTER, (after, messages * self.batch_max)).fetchall()
        out: list[TxMessage] = []
        while rows and len(out) < messages:
            last = min(int(rows[0][0]) + self.batch_max - 1, int(newest))
            batch = [r for r in rows[: self.batch_max] if r[0] <= last]
            rows = rows[len(batch) :]
            payload = tx_message(self.gateway, seq, [str(r[1]) for r in batch])
            out.append(TxMessage(seq, int(batch[0][0]), last, len(batch), payload))
            seq += 1
        return out


def aggregates_in_order(conn: sqlite3.Connection) -> bool:
    """Whether the group_concat of payloads in READ_RUN and READ_PAGE sees rows in id order.

    SQLite does not promise an aggregate's order (before 3.44's ORDER BY inside the
    aggregate), but an aggregate over a search of the table's rowid range sees the rows in
    rowid order, with no sorter in between. A plan of another shape, in some other SQLite
    version, makes the publisher read row by row instead.
    """
    plans = [
        (READ_RUN, {"first": 0, "last": 0, "batch": 1, "head": "", "seq": 0}),
        (READ_PAGE, {"after": 0, "batch": 1, "messages": 1, "head": "", "seq": 0}),
    ]
    for sql, params in plans:
        plan = " | ".join(str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        if "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" not in plan or "TEMP B-TREE" in plan:
            log.warning("SQLite plans the outbox read as %r: reading messages row by row", plan)
            return False
    return True
