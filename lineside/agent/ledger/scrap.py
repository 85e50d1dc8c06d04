"""The scrap report's question to the journal: every scrap posting and every reversal of one.

A reversal of a scrap carries the scrap's reason (written since migration m007); one of a
scrap posted before that has none, so it is found by the row it reverses, while that row
is still in the journal.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from lineside.agent.ledger.store import rows

_SCRAP = """
SELECT j.reason, j.order_no, j.work_center, j.item, j.qty, j.uom, j.cost
FROM journal AS j
WHERE (j.kind = 'scrap' OR (j.kind = 'reversal' AND (j.reason IS NOT NULL
       OR j.reverses IN (SELECT id FROM journal WHERE kind = 'scrap'))))
  AND (?1 IS NULL OR j.order_no = ?1) AND (?2 IS NULL OR j.item = ?2)
ORDER BY j.seq
"""


def scrap_postings(
    conn: sqlite3.Connection, order: str | None = None, item: str | None = None
) -> Iterator[sqlite3.Row]:
    """Scrap rows and their reversals, oldest first; reason NULL where none was recorded."""
    return rows(conn, _SCRAP, (order, item))
