"""What the runners share: the config and ledger from -c, request keys, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.commands import Command, Result
from lineside.agent.config import LoadedConfig, load
from lineside.agent.handlers import Ledger
from lineside.agent.ledger import handover

# How long a command waits for the running agent to commit the readings it holds: the
# agent answers within one turn of its writer (half a second) unless its disk is stuck.
HANDOVER_TIMEOUT_S = 10.0


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


def load_config(args: argparse.Namespace) -> LoadedConfig:
    if not args.config:
        raise UsageError("no config: give -c FILE or set LINESIDE_CONFIG")
    return load(args.config)


def ledger_of(args: argparse.Namespace) -> Ledger:
    return open_ledger(load_config(args))


def post(args: argparse.Namespace, command: Command) -> Result:
    """Apply a command typed at the CLI after the readings that wait in the running agent's
    memory (ledger/handover.py): it comes after the units counted before it."""
    loaded = load_config(args)
    ledger = open_ledger(loaded)
    if not handover.ask(ledger.conn, loaded.data_dir / LEDGER_FILE, HANDOVER_TIMEOUT_S):
        print(
            f"lineside: warning: the running agent did not commit the readings it holds"
            f" within {HANDOVER_TIMEOUT_S:g} s; applied now, the units it holds post after"
            " this command (see its log)",
            file=sys.stderr,
        )
    return ledger.execute(command)


TX_COLUMNS = ("kind", "item", "location", "lot", "qty", "uom", "order", "cost", "id")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def request_key(args: argparse.Namespace, prefix: str) -> str:
    return f"{prefix}:{args.request_id or uuid.uuid4()}"
