"""Schema and migrations (sqlite-utils), applied in order and recorded in PRAGMA user_version.

Quantities and money are TEXT holding exact decimals: SQLite's REAL would turn them to floats.
A migration is never edited once released: add a new one at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a heavy import: only a ledger that needs migrating pays for it
    import sqlite_utils

Migration = Callable[["sqlite_utils.Database"], None]


def _m001_ledger(db: sqlite_utils.Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("journal").create(
        {
            "seq": int,
            "id": str,
            "ts": str,
            "kind": str,
            "item": str,
            "location": str,
            "lot": str,
            "qty": str,
            "uom": str,
            "order_no": str,
            "work_center": str,
            "cost": str,
            "cause": str,
            "event": str,
            "reverses": str,
        },
        pk="seq",
        not_null={"id", "ts", "kind", "item", "location", "lot", "qty", "uom", "cost", "event"},
    )
    db.table("journal").create_index(["id"], unique=True)
    db.table("journal").create_index(["event"])
    db.table("journal").create_index(["order_no", "item"])
    db.table("journal").create_index(["item", "lot"])
    db.execute(
        "CREATE UNIQUE INDEX journal_reverses ON journal(reverses) WHERE reverses IS NOT NULL"
    )
    db.table("stock").create(
        {"item": str, "location": str, "lot": str, "qty": str, "fifo": int},
        pk=("item", "location", "lot"),
        not_null={"qty", "fifo"},
    )
    db.table("stock").create_index(["location", "item"])
    db.table("events").create({"key": str, "ts": str, "kind": str, "reply": str}, pk="key")
    db.table("counters").create({"point": str, "value": str, "ts": str}, pk="point")
    db.table("carries").create(
        {"bucket": str, "item": str, "exact": str, "posted": str}, pk=("bucket", "item")
    )
    db.table("standards").create(
        {"bucket": str, "item": str, "order_no": str, "work_center": str, "exact": str},
        pk=("bucket", "item"),
    )
    db.table("held").create(
        {
            "id": int,
            "key": str,
            "ts": str,
            "work_center": str,
            "reason": str,
            "command": str,
            "status": str,
            "resolved_ts": str,
        },
        pk="id",
        not_null={"key", "ts", "reason", "command", "status"},
    )
    db.table("held").create_index(["key"], unique=True)
    db.table("held").create_index(["status"])
    db.table("orders").create(
        {
            "order_no": str,
            "work_center": str,
            "item": str,
            "qty": str,
            "status": str,
            "started_ts": str,
            "closed_ts": str,
        },
        pk="order_no",
    )
    db.table("orders").create_index(["work_center", "status"])
    db.table("counts").create(
        {
            "id": int,
            "ts": str,
            "item": str,
            "location": str,
            "lot": str,
            "book": str,
            "counted": str,
            "diff": str,
            "value": str,
            "event": str,
        },
        pk="id",
    )
    db.table("master_items").create({"code": str, "data": str, "ts": str}, pk="code")
    db.table("master_boms").create({"item": str, "data": str, "ts": str}, pk="item")
    db.table("outbox").create(
        {"id": int, "stream": str, "payload": str, "created_ts": str, "sent_ts": str},
        pk="id",
        not_null={"stream", "payload", "created_ts"},
    )
    db.execute("CREATE INDEX outbox_unsent ON outbox(id) WHERE sent_ts IS NULL")


def _m002_sync(db: sqlite_utils.Database) -> None:
    """The publisher's P/tx messages, stored with their seq before they are published.

    A message is outbox rows first_id..last_id of stream 'tx'; a message built but not
    acknowledged is re-sent after a restart with the same seq and the same bytes, rebuilt
    from those rows. The second index lets the publisher find unsent alerts without walking
    a backlog of unsent transactions.
    """
    db.table("messages").create(
        {
            "seq": int,
            "first_id": int,
            "last_id": int,
            "count": int,
            "created_ts": str,
            "acked_ts": str,
        },
        pk="seq",
        not_null={"first_id", "last_id", "count", "created_ts"},
    )
    db.execute("CREATE INDEX messages_unacked ON messages(seq) WHERE acked_ts IS NULL")
    db.execute("CREATE INDEX outbox_unsent_stream ON outbox(stream, id) WHERE sent_ts IS NULL")


def _m003_held_per_occurrence(db: sqlite_utils.Database) -> None:
    """A held event is one row per occurrence: a PLC that restarts and counts 1 -> 2 again
    is held again. Its key says what was held (``plc3.good:1->2/good``) and may repeat; its
    id is what ``held list``, ``release`` and ``discard`` name. Nothing looks a held event
    up by key, so the index goes (one index less to write per hold)."""
    db.execute("DROP INDEX IF EXISTS idx_held_key")


def _m004_retention(db: sqlite_utils.Database) -> None:
    """What outlives the journal rows retention prunes: per order, item and lot, the sum
    of the consumption (and reversals) the genealogy report adds up, with the unit and
    work center of its last row and the seq and ts of its first and last. Filled when rows
    are pruned, never on the hot path; the lot index answers `genealogy --lot`."""
    db.execute(
        "CREATE TABLE genealogy (order_no TEXT NOT NULL, item TEXT NOT NULL, lot TEXT NOT NULL,"
        " qty TEXT NOT NULL, uom TEXT NOT NULL, work_center TEXT, first_seq INTEGER NOT NULL,"
        " first_ts TEXT NOT NULL, last_ts TEXT NOT NULL, PRIMARY KEY (order_no, item, lot))"
        " WITHOUT ROWID"
    )
    db.execute("CREATE INDEX genealogy_lot ON genealogy(lot)")


def _m005_lean_rows(db: sqlite_utils.Database) -> None:
    """A 'tx' outbox row points at its journal row (tx: the journal seq) instead of holding
    the transaction's JSON again: its payload is '' and the publisher has SQLite build the
    JSON from the journal row (outbox_pages.TX_JSON). A row whose stored JSON is not what
    SQLite would build (text that JSON escapes) keeps it, so a converted ledger publishes
    and replays the same bytes as before. The journal's event index and the outbox's
    unsent-id index go: no query reads them (every unsent read names its stream, which
    outbox_unsent_stream serves), and each was one more b-tree to write per row."""
    db.execute("ALTER TABLE outbox ADD COLUMN tx INTEGER")
    db.execute(
        "UPDATE outbox SET tx = (SELECT seq FROM journal WHERE id = outbox.payload ->> '$.id')"
        " WHERE stream = 'tx'"
    )
    db.execute(
        "UPDATE outbox SET payload = '' WHERE stream = 'tx' AND tx IS NOT NULL AND payload = ("
        "SELECT json_object('id', j.id, 'ts', j.ts, 'kind', j.kind, 'item', j.item,"
        " 'location', j.location, 'qty', j.qty, 'uom', j.uom, 'lot', NULLIF(j.lot, ''),"
        " 'order', j.order_no, 'work_center', j.work_center, 'cost', j.cost, 'cause', j.cause)"
        " FROM journal AS j WHERE j.seq = outbox.tx)"
    )
    db.execute("DROP INDEX IF EXISTS idx_journal_event")
    db.execute("DROP INDEX IF EXISTS outbox_unsent")


def _m006_lot_expiry(db: sqlite_utils.Database) -> None:
    """A lot's expiry date (ISO, YYYY-MM-DD) is the lot's, not a stock row's: one row per
    item and lot that was given one, whatever its locations. alerts holds which once-only
    alerts the lot has raised (bits of domain.expiry.ALERT_BIT), so a restart raises none
    again. Lots without an expiry have no row: a ledger without dated lots stays as lean
    as before."""
    db.execute(
        "CREATE TABLE lots (item TEXT NOT NULL, lot TEXT NOT NULL, expiry TEXT NOT NULL,"
        " alerts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (item, lot)) WITHOUT ROWID"
    )


def _m007_scrap_reason(db: sqlite_utils.Database) -> None:
    """A scrap posting's reason code (and its reversal's), NULL on every other row. Rows
    posted before it have none: `report scrap` shows their scrap as "unspecified". No
    index: the scrap report reads the scrap rows it selects by kind and order anyway."""
    db.execute("ALTER TABLE journal ADD COLUMN reason TEXT")


def _m008_indexes_that_append(db: sqlite_utils.Database) -> None:
    """The journal's indexes take a posting's rows at their end, as the table does. An index
    led by the item put each BOM line's new entry at the end of that item's own run, on a
    page of its own: a posting of a 20-line BOM wrote some 20 pages of each such index, the
    most of all it wrote to an aged ledger. The order's rows follow one another in seq, so
    an index on the order alone takes a window's rows on one or two pages and still answers
    the order's genealogy and `transactions --order`; what asks by item or lot reads the
    journal from its newest row, or the genealogy summary's lot index."""
    db.execute("DROP INDEX IF EXISTS idx_journal_item_lot")
    db.execute("DROP INDEX IF EXISTS idx_journal_order_no_item")
    db.execute(
        "CREATE INDEX IF NOT EXISTS journal_order ON journal(order_no) WHERE order_no IS NOT NULL"
    )


MIGRATIONS: tuple[Migration, ...] = (
    _m001_ledger,
    _m002_sync,
    _m003_held_per_occurrence,
    _m004_retention,
    _m005_lean_rows,
    _m006_lot_expiry,
    _m007_scrap_reason,
    _m008_indexes_that_append,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date inside one transaction; returns the new version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"ledger schema version {version} is newer than this lineside ({len(MIGRATIONS)}):"
            " upgrade lineside or restore a matching backup"
        )
    if version == len(MIGRATIONS):
        return int(version)
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for index in range(version, len(MIGRATIONS)):
            MIGRATIONS[index](db)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite has rolled back by itself after SQLITE_FULL
            conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
