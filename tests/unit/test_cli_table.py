"""The command table: every command registered once, with its help, arguments and runner."""

from __future__ import annotations

import argparse

import pytest

from lineside.agent.cli import build_parser
from lineside.agent.cli.table import COMMANDS, command


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_the_parser_has_exactly_the_registered_commands_in_their_order() -> None:
    assert list(subcommands(build_parser())) == list(COMMANDS)
    assert {"check", "run", "stock", "complete", "held", "central"} <= set(COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_has_its_help_and_a_runner(name: str) -> None:
    entry = COMMANDS[name]
    assert entry.name == name and entry.help and callable(entry.run)
    assert subcommands(build_parser())[name].description == entry.help


def test_a_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="'stock' is registered twice"):
        command("stock", "again")(lambda args: 0)
