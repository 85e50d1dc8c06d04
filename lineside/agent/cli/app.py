"""`lineside`: the parser built from the command table, and how a run ends (exit codes)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Imported for what they register (@command): the table lists their commands in this order.
import lineside.agent.cli.agent
import lineside.agent.cli.books
import lineside.agent.cli.postings  # noqa: F401
from lineside import __version__
from lineside.agent.cli.shared import UsageError
from lineside.agent.cli.table import COMMANDS, add_arguments, command
from lineside.agent.config import ConfigInvalid
from lineside.central import cli as central_cli
from lineside.cli_options import EXIT_BAD_INPUT, EXIT_OK, EXIT_OTHER, Parser

command("central", central_cli.HELP, central_cli.add_central)(central_cli.run_central)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lineside",
        description="Shop-floor edge agent: backflush locally, sync the ledger over MQTT.",
        epilog="Exit codes: 0 done, 2 bad input (config or arguments), 1 anything else.",
    )
    parser.add_argument("--version", action="version", version=f"lineside {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for entry in COMMANDS.values():
        add_arguments(
            sub.add_parser(entry.name, help=entry.help, description=entry.help), entry.arguments
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except ConfigInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s): the config was refused", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as exc:
        print(f"lineside: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_OTHER
    except BrokenPipeError:  # `lineside tx | head`: the reader has gone, which is fine
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        print(f"lineside: error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        if os.environ.get("LINESIDE_DEBUG"):
            raise
        return EXIT_OTHER
