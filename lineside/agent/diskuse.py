"""Write accounting: what the agent writes to its disk and how fast the ledger grows.

An SD card wears by the bytes written and fills by the ledger's growth, so both are
measured where they happen: the kernel's count of the process's own writes
(/proc/self/io write_bytes, every thread, the ledger's fsyncs included) and the ledger's
size on disk. The daemon samples both with its gauge refresh and keeps a recent window in
memory (never in the ledger: that would be a write of its own every few seconds);
`lineside status` reads the rates from /healthz and the free space itself.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WINDOW_S = 3600.0  # the ledger grows by whole pages and WAL rounds: an hour smooths that
PROC_IO = Path("/proc/self/io")
DAY_S = 86_400.0


def process_written_bytes(proc_io: Path = PROC_IO) -> int | None:
    """The bytes this process has caused to be written to storage, or None off Linux."""
    try:
        text = proc_io.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == "write_bytes":
            return int(value)
    return None


def free_bytes(directory: Path) -> int | None:
    """What an unprivileged user may still write on directory's filesystem, or None."""
    try:
        found = os.statvfs(directory)
    except OSError:
        return None
    return found.f_bavail * found.f_frsize


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # monotonic seconds
    written: int | None
    ledger: int


class WriteAccount:
    """Samples of (written, ledger size) over the last WINDOW_S seconds, and their rates."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[Sample] = deque()

    def sample(self, at: float, written: int | None, ledger: int) -> None:
        self._samples.append(Sample(at, written, ledger))
        # keep one sample at or before the window's start, so the window stays whole
        while len(self._samples) > 2 and self._samples[1].at <= at - self.window_s:
            self._samples.popleft()

    def rates(self) -> dict[str, Any]:
        """Bytes per second written and grown over the window (None until two samples)."""
        if len(self._samples) < 2:
            return {"written_bytes_per_s": None, "ledger_growth_bytes_per_s": None, "over_s": 0}
        first, last = self._samples[0], self._samples[-1]
        span = last.at - first.at
        if span <= 0:
            return {"written_bytes_per_s": None, "ledger_growth_bytes_per_s": None, "over_s": 0}
        written = (
            None
            if first.written is None or last.written is None
            else round((last.written - first.written) / span, 1)
        )
        return {
            "written_bytes_per_s": written,
            "ledger_growth_bytes_per_s": round((last.ledger - first.ledger) / span, 1),
            "over_s": round(span),
        }


def outlook(rates: dict[str, Any] | None, ledger: int, data_dir: Path) -> dict[str, Any]:
    """The disk as `lineside status` shows it: the daemon's rates (None when it does not
    answer), the ledger's size and free space now, and days until the filesystem is full
    at the current growth (None when the ledger does not grow or nobody measured it)."""
    rates = rates or {}
    growth = rates.get("ledger_growth_bytes_per_s")
    free = free_bytes(data_dir)
    days = None
    if growth is not None and growth > 0 and free is not None:
        days = round(free / (growth * DAY_S), 1)
    return {
        "data_dir": str(data_dir),
        "ledger_bytes": ledger,
        "free_bytes": free,
        "written_bytes_per_s": rates.get("written_bytes_per_s"),
        "ledger_growth_bytes_per_s": growth,
        "over_s": rates.get("over_s"),
        "days_until_full": days,
    }


def size(n: float | None) -> str:
    """A byte count for people (decimal units, as df -H and the SD card's label use)."""
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def render_outlook(disk: dict[str, Any]) -> str:
    """One line: `disk: ledger 12.3 MB, 4.1 GB free on DIR; writing …, growing …: full in …`."""
    line = (
        f"disk: ledger {size(disk['ledger_bytes'])}, {size(disk['free_bytes'])} free"
        f" on {disk['data_dir']}"
    )
    growth = disk["ledger_growth_bytes_per_s"]
    if growth is None:
        return line + "; write rate unknown (the daemon does not answer or just started)"
    line += f"; writing {size(disk['written_bytes_per_s'])}/s"
    if growth <= 0:
        return line + f", ledger not growing (over {disk['over_s']} s)"
    days = disk["days_until_full"]
    full = "?" if days is None else f"{days:g} days"
    return line + f", ledger growing {size(growth)}/s (over {disk['over_s']} s): full in {full}"
