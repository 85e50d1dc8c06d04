"""Every statement `lineside central` runs against PostgreSQL.

Exactly once: a message's seq goes into lineside_messages (primary key site, gateway, seq)
in the same transaction as its transactions, so a seq already there is a repeat and its
transactions are not written again; lineside_transactions' primary key on the
transaction id is the last word. New messages' transactions go in by COPY; should one of
them be there already after all (a seq that came again with different bytes, a ledger
replaced), the transaction is rolled back and written again row by row with ON CONFLICT
DO NOTHING. Several consumers write side by side: a seq one of them is writing makes the
other wait for its commit, then see a repeat.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from lineside.central.gaps import GatewaySeqs, Island, Request
from lineside.central.rows import COLUMNS, TxMessage
from lineside.central.schema import SCAN_LOCK

_COLUMN_LIST = ", ".join('"order"' if c == "order" else c for c in COLUMNS)
COPY_TX = f"COPY lineside_transactions ({_COLUMN_LIST}) FROM STDIN"
_TYPES = (
    "text", "text", "text", "bigint", "timestamptz", "text", "text", "text", "text",
    "numeric", "text", "text", "text", "numeric", "text",
)  # fmt: skip
INSERT_TX = (
    f"INSERT INTO lineside_transactions ({_COLUMN_LIST}) SELECT * FROM unnest("
    + ", ".join(f"%s::{t}[]" for t in _TYPES)
    + ") ON CONFLICT (id) DO NOTHING"
)
INSERT_MESSAGES = """
INSERT INTO lineside_messages (site, gateway, seq, state, transactions, digest, replayed)
SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::integer[],
                     %s::bytea[], %s::boolean[])
ON CONFLICT (site, gateway, seq) DO UPDATE
  SET state = excluded.state, transactions = excluded.transactions, digest = excluded.digest,
      replayed = excluded.replayed, landed_at = now()
  WHERE lineside_messages.state = 'not_held'
RETURNING site, gateway, seq
"""
DIGESTS = """
SELECT m.site, m.gateway, m.seq, m.digest FROM lineside_messages m
JOIN unnest(%s::text[], %s::text[], %s::bigint[]) AS k(site, gateway, seq)
  ON (m.site, m.gateway, m.seq) = (k.site, k.gateway, k.seq)
"""
NEW_GATEWAYS = """
INSERT INTO lineside_gateways (site, gateway) SELECT * FROM unnest(%s::text[], %s::text[])
ON CONFLICT DO NOTHING
"""
# Per gateway, only the seqs above its contiguous one: a range scan of the primary key
# each (LATERAL), however long the table has grown.
ISLANDS = """
WITH above AS (
  SELECT g.site, g.gateway, m.seq, m.landed_at,
         m.seq - row_number() OVER (PARTITION BY g.site, g.gateway ORDER BY m.seq) AS island
  FROM lineside_gateways g, LATERAL (
    SELECT seq, landed_at FROM lineside_messages m
    WHERE m.site = g.site AND m.gateway = g.gateway AND m.seq > COALESCE(g.contiguous_seq, 0)
    OFFSET 0  -- not flattened into a join: PostgreSQL would scan the whole table
  ) m
)
SELECT site, gateway, min(seq), max(seq), extract(epoch FROM min(landed_at))::float8
FROM above GROUP BY site, gateway, island ORDER BY site, gateway, 3
"""
GATEWAYS = """
SELECT site, gateway, contiguous_seq, announced_seq,
       extract(epoch FROM announced_at)::float8, probe
FROM lineside_gateways ORDER BY site, gateway
"""
NEWEST_REQUESTS = """
SELECT DISTINCT ON (site, gateway) site, gateway, from_seq, to_seq,
       extract(epoch FROM requested_at)::float8, extract(epoch FROM answered_at)::float8
FROM lineside_replays ORDER BY site, gateway, requested_at DESC
"""


@dataclass
class Outcome:
    """What one write did, for metrics and logs."""

    landed: int = 0  # messages new to the database
    repeats: int = 0
    different: list[tuple[str, str, int]] = field(default_factory=list)  # repeats, other bytes
    transactions: int = 0  # rows new to lineside_transactions
    duplicates: int = 0  # transactions already there, dropped
    replayed: int = 0  # new messages that came as a replay
    rejected: int = 0
    not_held: int = 0  # seqs gateways answered they no longer hold


@dataclass(frozen=True, slots=True)
class Status:
    site: str
    gateway: str
    online: bool
    version: str | None


@dataclass(frozen=True, slots=True)
class Reply:
    site: str
    gateway: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message to write: a P/tx message, a status or a replay's reply, or one refused
    (neither) with its reason."""

    topic: str
    payload: bytes
    message: TxMessage | None = None
    event: Status | Reply | None = None
    reason: str | None = None
    replay: bool = False


def write(conn: psycopg.Connection[Any], batch: Sequence[Incoming]) -> Outcome:
    """Land a batch in one transaction and commit; raises psycopg errors with nothing
    committed (the caller keeps the messages unacknowledged and tries again)."""
    try:
        return _write(conn, batch, copy=True)
    except psycopg.errors.UniqueViolation:
        conn.rollback()
    return _write(conn, batch, copy=False)


def _write(conn: psycopg.Connection[Any], batch: Sequence[Incoming], copy: bool) -> Outcome:
    out = Outcome()
    first: dict[tuple[str, str, int], Incoming] = {}
    repeats_here: list[Incoming] = []
    for item in batch:
        m = item.message
        if m is None:
            continue
        key = (m.site, m.gateway, m.seq)
        if key in first:
            repeats_here.append(item)  # the same seq twice in one batch
        else:
            first[key] = item
    items = [first[k] for k in sorted(first)]  # one order for every writer: no deadlocks
    rejected = [i for i in batch if i.message is None and i.event is None]
    with conn.cursor() as cur:
        if items:
            cur.execute(NEW_GATEWAYS, _columns(sorted({(k[0], k[1]) for k in first}), 2))
            cur.execute(INSERT_MESSAGES, _message_columns(items))
            new = {(s, g, int(q)) for s, g, q in cur.fetchall()}
            fresh = [i for i in items if _key(i) in new]
            repeated = [i for i in items if _key(i) not in new] + repeats_here
            different = _different(cur, repeated)
            out.landed, out.repeats = len(fresh), len(repeated)
            out.different = [_key(i) for i in different]
            out.replayed = sum(1 for i in fresh if i.replay)
            rows = [r for i in fresh for r in _message(i).rows]
            written = _copy(cur, rows) if copy and not different else _insert(cur, rows)
            again = [r for i in different for r in _message(i).rows]
            added = _insert(cur, again) if again else 0
            out.transactions = written + added
            out.duplicates = len(rows) - written + len(again) - added
            out.duplicates += sum(len(_message(i).rows) for i in repeated if i not in different)
        if rejected:
            cur.executemany(
                "INSERT INTO lineside_rejected (topic, payload, reason) VALUES (%s, %s, %s)",
                [(i.topic, i.payload, i.reason or "rejected") for i in rejected],
            )
            out.rejected = len(rejected)
    for item in batch:
        if isinstance(item.event, Status):
            e = item.event
            record_status(conn, e.site, e.gateway, e.online, e.version)
        elif isinstance(item.event, Reply):
            out.not_held += record_reply(conn, item.event.site, item.event.gateway, item.event.data)
    conn.commit()
    return out


def _message(item: Incoming) -> TxMessage:
    assert item.message is not None
    return item.message


def _key(item: Incoming) -> tuple[str, str, int]:
    m = _message(item)
    return (m.site, m.gateway, m.seq)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [[r[i] for r in rows] for i in range(width)]


def _message_columns(items: Sequence[Incoming]) -> list[list[Any]]:
    ms = [_message(i) for i in items]
    return [
        [m.site for m in ms],
        [m.gateway for m in ms],
        [m.seq for m in ms],
        ["landed"] * len(ms),
        [len(m.rows) for m in ms],
        [m.digest for m in ms],
        [i.replay for i in items],
    ]


def _different(cur: psycopg.Cursor[Any], repeated: list[Incoming]) -> list[Incoming]:
    """The repeats whose bytes differ from the copy landed first (a bug, or a ledger
    replaced): their transactions are written, each once by its id."""
    if not repeated:
        return []
    keys = [_key(i) for i in repeated]
    cur.execute(DIGESTS, _columns(keys, 3))
    landed = {(s, g, int(q)): bytes(d) if d is not None else None for s, g, q, d in cur}
    out: list[Incoming] = []
    for item in repeated:
        digest = landed.get(_key(item))
        if digest is not None and digest != _message(item).digest and item not in out:
            out.append(item)
    return out


def _copy(cur: psycopg.Cursor[Any], rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    with cur.copy(COPY_TX) as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)


def _insert(cur: psycopg.Cursor[Any], rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    cur.execute(INSERT_TX, _columns(rows, len(COLUMNS)))
    return int(cur.rowcount)


# -- status and replies --------------------------------------------------------------------


def record_status(
    conn: psycopg.Connection[Any], site: str, gateway: str, online: bool, version: str | None
) -> None:
    """A gateway's P/status; one that comes online is asked for what it may have sent while
    the broker or this consumer was away (probe)."""
    conn.execute(
        "INSERT INTO lineside_gateways AS g (site, gateway, online, version, status_at, probe)"
        " VALUES (%s, %s, %s, %s, now(), %s) ON CONFLICT (site, gateway) DO UPDATE"
        " SET online = excluded.online, version = excluded.version, status_at = now(),"
        " probe = g.probe OR excluded.probe",
        (site, gateway, online, version, online),
    )


def record_reply(
    conn: psycopg.Connection[Any], site: str, gateway: str, reply: dict[str, Any]
) -> int:
    """A P/reply/replay to one of our requests: what the gateway still holds, what it no
    longer does (landed as not_held, so the gap closes). Returns the seqs newly known as
    not held (0 also for a reply to a request not ours)."""
    found = conn.execute(
        "UPDATE lineside_replays SET answered_at = now(), reply = %s"
        " WHERE request_id = %s AND site = %s AND gateway = %s RETURNING request_id",
        (json.dumps(reply), reply.get("request_id"), site, gateway),
    ).fetchone()
    if found is None:
        return 0
    last = reply.get("last_seq")
    if isinstance(last, int) and not isinstance(last, bool):
        conn.execute(
            "UPDATE lineside_gateways SET announced_seq = GREATEST(announced_seq, %s),"
            " announced_at = now() WHERE site = %s AND gateway = %s",
            (last, site, gateway),
        )
    lost = 0
    for first, end in reply.get("not_held") or []:
        lost += conn.execute(
            "INSERT INTO lineside_messages (site, gateway, seq, state, transactions)"
            " SELECT %s, %s, s, 'not_held', 0 FROM generate_series(%s::bigint, %s::bigint) s"
            " ON CONFLICT DO NOTHING",
            (site, gateway, first, end),
        ).rowcount
    return lost


def want_probe(conn: psycopg.Connection[Any]) -> None:
    """This consumer's link to the broker was new: ask every gateway for what followed."""
    conn.execute("UPDATE lineside_gateways SET probe = true")
    conn.commit()


# -- the gap scan -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scan:
    now: float
    locked: bool  # this consumer holds the scan lock: it may write and request
    gateways: dict[tuple[str, str], GatewaySeqs]


def scan(conn: psycopg.Connection[Any]) -> Scan:
    """What the database knows of every gateway's seqs, read in one transaction, which
    stays open: the caller ends it with record_plans (or a rollback)."""
    row = conn.execute(
        "SELECT pg_try_advisory_xact_lock(%s), extract(epoch FROM now())::float8", (SCAN_LOCK,)
    ).fetchone()
    assert row is not None
    locked, now = bool(row[0]), float(row[1])
    islands: dict[tuple[str, str], list[Island]] = {}
    for site, gateway, first, last, received in conn.execute(ISLANDS):
        islands.setdefault((site, gateway), []).append(Island(int(first), int(last), received))
    requests = {
        (s, g): Request(int(a), None if b is None else int(b), r, ans)
        for s, g, a, b, r, ans in conn.execute(NEWEST_REQUESTS)
    }
    gateways = {
        (s, g): GatewaySeqs(
            contiguous=None if c is None else int(c),
            islands=tuple(islands.get((s, g), ())),
            announced=int(ann),
            announced_at=ann_at,
            request=requests.get((s, g)),
            probe=bool(probe),
        )
        for s, g, c, ann, ann_at, probe in conn.execute(GATEWAYS)
    }
    return Scan(now, locked, gateways)


def record_plans(
    conn: psycopg.Connection[Any],
    contiguous: dict[tuple[str, str], int],
    requests: dict[tuple[str, str], tuple[int, int | None]],
    requested_by: str,
) -> dict[tuple[str, str], tuple[str, int, int | None]]:
    """Store the new contiguous seqs and the requests about to be sent, and commit;
    returns each gateway's request as (request_id, from_seq, to_seq)."""
    out: dict[tuple[str, str], tuple[str, int, int | None]] = {}
    for (site, gateway), seq in contiguous.items():
        conn.execute(
            "UPDATE lineside_gateways SET contiguous_seq = %s WHERE site = %s AND gateway = %s",
            (seq, site, gateway),
        )
    for (site, gateway), (first, last) in requests.items():
        request_id = f"central-{uuid.uuid4()}"
        conn.execute(
            "INSERT INTO lineside_replays (request_id, site, gateway, from_seq, to_seq,"
            " requested_by) VALUES (%s, %s, %s, %s, %s, %s)",
            (request_id, site, gateway, first, last, requested_by),
        )
        if last is None:
            conn.execute(
                "UPDATE lineside_gateways SET probe = false WHERE site = %s AND gateway = %s",
                (site, gateway),
            )
        out[(site, gateway)] = (request_id, first, last)
    conn.commit()
    return out
