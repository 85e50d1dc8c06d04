"""History retention: journal rows the broker acknowledged are pruned once older than
ledger.keep_days, a batch at a time off the hot path (the sync store thread), after what
must outlive them is folded into the genealogy summary and, with ledger.archive_dir,
after they are appended to a daily gzip NDJSON file.

Only a prefix of the journal is ever pruned: lowest seqs first, stopping at the first row
that is too young or not yet acknowledged. So the summary holds exactly the rows before
the kept ones, and a report reads the summary first and the journal after it. The newest
row is always kept: SQLite gives a new row max(seq)+1, and stock's FIFO order relies on a
seq never being handed out twice.

Balances (stock), carries, standards, counters, held events, orders and cycle counts are
tables of their own and are never pruned. Idempotency keys (events) older than keep_days
are: a request retried after that long runs again.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineside.agent.ledger.outbox import transaction
from lineside.agent.ledger.queries import GENEALOGY_KINDS
from lineside.agent.ledger.store import DATA_DIR_MODE, LEDGER_MODE, iso, rows, tx_payload

if TYPE_CHECKING:
    from lineside.agent.config import ConfigError, LoadedConfig

log = logging.getLogger("lineside.retention")

BATCH_ROWS = 500  # per transaction: the writer never waits long for the write lock
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class ArchiveFailed(Exception):
    """The archive could not be written: nothing is pruned."""


@dataclass(frozen=True, slots=True)
class Retention:
    keep_days: Decimal
    archive_dir: Path | None = None


def retention_of(loaded: LoadedConfig) -> Retention:
    """The ledger section's retention, with archive_dir resolved against the config file."""
    cfg = loaded.config.ledger
    archive = None if cfg.archive_dir is None else loaded.resolve(cfg.archive_dir)
    return Retention(cfg.keep_days, archive)


# -- pruning ---------------------------------------------------------------------------------
def prune_history(
    conn: sqlite3.Connection,
    keep_days: Decimal,
    now: datetime,
    archive_dir: Path | None = None,
    limit: int = BATCH_ROWS,
) -> tuple[int, int]:
    """Prune one batch of at most limit journal rows (and as many idempotency keys) older
    than keep_days; returns how many of each went (limit: there may be more). Raises
    ArchiveFailed, having pruned nothing, when archive_dir cannot take the rows."""
    cutoff = iso(now - timedelta(days=float(keep_days)))
    batch = _prunable(conn, cutoff, limit)
    if batch and archive_dir is not None:
        append_archive(archive_dir, batch)
    with transaction(conn):
        if batch:
            _fold_genealogy(conn, batch)
            conn.execute(
                "DELETE FROM journal WHERE seq BETWEEN ? AND ?", (batch[0]["seq"], batch[-1]["seq"])
            )
        keys = conn.execute(
            "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE ts < ? LIMIT ?)",
            (cutoff, limit),
        ).rowcount
    return len(batch), keys


def _prunable(conn: sqlite3.Connection, cutoff: str, limit: int) -> list[sqlite3.Row]:
    """The oldest journal rows, in seq order, up to the first that is newer than cutoff,
    not yet acknowledged, or the newest row."""
    below = acknowledged_below(conn)
    found = []
    for row in rows(
        conn, "SELECT * FROM journal WHERE seq < ? ORDER BY seq LIMIT ?", (below, limit)
    ):
        if row["ts"] >= cutoff:
            break
        found.append(row)
    return found


def acknowledged_below(conn: sqlite3.Connection) -> int:
    """A seq below which every journal row's transaction was acknowledged by the broker:
    that of the oldest outbox transaction not marked sent, at most the newest row's.

    Each journal row's outbox row is written in the same transaction and in the same
    order, and rows are marked sent only once the broker acknowledged their message. The
    newest seq is read first, so that a row committed in between is never counted sent.
    """
    newest = conn.execute("SELECT MAX(seq) FROM journal").fetchone()[0]
    if newest is None:
        return 0
    unsent = conn.execute(
        "SELECT tx FROM outbox WHERE stream = 'tx' AND sent_ts IS NULL ORDER BY id LIMIT 1"
    ).fetchone()
    if unsent is None:
        return int(newest)
    # tx is the journal seq of the row (every tx row has it since schema version 5)
    return 0 if unsent[0] is None else min(int(unsent[0]), int(newest))


def _fold_genealogy(conn: sqlite3.Connection, batch: Sequence[sqlite3.Row]) -> None:
    """Add the batch's consumption per order, item and lot to the genealogy summary."""
    sums: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in batch:
        if row["order_no"] is None or row["kind"] not in GENEALOGY_KINDS:
            continue
        key = (row["order_no"], row["item"], row["lot"])
        entry = sums.get(key)
        if entry is None:
            entry = sums[key] = _summary_entry(conn, key, row)
        entry["qty"] += Decimal(row["qty"])
        entry.update(uom=row["uom"], work_center=row["work_center"], last_ts=row["ts"])
    conn.executemany(
        "INSERT INTO genealogy (order_no, item, lot, qty, uom, work_center, first_seq,"
        " first_ts, last_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (order_no, item, lot) DO UPDATE SET qty = excluded.qty,"
        " uom = excluded.uom, work_center = excluded.work_center, last_ts = excluded.last_ts",
        [
            (
                *key,
                str(e["qty"]),
                e["uom"],
                e["work_center"],
                e["first_seq"],
                e["first_ts"],
                e["last_ts"],
            )
            for key, e in sums.items()
        ],
    )


def _summary_entry(
    conn: sqlite3.Connection, key: tuple[str, str, str], first: sqlite3.Row
) -> dict[str, Any]:
    old = conn.execute(
        "SELECT qty, first_seq, first_ts FROM genealogy WHERE order_no = ? AND item = ?"
        " AND lot = ?",
        key,
    ).fetchone()
    if old is None:
        return {"qty": Decimal(0), "first_seq": first["seq"], "first_ts": first["ts"]}
    return {"qty": Decimal(old[0]), "first_seq": old[1], "first_ts": old[2]}


# -- the archive -----------------------------------------------------------------------------
def append_archive(directory: Path, batch: Sequence[sqlite3.Row]) -> None:
    """Append the rows, as the MQTT contract's transactions, one JSON object a line, to
    directory/journal-YYYY-MM-DD.ndjson.gz (the day of each row's ts), one gzip member per
    batch and file, fsynced. A member cut short (disk full) is truncated away again, so
    that each file stays valid gzip."""
    by_day: dict[str, list[str]] = {}
    for row in batch:
        by_day.setdefault(row["ts"][:10], []).append(_COMPACT.encode(tx_payload(row)) + "\n")
    try:
        new_dir = not directory.exists()
        directory.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
        for day, lines in by_day.items():
            _append(directory / f"journal-{day}.ndjson.gz", "".join(lines).encode("utf-8"))
        _fsync_dir(directory)
        if new_dir:
            _fsync_dir(directory.parent)
    except OSError as exc:
        raise ArchiveFailed(f"cannot write the archive in {directory}: {exc}") from exc


def _append(path: Path, data: bytes) -> None:
    member = gzip.compress(data, mtime=0)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LEDGER_MODE)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(member)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def archive_problems(loaded: LoadedConfig) -> list[ConfigError]:
    """What `lineside check` finds wrong with ledger.archive_dir: not a folder, or one (or,
    not there yet, the nearest folder above it) the agent cannot write in."""
    retention = retention_of(loaded)
    if retention.archive_dir is None:
        return []
    path = retention.archive_dir
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if existing == path and not path.is_dir():
        problem = f"{path} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"cannot write in {existing}"
    return [] if problem is None else [loaded.error(("ledger", "archive_dir"), problem)]


class Pruner:
    """The store thread's retention: a batch per call, one log line per round, and what
    stops it logged once."""

    def __init__(self, batch_rows: int = BATCH_ROWS) -> None:
        self.batch_rows = batch_rows
        self.pruned = 0  # journal rows and request ids, for lineside_pruned_rows_total
        self._round = [0, 0]  # journal rows and request ids of the round under way
        self._problem: str | None = None

    def batch(self, conn: sqlite3.Connection, retention: Retention, now: datetime) -> bool:
        """Prune one batch; True when there may be more to prune at once."""
        try:
            done = prune_history(
                conn, retention.keep_days, now, retention.archive_dir, self.batch_rows
            )
        except ArchiveFailed as exc:
            if self._problem != str(exc):
                log.error("retention: nothing pruned until the archive can be written: %s", exc)
            self._problem = str(exc)
            return False
        if self._problem is not None:
            log.warning("retention: the archive can be written again, pruning resumes")
            self._problem = None
        self.pruned += sum(done)
        self._round = [self._round[0] + done[0], self._round[1] + done[1]]
        more = max(done) >= self.batch_rows
        if not more and any(self._round):
            log.info(
                "retention: pruned %d journal rows and %d request ids older than %s days",
                *self._round,
                retention.keep_days,
            )
            self._round = [0, 0]
        return more
