"""Bytes per row of each table and index of a ledger, from SQLite's dbstat virtual table.

Where a ledger's bytes are: for every b-tree (a table or an index), its pages and bytes,
the rows of its table, its entries (a partial index holds fewer), the bytes it costs per
row of its table, the payload (the stored record itself) per entry, and how full its pages
are. The rest of a page is SQLite's own: cell headers, pointers, free space.

    .venv/bin/python bench/rowbytes.py LEDGER [--table journal --table outbox ...]

Without --table: every table and index. bench/endurance.py prints the same for journal,
outbox and messages. Opens the file read-only (a ledger in use may be measured; a WAL not
yet checkpointed is read as the database it stands for).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROW_BYTES_SQL = """
SELECT s.name, m.type, m.tbl_name, COUNT(*), SUM(s.pgsize), SUM(s.payload), SUM(s.unused),
       SUM(CASE WHEN s.pagetype = 'leaf' OR (m.type = 'index' AND s.pagetype = 'internal')
                THEN s.ncell ELSE 0 END)
FROM dbstat AS s JOIN sqlite_schema AS m ON m.name = s.name
GROUP BY s.name ORDER BY m.tbl_name, m.type DESC, s.name
"""


@dataclass(frozen=True)
class Btree:
    """One table's or index's share of the file."""

    name: str
    kind: str  # "table" or "index"
    table: str
    pages: int
    bytes: int
    payload: int  # the records' own bytes (keys and values as stored)
    unused: int  # free bytes inside its pages
    entries: int  # rows of a table, entries of an index (a partial one holds fewer)
    rows: int  # rows of the table it belongs to

    @property
    def per_row(self) -> float:
        return self.bytes / self.rows if self.rows else 0.0

    @property
    def payload_per_entry(self) -> float:
        return self.payload / self.entries if self.entries else 0.0

    @property
    def fill(self) -> float:
        return 1 - self.unused / self.bytes if self.bytes else 0.0


def open_read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)


def row_bytes(db: Path) -> list[Btree]:
    """Every b-tree of the ledger file, tables before their indexes."""
    with contextlib.closing(open_read_only(db)) as conn:
        try:
            found = conn.execute(ROW_BYTES_SQL).fetchall()
        except sqlite3.OperationalError as exc:
            raise SystemExit(f"this SQLite ({sqlite3.sqlite_version}) has no dbstat table"
                             f" (built without SQLITE_ENABLE_DBSTAT_VTAB): {exc}") from exc
        tables = {row[2] for row in found}
        counts = {t: int(conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0])
                  for t in tables}
    return [Btree(name, kind, table, int(pages), int(size), int(payload), int(unused),
                  int(entries), counts[table])
            for name, kind, table, pages, size, payload, unused, entries in found]


def table_lines(btrees: Sequence[Btree], tables: Sequence[str] = ()) -> list[str]:
    """A fixed-width table of the b-trees of these tables (all when none is named)."""
    chosen = [b for b in btrees if not tables or b.table in tables]
    head = ("b-tree", "of table", "pages", "KiB", "rows", "entries", "B/row", "payload B/entry",
            "pages full")
    rows = [head] + [
        (b.name, b.table if b.kind == "index" else "", str(b.pages), f"{b.bytes / 1024:,.0f}",
         str(b.rows), str(b.entries), f"{b.per_row:,.1f}", f"{b.payload_per_entry:,.1f}",
         f"{100 * b.fill:.0f} %")
        for b in chosen
    ]
    by_table: dict[str, int] = {}
    for b in chosen:
        by_table[b.table] = by_table.get(b.table, 0) + b.bytes
    for table, size in by_table.items():
        count = next(b.rows for b in chosen if b.table == table)
        per_row = f"{size / count:,.1f}" if count else "0.0"
        rows.append((f"{table}, all its b-trees", "", "", f"{size / 1024:,.0f}", str(count), "",
                     per_row, "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i >= 2 else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ledger", type=Path, help="a ledger file (data_dir/ledger.sqlite)")
    parser.add_argument("--table", action="append", default=[],
                        help="only this table and its indexes (repeatable)")
    args = parser.parse_args()
    if not args.ledger.is_file():
        parser.error(f"{args.ledger}: no such file")
    print("\n".join(table_lines(row_bytes(args.ledger), args.table)))


if __name__ == "__main__":
    main()
