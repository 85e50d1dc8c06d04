"""`lineside check` on files made to hurt it: refused with file:line, in little time and memory.

Time and memory are measured and printed; the only limits asserted are generous ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

BAD = REPO / "tests" / "data" / "bad_configs"


@dataclass(frozen=True)
class Measured:
    returncode: int
    stderr: str
    seconds: float
    max_rss_mb: float


def check_measured(config: Path, tmp_path: Path, timeout_s: float = 60) -> Measured:
    """`lineside check -c config` as a child process, with its own peak RSS (wait4)."""
    err = tmp_path / "stderr.txt"
    started = time.monotonic()
    with err.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lineside.agent.cli", "check", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
    killer = threading.Timer(timeout_s, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    measured = Measured(
        proc.returncode,
        err.read_text(errors="replace"),
        time.monotonic() - started,
        usage.ru_maxrss / 1024,
    )
    print(
        f"{config.name}: exit {measured.returncode} after {measured.seconds:.2f} s,"
        f" peak RSS {measured.max_rss_mb:.0f} MB"
    )
    return measured


def test_a_billion_laughs_is_refused_at_its_line_without_growing(tmp_path: Path) -> None:
    result = check_measured(BAD / "alias_bomb.yaml", tmp_path)
    assert result.returncode == 2, result  # before: killed after 60 s, past 4 GB
    assert "alias_bomb.yaml:13: (yaml): aliases expand the document by" in result.stderr
    assert result.max_rss_mb < 300  # the interpreter and its imports are some 40 MB


def test_deep_nesting_is_refused_at_its_line_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("gateway: {id: gw, site: s}\nitems: " + "[" * 20_000 + "]" * 20_000 + "\n")
    result = check_measured(path, tmp_path)
    assert result.returncode == 2, result
    assert "deep.yaml:2: (yaml): nested deeper than 64 levels" in result.stderr
    assert "RecursionError" not in result.stderr
