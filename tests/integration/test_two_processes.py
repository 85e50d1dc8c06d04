"""Two processes on one ledger (the daemon and a technician's CLI) never corrupt or double."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from lineside.agent.bootstrap import open_ledger
from lineside.agent.config import load
from tests.conftest import write_config

WRITER = """
import sys
from datetime import UTC, datetime
from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import Complete
from lineside.agent.config import load
ledger = open_ledger(load(sys.argv[1]))
name = sys.argv[2]
for n in range(150):
    for key in (f"{name}-{n}", f"shared-{n}"):  # shared keys are sent by both processes
        result = ledger.execute(Complete(key=key, ts=datetime.now(UTC), work_center="PRESS-3",
                                         good=1))
        assert result.ok, result.error
"""


def test_concurrent_writers_apply_each_key_once(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(config), name])
        for name in ("daemon", "cli")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    ledger = open_ledger(load(config))
    assert ledger.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    (qty,) = ledger.conn.execute("SELECT qty FROM stock WHERE item = 'BRKT-100'").fetchone()
    assert Decimal(qty) == 150 * 3  # daemon-n, cli-n and shared-n once each
    steel = ledger.conn.execute("SELECT qty FROM stock WHERE item = 'STEEL-2MM'").fetchone()[0]
    assert Decimal(steel) == Decimal("-0.8755") * 450
    completions = ledger.conn.execute(
        "SELECT COUNT(*) FROM journal WHERE kind = 'completion'").fetchone()[0]
    outbox = ledger.conn.execute("SELECT COUNT(*) FROM outbox WHERE stream = 'tx'").fetchone()[0]
    journal = ledger.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    assert completions == 450 and outbox == journal
