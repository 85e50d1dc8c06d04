"""lineside central's writes against a real PostgreSQL: every transaction exactly once."""

from __future__ import annotations

import json
import threading
import uuid
from decimal import Decimal
from typing import Any

import psycopg

from lineside.central.rows import parse_tx
from lineside.central.schema import migrate
from lineside.central.store import Incoming, Reply, record_plans, scan, write


def tx(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=n)), "ts": "2026-01-05T06:00:01.000Z", "kind": "backflush",
        "item": "STEEL-2MM", "location": "LINE-3", "qty": "-8.755", "uom": "kg", "lot": None,
        "order": None, "work_center": "PRESS-3", "cost": "-9.6305", "cause": f"c{n}",
        **changes,
    }  # fmt: skip


def message(seq: int, txs: list[dict[str, Any]], gateway: str = "press-3") -> Incoming:
    body = json.dumps({"gateway": gateway, "seq": seq, "transactions": txs}).encode()
    topic = f"lineside/v1/plant-a/{gateway}/tx"
    return Incoming(topic, body, parse_tx("plant-a", gateway, body))


def connect(dsn: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(dsn)
    migrate(conn)
    return conn


def count(conn: psycopg.Connection[Any], sql: str) -> int:
    row = conn.execute(sql).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def test_a_batch_lands_once_and_its_repeat_changes_nothing(pg_dsn: str) -> None:
    conn = connect(pg_dsn)
    batch = [message(s, [tx(s * 10 + i) for i in range(3)]) for s in range(1, 5)]
    first = write(conn, batch)
    assert (first.landed, first.transactions, first.duplicates) == (4, 12, 0)
    again = write(conn, batch + batch[:1])  # one seq twice in the same batch, too
    assert (again.landed, again.repeats, again.transactions, again.duplicates) == (0, 5, 0, 15)
    assert count(conn, "SELECT count(*) FROM lineside_transactions") == 12
    assert count(conn, "SELECT count(*) FROM lineside_messages WHERE state = 'landed'") == 4


def test_quantities_are_exact_numerics(pg_dsn: str) -> None:
    conn = connect(pg_dsn)
    write(conn, [message(1, [tx(1, qty="-0.000000000000000000000000000001", cost="1")])])
    row = conn.execute("SELECT qty, cost, ts FROM lineside_transactions").fetchone()
    assert row is not None
    assert row[0] == Decimal("-0.000000000000000000000000000001") and row[1] == Decimal(1)
    assert row[2].isoformat() == "2026-01-05T06:00:01+00:00"


def test_a_repeat_with_other_bytes_lands_its_new_transactions_by_id(pg_dsn: str) -> None:
    conn = connect(pg_dsn)
    write(conn, [message(1, [tx(1), tx(2)])])
    out = write(conn, [message(1, [tx(2), tx(3)])])  # e.g. a ledger restored from a backup
    assert out.different == [("plant-a", "press-3", 1)]
    assert (out.transactions, out.duplicates) == (1, 1)
    assert count(conn, "SELECT count(*) FROM lineside_transactions") == 3


def test_a_transaction_already_landed_under_another_seq_is_not_landed_twice(
    pg_dsn: str,
) -> None:
    conn = connect(pg_dsn)
    write(conn, [message(1, [tx(1)])])
    out = write(conn, [message(2, [tx(1), tx(2)])])  # COPY fails on tx 1: row by row instead
    assert (out.landed, out.transactions, out.duplicates) == (1, 1, 1)
    assert count(conn, "SELECT count(*) FROM lineside_transactions") == 2


def test_a_rejected_message_is_kept_with_its_reason(pg_dsn: str) -> None:
    conn = connect(pg_dsn)
    out = write(conn, [Incoming("lineside/v1/a/b/tx", b"{", reason="not JSON")])
    assert out.rejected == 1
    row = conn.execute("SELECT topic, payload, reason FROM lineside_rejected").fetchone()
    assert row == ("lineside/v1/a/b/tx", b"{", "not JSON")


def test_two_writers_with_overlapping_batches_land_each_transaction_once(pg_dsn: str) -> None:
    batches = [
        [message(s, [tx(g * 10_000 + s * 10 + i) for i in range(5)], f"gw-{g}")
         for g in range(3) for s in range(start, start + 40)]
        for start in (1, 21)
    ]  # seqs 21..40 of each gateway in both
    errors: list[BaseException] = []

    def land(batch: list[Incoming]) -> None:
        try:
            conn = connect(pg_dsn)
            for i in range(0, len(batch), 7):
                write(conn, list(reversed(batch[i : i + 7])))
            conn.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=land, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    conn = connect(pg_dsn)
    assert count(conn, "SELECT count(*) FROM lineside_transactions") == 3 * 60 * 5
    assert count(conn, "SELECT count(*) FROM lineside_messages") == 3 * 60


def test_the_scan_sees_gaps_and_a_reply_closes_what_is_no_longer_held(pg_dsn: str) -> None:
    conn = connect(pg_dsn)
    write(conn, [message(s, [tx(s)]) for s in (1, 2, 5, 6)])
    conn.execute("UPDATE lineside_messages SET landed_at = now() - interval '1 hour'")
    conn.commit()
    found = scan(conn)
    seqs = found.gateways[("plant-a", "press-3")]
    assert found.locked and seqs.contiguous is None
    assert [(i.first, i.last) for i in seqs.islands] == [(1, 2), (5, 6)]
    sent = record_plans(conn, {("plant-a", "press-3"): 2}, {("plant-a", "press-3"): (3, 4)}, "t")
    request_id, first, last = sent[("plant-a", "press-3")]
    assert (first, last) == (3, 4)
    reply = {"request_id": request_id, "ok": True, "error": None, "resent": [],
             "not_held": [[3, 4]], "last_seq": 6}
    out = write(conn, [Incoming("t", b"", event=Reply("plant-a", "press-3", reply))])
    assert out.not_held == 2
    seqs = scan(conn).gateways[("plant-a", "press-3")]
    conn.rollback()
    assert seqs.contiguous == 2 and [(i.first, i.last) for i in seqs.islands] == [(3, 6)]
    assert seqs.request is not None and seqs.request.answered is not None
