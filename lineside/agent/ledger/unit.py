"""The unit of work: one SQLite transaction that rolls back unless committed, with every
read and write a handler makes (stock, journal, outbox, carries here; the smaller tables
in registers.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from lineside.agent.domain.backflush import Carry, Move
from lineside.agent.domain.model import NO_LOT, LotBalance
from lineside.agent.inputs import decimal_text
from lineside.agent.ledger.registers import Registers
from lineside.agent.ledger.store import Posting, iso, move_transaction, uuid7_strings

# Built once: json.dumps with separators= would build a new encoder for every row.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


class UnitOfWork(Registers):
    """All reads and writes of one command; nothing is kept unless commit() is called."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self._open = False
        self.posted: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        # Read caches, valid while this transaction holds the write lock (nobody else can
        # write): a batch of completions reads a BOM's lots and carries once, not per unit.
        self._lots: dict[tuple[str, str], list[LotBalance]] = {}
        self._carries: dict[str, dict[str, Carry]] = {}
        # Carries are written once, at commit: a batch of 100 completions writes each
        # component's carry once instead of 100 times.
        self._dirty: dict[tuple[str, str], Carry] = {}

    @contextmanager
    def attempt(self, savepoint: bool = True) -> Iterator[None]:
        """A part of the unit of work that, if it raises, is undone alone: its rows (by a
        savepoint) and what it left in memory, while the rest of the unit of work stays.

        savepoint False undoes only what it left in memory: for a caller that knows no row
        was written (see Ledger.execute_batch), without the cost of a statement journal.
        """
        posted, alerts, unwritten = len(self.posted), len(self.alerts), dict(self._dirty)
        if savepoint:
            self.conn.execute("SAVEPOINT attempt")
        try:
            yield
        except BaseException:
            # SQLite may have rolled back the whole transaction (SQLITE_FULL can), taking the
            # savepoint with it; __exit__ then has nothing left to undo either.
            if savepoint and self.conn.in_transaction:
                self.conn.execute("ROLLBACK TO attempt")
                self.conn.execute("RELEASE attempt")
            self.forget(unwritten)
            del self.posted[posted:], self.alerts[alerts:]
            raise
        if savepoint:
            self.conn.execute("RELEASE attempt")

    def forget(self, unwritten: dict[tuple[str, str], Carry] | None = None) -> None:
        """Drop the read caches after a rollback; unwritten: the carries still to write."""
        self._lots.clear()
        self._carries.clear()
        self._orders.clear()
        self._dirty = dict(unwritten or {})

    def __enter__(self) -> UnitOfWork:
        # IMMEDIATE takes the write lock now, so a CLI and the daemon serialise cleanly.
        self.conn.execute("BEGIN IMMEDIATE")
        self._open = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._open:
            # SQLite may have rolled back already (SQLITE_FULL does); a second ROLLBACK
            # would raise and hide the real error.
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    # SQLite has undone the transaction itself; a raise here would hide the
                    # error that got us here (on a full disk it read "cannot rollback")
                    if exc[1] is None:
                        raise
            self._open = False
            self.posted.clear()
            self.alerts.clear()
            self.forget()

    def commit(self) -> None:
        self._write_carries()
        self.conn.execute("COMMIT")
        self._open = False

    # -- idempotency -------------------------------------------------------------------
    def seen(self, key: str) -> str | None:
        """The stored reply of an event already applied, or None."""
        found = self.seen_as(key)
        return None if found is None else found[1]

    def seen_as(self, key: str) -> tuple[str, str] | None:
        """The kind of command an event key was used for and its stored reply, or None."""
        row = self.conn.execute("SELECT kind, reply FROM events WHERE key = ?", (key,))
        found = row.fetchone()
        return None if found is None else (str(found[0]), str(found[1] or ""))

    def remember(self, key: str, kind: str, ts: datetime, reply: str = "") -> None:
        self.conn.execute(
            "INSERT INTO events (key, ts, kind, reply) VALUES (?, ?, ?, ?)",
            (key, iso(ts), kind, reply),
        )

    # -- stock and journal -------------------------------------------------------------
    def lots(self, item: str, location: str) -> list[LotBalance]:
        return self.lots_of([item], location).get(item, [])

    def balance(self, item: str, location: str, lot: str) -> Decimal:
        row = self.conn.execute(
            "SELECT qty FROM stock WHERE item = ? AND location = ? AND lot = ?",
            (item, location, lot),
        ).fetchone()
        return Decimal(row[0]) if row else Decimal(0)

    def on_hand(self, item: str) -> list[Decimal]:
        """The item's balances that are not zero, at every location and lot."""
        found = self.conn.execute("SELECT qty FROM stock WHERE item = ?", (item,)).fetchall()
        return [q for (text,) in found if (q := Decimal(text))]

    def post(self, move: Move, uom: str, posting: Posting) -> dict[str, Any]:
        """Apply a move to stock and journal it, with its outbox row; returns the transaction."""
        return self.post_many([(move, uom)], posting)[0]

    def post_many(
        self, moves: Sequence[tuple[Move, str]], posting: Posting
    ) -> list[dict[str, Any]]:
        """Apply moves (each with its item's unit) to stock, journal them and announce them
        in the outbox, in order; returns the transactions as the MQTT contract has them."""
        ts = iso(posting.ts)
        ids = uuid7_strings(len(moves))
        payloads = [
            move_transaction(ids[n], ts, move, uom, posting) for n, (move, uom) in enumerate(moves)
        ]
        self.conn.executemany(
            "INSERT INTO journal (id, ts, kind, item, location, lot, qty, uom, order_no,"
            " work_center, cost, cause, event, reverses, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    p["id"],
                    ts,
                    p["kind"],
                    p["item"],
                    p["location"],
                    move.lot,
                    p["qty"],
                    p["uom"],
                    posting.order_no,
                    posting.work_center,
                    p["cost"],
                    posting.cause,
                    posting.event,
                    posting.reverses,
                    posting.reason,
                )
                for p, (move, _) in zip(payloads, moves, strict=True)
            ],
        )
        # A new lot row queues by the journal seq of the move that created it: FIFO is arrival
        # order. Rows inserted in one statement get consecutive rowids (INTEGER PRIMARY KEY).
        last = self.conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        first = last - len(moves) + 1
        # New balances come from the lots cache (read once, kept equal to the table), so
        # the upsert needs no read and no SQL arithmetic on the decimal text.
        for location in {m.location for m, _ in moves}:
            self.lots_of([m.item for m, _ in moves if m.location == location], location)
        rows = []
        for i, (move, _) in enumerate(moves):
            balance, requeued = self._moved(move)
            text = decimal_text(balance)
            rows.append((move.item, move.location, move.lot, text, first + i, requeued))
        # A row whose balance comes back above zero as new stock (see _new_stock) queues
        # behind the lots that arrived meanwhile.
        self.conn.executemany(
            "INSERT INTO stock (item, location, lot, qty, fifo) VALUES (?1, ?2, ?3, ?4, ?5)"
            " ON CONFLICT (item, location, lot) DO UPDATE SET qty = excluded.qty,"
            " fifo = CASE WHEN ?6 THEN excluded.fifo ELSE fifo END",
            rows,
        )
        self.conn.executemany(
            "INSERT INTO outbox (stream, payload, created_ts, tx) VALUES ('tx', ?, ?, ?)",
            [(_stored_json(p), ts, first + i) for i, p in enumerate(payloads)],
        )
        self.posted.extend(payloads)
        return payloads

    def transaction(self, tx_id: str) -> dict[str, Any] | None:
        """A journal row by its id, with the journal's column names."""
        cur = self.conn.execute("SELECT * FROM journal WHERE id = ?", (tx_id,))
        cur.row_factory = sqlite3.Row
        row: sqlite3.Row | None = cur.fetchone()
        return None if row is None else dict(row)

    def reversal_of(self, tx_id: str) -> str | None:
        row = self.conn.execute("SELECT id FROM journal WHERE reverses = ?", (tx_id,)).fetchone()
        return None if row is None else str(row[0])

    # -- outbox ------------------------------------------------------------------------
    def outbox(self, stream: str, payload: dict[str, Any], ts: datetime) -> None:
        self.conn.execute(
            "INSERT INTO outbox (stream, payload, created_ts) VALUES (?, ?, ?)",
            (stream, _COMPACT.encode(payload), iso(ts)),
        )

    def alert(self, kind: str, ts: datetime, **fields: Any) -> None:
        payload = {"kind": kind, "ts": iso(ts), **fields}
        self.outbox("alert", payload, ts)
        self.alerts.append(payload)

    # -- carries and standards -----------------------------------------------------------
    def carries(self, bucket: str, items: Sequence[str]) -> dict[str, Carry]:
        known = self._carries.get(bucket)
        if known is None:
            rows = self.conn.execute(
                "SELECT item, exact, posted FROM carries WHERE bucket = ?", (bucket,)
            ).fetchall()
            known = self._carries[bucket] = {
                r[0]: Carry(Decimal(r[1]), Decimal(r[2])) for r in rows
            }
            for (dirty_bucket, item), carry in self._dirty.items():
                if dirty_bucket == bucket:
                    known[item] = carry
        return {item: known[item] for item in items if item in known}

    def lots_of(self, items: Sequence[str], location: str) -> dict[str, list[LotBalance]]:
        """FIFO balances of several items at once (one query for a whole BOM), each with its
        lot's expiry."""
        missing = [item for item in items if (item, location) not in self._lots]
        if missing:
            for item in missing:
                self._lots[(item, location)] = []
            marks = ",".join("?" * len(missing))
            for item, lot, qty, expiry in self.conn.execute(
                "SELECT s.item, s.lot, s.qty, l.expiry FROM stock AS s LEFT JOIN lots AS l"
                f" USING (item, lot) WHERE s.location = ? AND s.item IN ({marks})"
                " ORDER BY s.item, s.fifo, s.lot",
                (location, *missing),
            ):
                self._lots[(item, location)].append(LotBalance(lot, Decimal(qty), _day(expiry)))
        return {item: list(lots) for item in items if (lots := self._lots[(item, location)])}

    def _moved(self, move: Move) -> tuple[Decimal, bool]:
        """Apply a move to the lots cache (loaded for its item and location): the new
        balance, and whether the row went to the back of the FIFO queue (see post_many)."""
        lots = self._lots[(move.item, move.location)]
        for index, balance in enumerate(lots):
            if balance.lot == move.lot:
                moved = LotBalance(move.lot, balance.qty + move.qty, balance.expiry)
                if balance.qty <= 0 < moved.qty and _new_stock(move):
                    del lots[index]
                    lots.append(moved)
                    return moved.qty, True
                lots[index] = moved
                return moved.qty, False
        expiry = None if move.lot == NO_LOT else self.lot_expiry(move.item, move.lot)
        lots.append(LotBalance(move.lot, move.qty, expiry))  # a new row is the newest in FIFO
        return move.qty, False

    def set_lot_expiry(self, item: str, lot: str, expiry: date) -> None:
        super().set_lot_expiry(item, lot, expiry)
        # the lot's rows in the cache have the old date: read the item's rows again
        for key in [k for k in self._lots if k[0] == item]:
            del self._lots[key]

    def save_carries(self, bucket: str, carries: dict[str, Carry]) -> None:
        """Remembered now, written at commit (read back from memory until then)."""
        for item, carry in carries.items():
            self._dirty[(bucket, item)] = carry
        if bucket in self._carries:
            self._carries[bucket].update(carries)

    def _write_carries(self) -> None:
        if not self._dirty:
            return
        self.conn.executemany(
            "INSERT INTO carries (bucket, item, exact, posted) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (bucket, item) DO UPDATE SET exact = excluded.exact,"
            " posted = excluded.posted",
            [(b, i, str(c.exact), str(c.posted)) for (b, i), c in self._dirty.items()],
        )
        self._dirty.clear()

    def save_carry(self, bucket: str, item: str, carry: Carry) -> None:
        self.save_carries(bucket, {item: carry})

    def add_standard(
        self, bucket: str, item: str, qty: Decimal, order_no: str | None, work_center: str
    ) -> None:
        row = self.conn.execute(
            "SELECT exact FROM standards WHERE bucket = ? AND item = ?", (bucket, item)
        ).fetchone()
        total = qty + (Decimal(row[0]) if row else Decimal(0))
        self.conn.execute(
            "INSERT INTO standards (bucket, item, order_no, work_center, exact)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (bucket, item) DO UPDATE SET exact = excluded.exact",
            (bucket, item, order_no, work_center, str(total)),
        )


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _stored_json(transaction: dict[str, Any]) -> str:
    """What a 'tx' outbox row stores: '' when SQLite rebuilds the same bytes from the
    journal row (outbox_pages.TX_JSON), the JSON itself when the text holds anything JSON
    escapes (a quote, a backslash, a control or non-ASCII character), which SQLite's
    json_object would write otherwise than Python's encoder."""
    text = _COMPACT.encode(transaction)
    return "" if "\\" not in text else text


def _new_stock(move: Move) -> bool:
    """Stock that was not on the shelf before: a lot received again after it ran out, or
    stock of unknown origin on the lot-less row (a count's gain), which FIFO then takes
    after every real lot so that consumption keeps its genealogy. A reversal or a count of
    a named lot gives back the same material, which keeps its place in the queue."""
    return move.lot == NO_LOT or move.kind == "receipt"
