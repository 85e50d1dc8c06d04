"""The command table: each command's name, help, arguments and runner, registered together
by the `command` decorator beside the runner; and what the runners share."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lineside.agent.bootstrap import open_ledger
from lineside.agent.config import LoadedConfig, load
from lineside.agent.handlers import Ledger
from lineside.agent.inputs import BadInput, parse_quantity
from lineside.cli_options import Parser, add_config

Runner = Callable[[argparse.Namespace], int]
Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class CliCommand:
    name: str
    help: str
    arguments: tuple[Arguments, ...]
    run: Runner


COMMANDS: dict[str, CliCommand] = {}


def command(name: str, help: str, *arguments: Arguments) -> Callable[[Runner], Runner]:
    """Registers the decorated runner as `lineside NAME`; `lineside --help` lists the
    commands in the order they are registered."""

    def register(run: Runner) -> Runner:
        if name in COMMANDS:
            raise ValueError(f"command {name!r} is registered twice")
        COMMANDS[name] = CliCommand(name, help, arguments, run)
        return run

    return register


def arg(*flags: str, **options: Any) -> Arguments:
    """One argument, added when the parser is built."""

    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument(*flags, **options)

    return add


@dataclass(frozen=True)
class Action:
    """A subcommand (`order start`, `held list`): its arguments, no runner of its own."""

    name: str
    help: str
    arguments: tuple[Arguments, ...] = ()


def action(name: str, help: str, *arguments: Arguments) -> Action:
    return Action(name, help, arguments)


def actions(dest: str, metavar: str, *choices: Action) -> Arguments:
    """One required subcommand, stored in args.<dest> for the command's runner."""

    def add(p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest=dest, metavar=metavar, parser_class=Parser)
        sub.required = True
        for choice in choices:
            add_arguments(
                sub.add_parser(choice.name, help=choice.help, description=choice.help),
                choice.arguments,
            )

    return add


def add_arguments(p: argparse.ArgumentParser, arguments: tuple[Arguments, ...]) -> None:
    for add in arguments:
        add(p)


def config(p: argparse.ArgumentParser) -> None:
    add_config(p, "LINESIDE_CONFIG")


def as_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON only (for machines)")


def request_id(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--request-id",
        help="idempotency key: the same id again is answered, not applied again"
        " (default: a new one)",
    )


def decimal_arg(text: str) -> Decimal:
    """A plain decimal of ASCII digits within the bound of every quantity (inputs.py)."""
    try:
        return parse_quantity(text, "")
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def count_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


# -- what the runners share --------------------------------------------------------------
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
