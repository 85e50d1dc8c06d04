"""What the agent writes and what its ledger holds, sampled while it runs (bench/endurance.py).

The agent's /proc/PID/io and CPU time, and the ledger read from a read-only connection in one
snapshot: page_count x page_size (the main file's size once checkpointed, without
checkpointing: a checkpoint from the bench would do the agent's own writes), the units
completed and the rows still unsent; and what the agent owes the disk for the WAL it has
not yet checkpointed, so that a window is charged for its checkpoint whether or not the
checkpoint falls inside it.
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
    owed: int = 0  # what checkpointing the WAL's pages will write (wal_owed)


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


def wal_owed(db: Path) -> int:
    """The bytes a checkpoint of the WAL as it stands will write to the ledger file: one page
    for each page the WAL holds, however many of its frames hold it. Read from the WAL
    file's frame headers (sqlite.org/fileformat.html#the_write_ahead_log); a frame left
    from an earlier round of the WAL, whose salt differs from the header's, is not counted."""
    try:
        data = (db.parent / f"{db.name}-wal").read_bytes()
    except FileNotFoundError:
        return 0
    if len(data) < 32:
        return 0
    page_size, salt = int.from_bytes(data[8:12], "big"), data[16:24]
    frame = 24 + page_size
    pages = {
        data[at : at + 4]
        for at in range(32, len(data) - frame + 1, frame)
        if data[at + 8 : at + 16] == salt
    }
    return len(pages) * page_size


def snapshot(pid: int, db: Path) -> Snapshot:
    return Snapshot(time.monotonic(), io_counters(pid), cpu_seconds(pid), *read_ledger(db),
                    owed=wal_owed(db))


def sample_window(pid: int, db: Path, seconds: float, every_s: float) -> list[Snapshot]:
    """Snapshots from the window's start to its end, every every_s, each printed."""
    snaps = [snapshot(pid, db)]
    end = snaps[0].t + seconds
    while time.monotonic() < end - 0.5:
        time.sleep(min(every_s, max(0.0, end - time.monotonic())))
        snaps.append(snapshot(pid, db))
        a, b = snaps[-2], snaps[-1]
        units = b.completed - a.completed
        written = b.io["write_bytes"] - a.io["write_bytes"] + b.owed - a.owed
        grown = b.ledger_bytes - a.ledger_bytes
        say(f"  {b.t - snaps[0].t:5.0f} s: {units:4d} units, written {written / 1e6:6.2f} MB"
            f" ({written / max(1, units):,.0f} B/unit), ledger {grown / 1e3:+8.1f} kB"
            f" ({grown / max(1, units):,.0f} B/unit), unsent {b.unsent}")
    return snaps
