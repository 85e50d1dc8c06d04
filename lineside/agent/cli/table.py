"""The command table: each command's name, help, arguments and runner, registered together
by the `command` decorator beside the runner."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lineside.cli_options import Parser

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
