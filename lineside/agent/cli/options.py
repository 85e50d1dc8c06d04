"""The arguments several commands take, and the types that check quantities and counts."""

from __future__ import annotations

import argparse
from datetime import date
from decimal import Decimal

from lineside.agent.inputs import BadInput, parse_day, parse_quantity
from lineside.cli_options import add_config


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


def date_arg(text: str) -> date:
    try:
        return parse_day(text, "")
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
