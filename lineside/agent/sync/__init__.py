"""Sync with the central MQTT broker: outbox publisher, status, stock, commands in, tail.

The runtime makes one Sync(loaded_config, ledger, db_path) and calls start()/stop();
`lineside status` calls sync_status(conn) (ledger/outbox_status.py: sync/ runs no SQL of
its own); `lineside tail` calls tail_main(...).
Nothing here connects or opens a file at import time.
"""

from lineside.agent.ledger.outbox_status import prune, sync_status
from lineside.agent.sync.client import SyncSetupError
from lineside.agent.sync.commands_in import LedgerProtocol
from lineside.agent.sync.service import Sync
from lineside.agent.sync.tail import tail_main

__all__ = ["LedgerProtocol", "Sync", "SyncSetupError", "prune", "sync_status", "tail_main"]
