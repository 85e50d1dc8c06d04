"""The composition root: the one place that opens files and wires the parts together."""

from __future__ import annotations

from lineside.agent.config import LoadedConfig
from lineside.agent.handlers import Ledger
from lineside.agent.ledger.store import connect
from lineside.clock import Clock, utc_now

LEDGER_FILE = "ledger.sqlite"


def open_ledger(loaded: LoadedConfig, clock: Clock = utc_now) -> Ledger:
    """Open (or create) the gateway's ledger in its data_dir, schema up to date."""
    conn = connect(loaded.data_dir / LEDGER_FILE)
    return Ledger(conn, loaded.config, clock)
