"""Publish a ledger's outbox without the rest of the agent.

    python -m lineside.agent.sync.publisher_main -c FILE

For operations (drain a ledger copied off a dead gateway) and for the crash tests, which
kill -9 this process while it publishes. Commands are not taken and stock is not
published: there is no Ledger here, only the outbox.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from lineside.agent.config import ConfigInvalid, load
from lineside.agent.sync.client import SyncSetupError
from lineside.agent.sync.service import Sync

LEDGER_FILE = "ledger.sqlite"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lineside.agent.sync.publisher_main")
    parser.add_argument("-c", "--config", required=True, help="the gateway's YAML config")
    parser.add_argument("--db", help="ledger file (default: data_dir/ledger.sqlite)")
    parser.add_argument(
        "--reconnect-max",
        type=float,
        default=30.0,
        help="longest pause between reconnect attempts, seconds",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("lineside.sync.paho").setLevel(logging.WARNING)
    try:
        loaded = load(args.config)
        db = Path(args.db) if args.db else loaded.data_dir / LEDGER_FILE
        sync = Sync(loaded, None, db, reconnect_max_s=args.reconnect_max)
        sync.start()
    except (ConfigInvalid, SyncSetupError) as exc:
        print(exc, file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print("publishing", flush=True)  # the tests wait for this line
    done.wait()
    sync.stop(5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
