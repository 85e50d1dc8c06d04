"""The publisher's halves on an in-memory ledger with a fake transport (no broker, no files):
the window, acknowledgements by mid, resumption, alerts, marking, disk full, retention."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lineside.agent.ledger.outbox import OutboxStore, mark_sent
from lineside.agent.ledger.outbox_status import prune, sync_status
from lineside.agent.ledger.store import connect
from lineside.agent.sync.payloads import Topics
from lineside.agent.sync.publisher import Feeder, Pipeline, Window

TOPICS = Topics("lineside/v1", "plant-a", "press-3")
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        assert qos == 1 and not retain
        mid = 1000 + len(self.sent)
        self.sent.append((mid, topic, payload))
        return mid

    def mids(self, topic: str = TOPICS.tx) -> list[int]:
        return [m for m, t, _ in self.sent if t == topic]

    def seqs(self) -> list[int]:
        return [json.loads(p)["seq"] for _, t, p in self.sent if t == TOPICS.tx]


class Harness:
    """Both halves driven by hand, in one thread: feeder step, then window pump."""

    def __init__(self, conn: sqlite3.Connection, batch: int = 10, inflight: int = 3) -> None:
        self.conn = conn
        self.pipeline = Pipeline(ahead=4 * inflight)
        self.window = Window(self.pipeline, TOPICS, inflight, lambda: T0)
        self.feeder = Feeder(OutboxStore(conn, "press-3", batch), self.pipeline, lambda: T0)
        self.feeder.start_up()

    def cycle(self, net: FakeTransport) -> int:
        self.feeder.step()
        return self.window.pump(net)

    def ack_all(self, net: FakeTransport) -> None:
        for mid, _, _ in net.sent:
            self.window.on_ack(mid)
        self.feeder.step()


def ledger() -> sqlite3.Connection:
    return connect(Path(":memory:"))


def add_rows(conn: sqlite3.Connection, n: int, stream: str = "tx", start: int = 0) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for i in range(start, start + n):
        payload = {"id": f"t{i}", "qty": str(i)} if stream == "tx" else {"kind": "held", "n": i}
        conn.execute("INSERT INTO outbox (stream, payload, created_ts) VALUES (?, ?, ?)",
                     (stream, json.dumps(payload), "2026-01-05T06:00:00.000Z"))
    conn.execute("COMMIT")


def unsent(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_ts IS NULL").fetchone()[0])


def test_the_window_is_bounded_and_only_acks_free_it() -> None:
    conn = ledger()
    add_rows(conn, 100)
    h, net = Harness(conn), FakeTransport()
    assert h.cycle(net) == 3 and h.cycle(net) == 0
    assert net.seqs() == [1, 2, 3]
    assert h.window.on_ack(999) is False  # not ours (a status or reply mid): ignored
    assert h.window.on_ack(net.mids()[0]) is True
    assert h.cycle(net) == 1 and net.seqs() == [1, 2, 3, 4]


def test_rows_are_marked_sent_only_after_their_message_was_acknowledged() -> None:
    conn = ledger()
    add_rows(conn, 30)
    h, net = Harness(conn), FakeTransport()
    h.cycle(net)
    h.feeder.finish()
    assert unsent(conn) == 30 and sync_status(conn)["backlog"] == 30
    h.window.on_ack(net.mids()[0])
    h.feeder.step()
    assert sync_status(conn)["backlog"] == 20  # counted from the acknowledged message...
    h.feeder.finish()
    assert unsent(conn) == 20  # ...and its rows marked sent, exactly those
    h.ack_all(net)
    h.feeder.finish()
    assert unsent(conn) == 0 and sync_status(conn)["backlog"] == 0


def test_a_new_connection_offers_what_was_in_flight_first_with_the_same_bytes() -> None:
    conn = ledger()
    add_rows(conn, 50)
    h, first = Harness(conn), FakeTransport()
    h.cycle(first)
    h.window.on_ack(first.mids()[0])  # seq 1 acked; 2 and 3 lost with the connection
    h.window.reset()
    again = FakeTransport()
    h.cycle(again)
    assert again.seqs() == [2, 3, 4]
    assert again.sent[0][2] == first.sent[1][2] and again.sent[1][2] == first.sent[2][2]


def test_a_restart_resends_unacked_messages_byte_for_byte_and_keeps_the_seq() -> None:
    conn = ledger()
    add_rows(conn, 25)
    net = FakeTransport()
    Harness(conn).cycle(net)  # then the process dies: nothing acknowledged
    add_rows(conn, 10, start=25)  # more rows arrive meanwhile
    after, net2 = Harness(conn), FakeTransport()
    after.cycle(net2)
    assert [p for _, _, p in net2.sent] == [p for _, _, p in net.sent]  # same seqs, same bytes
    after.ack_all(net2)
    after.cycle(net2)
    assert net2.seqs() == [1, 2, 3, 4]
    assert json.loads(net2.sent[-1][2])["transactions"][0]["id"] == "t25"


def test_every_way_of_reading_a_page_gives_the_same_messages() -> None:
    conn = ledger()
    add_rows(conn, 7)
    add_rows(conn, 2, "alert")  # ids 8 and 9
    add_rows(conn, 7, start=7)  # ids 10..16
    store = OutboxStore(conn, "press-3", batch_max=10)
    pages = store.pages
    fast = store.prepare(5)
    assert [m.payload for m in fast] == [m.payload for m in pages.read_any(0, 1, 5)]
    assert [m.payload for m in fast] == [m.payload for m in pages.read_by_rows(0, 1, 5)]
    # A message spans ids first..first + 9; the alerts in between only make it smaller.
    assert [(m.first_id, m.last_id, m.count) for m in fast] == [(1, 10, 8), (11, 16, 6)]
    assert store._rebuild(1, 1, 10, 8).payload == fast[0].payload
    run = pages.read(10, 2, 5)  # ids 11..16 are all 'tx': the run path
    assert [(m.seq, m.first_id, m.last_id, m.count, m.payload) for m in run] == [
        (m.seq, m.first_id, m.last_id, m.count, m.payload) for m in fast[1:]
    ]


def test_a_page_never_reaches_past_the_newest_row() -> None:
    conn = ledger()
    add_rows(conn, 25)
    store = OutboxStore(conn, "press-3", batch_max=10)
    assert [(m.first_id, m.last_id, m.count) for m in store.prepare(9)] == [
        (1, 10, 10), (11, 20, 10), (21, 25, 5)
    ]
    assert [len(json.loads(m.payload)["transactions"]) for m in store.prepare(9)] == [10, 10, 5]


def test_pages_of_many_messages_split_where_the_rows_say() -> None:
    conn = ledger()
    add_rows(conn, 2500)
    store = OutboxStore(conn, "press-3", batch_max=7)
    messages = store.prepare(1000)
    assert [m.seq for m in messages] == list(range(1, 359))
    assert sum(m.count for m in messages) == 2500
    for m in messages:
        data = json.loads(m.payload)
        assert data["seq"] == m.seq
        assert [t["id"] for t in data["transactions"]] == [
            f"t{i - 1}" for i in range(m.first_id, m.last_id + 1)
        ]


def test_alerts_go_one_per_message_in_outbox_order() -> None:
    conn = ledger()
    add_rows(conn, 5, "alert")
    add_rows(conn, 5, "tx")
    add_rows(conn, 5, "alert", start=5)
    h, net = Harness(conn, inflight=20), FakeTransport()
    h.cycle(net)
    alerts = [json.loads(p)["n"] for _, t, p in net.sent if t == TOPICS.alerts]
    assert alerts == list(range(10))
    h.ack_all(net)
    h.feeder.finish()
    assert unsent(conn) == 0


def test_disk_full_while_marking_keeps_every_row_and_marks_them_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = ledger()
    add_rows(conn, 400)
    h, net = Harness(conn, batch=100, inflight=4), FakeTransport()
    h.cycle(net)
    for mid in net.mids():
        h.window.on_ack(mid)
    h.feeder._may_mark = lambda: False  # type: ignore[method-assign]
    h.feeder.step()  # the acks are recorded on their messages, rows not yet marked
    del h.feeder._may_mark
    conn.execute("VACUUM")  # no free space left in any page...
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # ...and none to be had: disk full
    h.feeder.finish()
    assert "DISK FULL: cannot mark acknowledged rows sent" in caplog.text
    assert "no outbox row is deleted" in caplog.text
    assert unsent(conn) == 400 and conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert sync_status(conn)["backlog"] == 0  # delivered all the same
    conn.execute("PRAGMA max_page_count = 1073741823")  # space again
    h.feeder._blocked_until = 0.0
    h.feeder.finish()
    assert unsent(conn) == 0


def test_disk_full_while_recording_acks_keeps_them_in_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = ledger()
    add_rows(conn, 40)
    h, net = Harness(conn, batch=10, inflight=4), FakeTransport()
    h.cycle(net)
    store_write = h.feeder.store.write

    def full(*args: object, **kwargs: object) -> None:
        exc = sqlite3.OperationalError("database or disk is full")
        exc.sqlite_errorcode = 13  # SQLITE_FULL
        raise exc

    h.feeder.store.write = full  # type: ignore[method-assign]
    for mid in net.mids():
        h.window.on_ack(mid)
    assert h.feeder.step() is False
    assert "DISK FULL: cannot record 4 acknowledgements" in caplog.text
    assert [m.seq for m in h.pipeline.acked] == [1, 2, 3, 4]  # in memory, in order
    assert sync_status(conn)["backlog"] == 40 and unsent(conn) == 40
    h.feeder.store.write = store_write  # type: ignore[method-assign]
    h.feeder._blocked_until = 0.0
    h.feeder.finish()
    assert unsent(conn) == 0


def test_retention_prunes_only_what_was_delivered_and_keeps_the_newest() -> None:
    conn = ledger()
    add_rows(conn, 30)
    h, net = Harness(conn, inflight=2), FakeTransport()
    h.cycle(net)
    h.ack_all(net)
    h.feeder.finish()
    add_rows(conn, 2, "alert")
    assert unsent(conn) == 12
    assert prune(conn, 7, T0 + timedelta(days=6)) == (0, 0)
    rows, messages = prune(conn, 7, T0 + timedelta(days=8))
    assert rows == 20 and messages == 2  # seq 3 is unacknowledged: kept, with its rows
    assert unsent(conn) == 12
    status = sync_status(conn, T0)
    assert status["next_seq"] == 4 and status["backlog"] == 12 and status["backlog_alerts"] == 2
    # Everything sent and pruned: the newest row stays, so ids are never handed out twice.
    h.feeder.poke()
    for _ in range(5):
        h.cycle(net)
        h.ack_all(net)
    h.feeder.finish()
    assert unsent(conn) == 0
    prune(conn, 0, T0 + timedelta(days=30))
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
    add_rows(conn, 1, start=99)
    assert conn.execute("SELECT MAX(id) FROM outbox").fetchone()[0] == 33


def test_messages_whose_rows_are_not_marked_yet_are_not_pruned() -> None:
    conn = ledger()
    add_rows(conn, 30)
    h, net = Harness(conn), FakeTransport()
    h.cycle(net)
    for mid in net.mids():
        h.window.on_ack(mid)
    h.feeder._write([], h.pipeline.take_acks())  # recorded, not yet marked
    assert prune(conn, 0, T0 + timedelta(days=30)) == (0, 0)
    assert mark_sent(conn) == (3, 30)
    assert prune(conn, 0, T0 + timedelta(days=30)) == (29, 2)


def test_status_reports_the_backlog_age_and_last_ack() -> None:
    conn = ledger()
    add_rows(conn, 5)
    status = sync_status(conn, T0 + timedelta(seconds=90))
    assert status["backlog"] == 5 and status["oldest_unsent_age_s"] == 90.0
    assert status["last_ack_ts"] is None and status["next_seq"] == 1
    h, net = Harness(conn), FakeTransport()
    h.cycle(net)
    h.ack_all(net)
    status = sync_status(conn, T0)
    assert status["last_ack_ts"] == "2026-01-05T06:00:00.000Z" and status["next_seq"] == 2
    assert status["backlog"] == 0 and status["oldest_unsent_ts"] is None
    assert status["ledger_bytes"] == 0  # in memory: no file


def test_a_busy_ledger_only_delays_recording(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    conn = ledger()
    add_rows(conn, 10)
    h, net = Harness(conn), FakeTransport()
    h.cycle(net)
    h.window.on_ack(net.mids()[0])
    conn.execute("BEGIN")  # our own connection is inside a transaction: the write fails
    assert h.feeder.step() is False
    conn.execute("ROLLBACK")
    h.feeder._blocked_until = 0.0
    h.feeder.finish()
    assert unsent(conn) == 0 and "retrying" in caplog.text
