"""What the runners share: the config and ledger from -c, request keys, JSON output."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from lineside.agent.bootstrap import open_ledger
from lineside.agent.config import LoadedConfig, load
from lineside.agent.handlers import Ledger


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


def load_config(args: argparse.Namespace) -> LoadedConfig:
    if not args.config:
        raise UsageError("no config: give -c FILE or set LINESIDE_CONFIG")
    return load(args.config)


def ledger_of(args: argparse.Namespace) -> Ledger:
    return open_ledger(load_config(args))


TX_COLUMNS = ("kind", "item", "location", "lot", "qty", "uom", "order", "cost", "id")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def request_key(args: argparse.Namespace, prefix: str) -> str:
    return f"{prefix}:{args.request_id or uuid.uuid4()}"
