"""The ledger file: how it is opened, the journal's shapes, and what every connection shares
(the meta table, which SQLite errors are the file's own trouble). The unit of work is in
unit.py."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from lineside.agent.domain.backflush import Move
from lineside.agent.domain.model import NO_LOT
from lineside.agent.inputs import decimal_text
from lineside.agent.ledger.schema import migrate

BUSY_TIMEOUT_MS = 30_000
# The ledger holds the plant's stock and costs: never readable by every user, whatever the
# umask (0640 at most; the umask may take more away). SQLite would make it 0644.
LEDGER_MODE = 0o640
DATA_DIR_MODE = 0o750


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the ledger with the durability settings it relies on."""
    path.parent.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    _create(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn)
    return conn


def _create(path: Path) -> None:
    """Create a new ledger file with LEDGER_MODE before SQLite opens it: SQLite gives its
    -wal and -shm files the mode of the database file."""
    if str(path) == ":memory:":  # SQLite's own database in memory, no file (unit tests)
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, LEDGER_MODE)
    except FileExistsError:
        return
    os.close(fd)


@dataclass(frozen=True, slots=True)
class Posting:
    """Where a move came from: the journal fields that are not in the Move itself."""

    ts: datetime
    event: str
    cause: str
    order_no: str | None = None
    work_center: str | None = None
    reverses: str | None = None
    reason: str | None = None  # a scrap posting's reason code (and its reversal's)


def uuid4_strings(count: int) -> list[str]:
    """count random (version 4) UUIDs from one read of the OS's randomness."""
    return _uuid_strings(bytearray(os.urandom(16 * count)), 0x40)


def uuid7_strings(count: int) -> list[str]:
    """count time-ordered (version 7, RFC 9562) UUIDs: the Unix time in milliseconds, then
    random bits. A transaction's id: new ids land at the end of the journal's id index
    instead of on a random page of it, which on an aged ledger rewrote a page per row."""
    raw = bytearray(os.urandom(16 * count))
    now = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    for start in range(0, 16 * count, 16):
        raw[start : start + 6] = now
    return _uuid_strings(raw, 0x70)


def _uuid_strings(raw: bytearray, version: int) -> list[str]:
    out = []
    for start in range(0, len(raw), 16):
        raw[start + 6] = (raw[start + 6] & 0x0F) | version
        raw[start + 8] = (raw[start + 8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw[start : start + 16].hex()
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dec(text: str | None) -> Decimal:
    return Decimal(text) if text else Decimal(0)


def tx_payload(row: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    """A journal row as the MQTT contract's transaction (docs/mqtt.md)."""
    return transaction(
        row["id"],
        row["ts"],
        row["kind"],
        row["item"],
        row["location"],
        row["qty"],
        row["uom"],
        row["lot"],
        row["order_no"],
        row["work_center"],
        row["cost"],
        row["cause"],
        row["reason"],
    )


def transaction(
    tx_id: str,
    ts: str,
    kind: str,
    item: str,
    location: str,
    qty: str,
    uom: str,
    lot: str | None,
    order_no: str | None,
    work_center: str | None,
    cost: str,
    cause: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """The MQTT contract's transaction; the lot-less row (NO_LOT) has lot null, and only a
    scrap posting (or its reversal) has a reason."""
    tx = {
        "id": tx_id,
        "ts": ts,
        "kind": kind,
        "item": item,
        "location": location,
        "qty": qty,
        "uom": uom,
        "lot": lot or None,
        "order": order_no,
        "work_center": work_center,
        "cost": cost,
        "cause": cause,
    }
    return tx if reason is None else {**tx, "reason": reason}


def move_transaction(tx_id: str, ts: str, move: Move, uom: str, posting: Posting) -> dict[str, Any]:
    """A move about to be posted as the MQTT contract's transaction."""
    return transaction(
        tx_id,
        ts,
        move.kind,
        move.item,
        move.location,
        decimal_text(move.qty),
        uom,
        move.lot,
        posting.order_no,
        posting.work_center,
        decimal_text(move.cost),
        posting.cause,
        posting.reason,
    )


def rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> Iterator[sqlite3.Row]:
    """Read-only query helper for reports: rows with column access by name."""
    cur = conn.execute(sql, params)
    cur.row_factory = sqlite3.Row
    yield from cur


def meta(conn: sqlite3.Connection, key: str) -> str | None:
    """A value of the meta table (the master data's version, the Sparkplug bdSeq), or None."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
        " DO UPDATE SET value = excluded.value",
        (key, value),
    )


# SQLite's primary result codes that are the ledger file's trouble, whatever the command.
_LEDGER_FAILURES = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOLFS,
        sqlite3.SQLITE_AUTH,
        sqlite3.SQLITE_NOTADB,
    }
)


def ledger_failure(exc: BaseException) -> bool:
    """Whether exc is the ledger's failure (disk full, I/O error, busy, read-only, closed),
    which no command can be blamed for, rather than the command's own (a constraint it
    broke, a bug): the first stops all writing, the second refuses that command alone."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = exc.sqlite_errorcode
    if code is None:  # raised by Python's sqlite3 itself: a closed ledger, or wrong bindings
        return "closed" in str(exc)
    return code & 0xFF in _LEDGER_FAILURES


__all__ = [
    "NO_LOT",
    "Posting",
    "connect",
    "dec",
    "iso",
    "ledger_failure",
    "meta",
    "move_transaction",
    "rows",
    "set_meta",
    "transaction",
    "tx_payload",
    "uuid4_strings",
    "uuid7_strings",
]
