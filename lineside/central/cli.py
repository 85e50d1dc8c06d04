"""`lineside central check|run -c FILE`: hooked into the agent's command line.

Nothing here imports psycopg: `lineside` works without the `central` extra, and only
`lineside central run` needs it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from lineside.central.config import load
from lineside.cli_options import EXIT_BAD_INPUT, EXIT_OK, EXIT_OTHER, add_config

HELP = "the reference consumer: many gateways' P/tx into PostgreSQL exactly once"


def add_central(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    sub.required = True
    for name, text in (
        ("check", "validate a central config file without connecting to anything"),
        ("run", "subscribe, land P/tx in PostgreSQL, ask gateways to replay gaps"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        add_config(cmd, "LINESIDE_CENTRAL_CONFIG", "central config file")


def run_central(args: argparse.Namespace) -> int:
    if not args.config:
        print("lineside: no config: give -c FILE or set LINESIDE_CENTRAL_CONFIG", file=sys.stderr)
        return EXIT_BAD_INPUT
    loaded = load(args.config)  # ConfigInvalid: the CLI prints every error and exits 2
    cfg = loaded.config
    if args.action == "check":
        print(
            f"{args.config}: ok (group {cfg.group}, client id {cfg.mqtt.client_id},"
            f" broker {cfg.mqtt.host}:{cfg.mqtt.port}, topics {cfg.mqtt.topic_prefix}/+/+/…)"
        )
        return EXIT_OK
    return _run(loaded)


def _run(loaded: Any) -> int:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        print("lineside central needs psycopg: pip install 'lineside[central]'", file=sys.stderr)
        return EXIT_OTHER
    from lineside.agent.health import HealthServer
    from lineside.agent.logs import configure
    from lineside.agent.sync.client import SyncSetupError
    from lineside.central.consumer import Central

    cfg = loaded.config
    configure(cfg.log.format, cfg.log.level)
    try:
        central = Central(loaded)
    except SyncSetupError as exc:
        print(f"lineside central: cannot start: {exc}", file=sys.stderr)
        return EXIT_OTHER
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: central.stop.set())
    health = None
    if cfg.health is not None:
        health = HealthServer(cfg.health.listen, central.health, central.metrics.render)
        health.start()
    try:
        central.run()
    finally:
        if health is not None:
            health.stop()
    return EXIT_OK
