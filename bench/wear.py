"""What the agent writes and what its ledger holds, sampled while it runs (bench/endurance.py).

The agent's /proc/PID/io and CPU time, and the ledger read from a read-only connection in one
snapshot: page_count x page_size (the main file's size once checkpointed, without
checkpointing: a checkpoint from the bench would do the agent's own writes), the units
completed and the rows still unsent.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from common import cpu_seconds, say
from rowbytes import open_read_only


def io_counters(pid: int) -> dict[str, int]:
    """/proc/PID/io of the whole process: every thread, living or ended."""
    pairs = (line.split(":") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return {key.strip(): int(value) for key, value in pairs}


@dataclass(frozen=True)
class Snapshot:
    t: float
    io: dict[str, int]
    cpu_s: float
    ledger_bytes: int  # page_count x page_size: the main file once checkpointed
    free_bytes: int  # of which pages on the freelist
    completed: int  # units the ledger completed
    unsent: int  # outbox rows not yet acknowledged by the broker


def read_ledger(db: Path) -> tuple[int, int, int, int]:
    """(page_count x page_size, freelist bytes, units completed, unsent rows), one snapshot."""
    with contextlib.closing(open_read_only(db)) as conn:
        conn.execute("BEGIN")
        one = lambda sql: int(conn.execute(sql).fetchone()[0] or 0)  # noqa: E731
        page = one("PRAGMA page_size")
        found = (one("PRAGMA page_count") * page, one("PRAGMA freelist_count") * page,
                 one("SELECT SUM(CAST(qty AS INTEGER)) FROM journal WHERE kind = 'completion'"),
                 one("SELECT COUNT(*) FROM outbox WHERE sent_ts IS NULL"))
        conn.execute("COMMIT")
    return found


def snapshot(pid: int, db: Path) -> Snapshot:
    return Snapshot(time.monotonic(), io_counters(pid), cpu_seconds(pid), *read_ledger(db))


def sample_window(pid: int, db: Path, seconds: float, every_s: float) -> list[Snapshot]:
    """Snapshots from the window's start to its end, every every_s, each printed."""
    snaps = [snapshot(pid, db)]
    end = snaps[0].t + seconds
    while time.monotonic() < end - 0.5:
        time.sleep(min(every_s, max(0.0, end - time.monotonic())))
        snaps.append(snapshot(pid, db))
        a, b = snaps[-2], snaps[-1]
        units = b.completed - a.completed
        written = b.io["write_bytes"] - a.io["write_bytes"]
        grown = b.ledger_bytes - a.ledger_bytes
        say(f"  {b.t - snaps[0].t:5.0f} s: {units:4d} units, written {written / 1e6:6.2f} MB"
            f" ({written / max(1, units):,.0f} B/unit), ledger {grown / 1e3:+8.1f} kB"
            f" ({grown / max(1, units):,.0f} B/unit), unsent {b.unsent}")
    return snaps
