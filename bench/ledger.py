"""Backflush throughput against the physical limit measured in the same run.

A 20-line BOM; completions posted through the ledger's handlers (one per SQLite
transaction, then in batches), beside raw sqlite3 writing the same rows (journal,
outbox and stock upserts) with the same pragmas. Prints figures and ratios; asserts nothing.

    .venv/bin/python bench/ledger.py [--n 2000] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import Complete, Receive
from lineside.agent.config import load
from lineside.agent.ledger.store import connect

LINES = 20


def config_text(data_dir: Path) -> str:
    items = "\n".join(f"  C{i:02d}: {{uom: kg, decimals: 3, cost: 1.25}}" for i in range(LINES))
    comps = "\n".join(
        f"      - {{item: C{i:02d}, qty: {(i + 1) * 5 / 1000:.3f}}}" for i in range(LINES)
    )
    return f"""
gateway: {{id: bench, site: lab, data_dir: {data_dir}}}
items:
  FG: {{uom: ea, cost: 30, conversion_cost: 5}}
{items}
boms:
  FG:
    components:
{comps}
work_centers:
  CELL: {{location: LINE, item: FG}}
"""


def ledger_rate(tmp: Path, n: int, batch: int) -> float:
    path = tmp / f"ledger-{batch}.yaml"
    path.write_text(config_text(tmp / f"data-{batch}"))
    ledger = open_ledger(load(path))
    now = datetime.now(UTC)
    for i in range(LINES):  # stock on hand, so every line allocates from a lot
        ledger.execute(
            Receive(
                key=f"r{i}",
                ts=now,
                item=f"C{i:02d}",
                qty=Decimal(1_000_000),
                lot="L1",
                location="LINE",
            )
        )
    commands = [Complete(key=f"k{i}", ts=now, work_center="CELL", good=1) for i in range(n)]
    start = time.perf_counter()
    if batch == 1:
        for command in commands:
            ledger.execute(command)
    else:
        for i in range(0, n, batch):
            ledger.execute_batch(list(commands[i : i + batch]))
    elapsed = time.perf_counter() - start
    rows = ledger.conn.execute("SELECT COUNT(*) FROM journal WHERE kind = 'backflush'").fetchone()
    assert rows[0] == n * LINES, rows
    ledger.conn.close()
    return n / elapsed


def raw_rate(tmp: Path, n: int, batch: int) -> float:
    """The same rows through bare prepared statements: the physical limit of this disk."""
    conn = connect(tmp / f"raw-{batch}.sqlite")
    ts = datetime.now(UTC).isoformat()
    tx = ("backflush", "C00", "LINE", "L1", "-0.001", "kg", None, "CELL", "-0.00125", "k", "k")
    start = time.perf_counter()
    done = 0
    while done < n:
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(min(batch, n - done)):
            for line in range(LINES + 1):
                row = (str(uuid.uuid4()), ts, *tx)
                conn.execute(
                    "INSERT INTO journal (id, ts, kind, item, location, lot, qty, uom, order_no,"
                    " work_center, cost, cause, event) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    row,
                )
                conn.execute(
                    "INSERT INTO outbox (stream, payload, created_ts) VALUES (?,?,?)",
                    ("tx", json.dumps(row), ts),
                )
                conn.execute(
                    "INSERT INTO stock (item, location, lot, qty, fifo) VALUES (?,?,?,?,0)"
                    " ON CONFLICT DO UPDATE SET qty = excluded.qty",
                    (f"C{line:02d}", "LINE", "L1", str(done)),
                )
            done += 1
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def measure(fn: Callable[[Path, int, int], float], n: int, batch: int) -> float:
    with tempfile.TemporaryDirectory(prefix="lineside-bench-") as tmp:
        return fn(Path(tmp), n, batch)


def median_rates(n: int, batch: int, rounds: int) -> tuple[float, float]:
    """Alternate lineside and raw runs so that both see the same machine load."""
    ours, raw = [], []
    for _ in range(rounds):
        ours.append(measure(ledger_rate, n, batch))
        raw.append(measure(raw_rate, n, batch))
    return statistics.median(ours), statistics.median(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="completions per run")
    parser.add_argument("--batch", type=int, default=100, help="completions per transaction")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs; medians shown")
    args = parser.parse_args()
    print(
        f"backflush throughput, {LINES}-line BOM, {args.n} completions per run,"
        f" median of {args.rounds}"
    )
    print(f"{'mode':<28}{'lineside /s':>14}{'raw sqlite /s':>16}{'ratio':>8}")
    for label, batch in (("one per transaction", 1), (f"batches of {args.batch}", args.batch)):
        ours, raw = median_rates(args.n, batch, args.rounds)
        print(f"{label:<28}{ours:>14.0f}{raw:>16.0f}{ours / raw:>8.0%}")
    print("target: at least 50% of the raw rate")


if __name__ == "__main__":
    main()
