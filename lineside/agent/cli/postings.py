"""Commands that post to the ledger by hand, through the same handlers as the devices:
complete, receive, count, order, reverse, held."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TypeVar

from lineside.agent.alerts import alert_fields, held_text
from lineside.agent.cli.options import (
    as_json,
    config,
    count_arg,
    date_arg,
    decimal_arg,
    request_id,
)
from lineside.agent.cli.shared import TX_COLUMNS, ledger_of, post, print_json, request_key
from lineside.agent.cli.table import Arguments, action, actions, arg, command
from lineside.agent.commands import (
    CloseOrder,
    Command,
    Complete,
    Count,
    DiscardHeld,
    Receive,
    ReleaseHeld,
    Result,
    Reverse,
    StartOrder,
)
from lineside.agent.domain import held as held_events
from lineside.agent.ledger import queries
from lineside.agent.tables import render
from lineside.cli_options import EXIT_BAD_INPUT, EXIT_OK, EXIT_OTHER
from lineside.clock import utc_now

C = TypeVar("C", bound=Command)


def by_hand(args: argparse.Namespace, kind: type[C], prefix: str, *fields: str, **more: Any) -> C:
    """A command typed by a person: keyed by --request-id (or a new id), stamped now, its
    fields taken from the arguments of the same name."""
    values = {name: getattr(args, name) for name in fields}
    return kind(key=request_key(args, prefix), ts=utc_now(), **values, **more)


def apply(args: argparse.Namespace, command: Command) -> int:
    result = post(args, command)
    return report_result(args, result)


def report_result(args: argparse.Namespace, result: Result) -> int:
    if getattr(args, "json", False):
        print_json(
            {
                "ok": result.ok,
                "error": result.error,
                "duplicate": result.duplicate,
                "transactions": list(result.transactions),
                "transaction_ids": [t["id"] for t in result.transactions]
                or result.detail.get("transactions", []),
                "alerts": list(result.alerts),
            }
        )
    elif not result.ok:
        print(f"lineside: refused: {result.error}", file=sys.stderr)
    elif result.duplicate:
        print("already applied (same request id): nothing changed")
    else:
        held = [a for a in result.alerts if a.get("kind") == "held"]
        if result.transactions or not held:
            print(render(list(result.transactions), TX_COLUMNS, empty="done: nothing to post"))
        for alert in held:
            print(held_text(alert))
        for alert in result.alerts:
            print("ALERT " + alert_fields(alert), file=sys.stderr)
    if result.ok:
        return EXIT_OK
    return EXIT_OTHER if result.refused else EXIT_BAD_INPUT


@command(
    "complete",
    "report production by hand (the same path as a PLC count)",
    config,
    arg("--work-center", required=True, help="work center that made the units"),
    arg("--good", type=count_arg, required=True, help="good units (0 allowed)"),
    arg("--scrap", type=count_arg, default=0, help="scrapped units (default 0)"),
    arg("--stage", help="units that passed this stage (flushes its components only)"),
    arg("--reason", help="the scrapped units' reason code (default: unspecified)"),
    request_id,
    as_json,
)
def _run_complete(args: argparse.Namespace) -> int:
    cause = f"reported by hand ({args.request_id or 'cli'})"
    fields = ("work_center", "good", "scrap", "stage", "reason")
    return apply(args, by_hand(args, Complete, "cli-complete", *fields, cause=cause))


def _stock_arguments(qty_help: str) -> tuple[Arguments, ...]:
    """Receive and count take the same arguments: an item, qty, lot and location."""
    return (
        config,
        arg("--item", required=True, help="item code"),
        arg("--qty", type=decimal_arg, required=True, help=qty_help),
        arg("--lot", help="lot (omit for stock without a lot)"),
        arg("--location", required=True, help="stock location, e.g. the line's"),
        request_id,
        as_json,
    )


def _stock_command(
    args: argparse.Namespace, kind: type[Receive | Count], prefix: str, cause: str
) -> Receive | Count:
    return by_hand(args, kind, prefix, "item", "qty", "lot", "location", cause=cause)


@command(
    "receive",
    "receive stock at a location (optionally a lot)",
    *_stock_arguments("quantity received, in the item's unit"),
    arg(
        "--expiry",
        type=date_arg,
        help="the lot's expiry date, YYYY-MM-DD (needs --lot; a lot keeps its first expiry)",
    ),
)
def _run_receive(args: argparse.Namespace) -> int:
    fields = ("item", "qty", "lot", "location", "expiry")
    return apply(args, by_hand(args, Receive, "cli-receive", *fields, cause="receipt by hand"))


@command(
    "count",
    "post a cycle count: the difference becomes an adjustment",
    *_stock_arguments("quantity counted; without --lot it is the item's total there"),
)
def _run_count(args: argparse.Namespace) -> int:
    return apply(args, _stock_command(args, Count, "cli-count", "cycle count"))


@command(
    "order",
    "start, close or list production orders",
    actions(
        "action",
        "ACTION",
        action(
            "start",
            "start a production order at a work center",
            config,
            arg("--work-center", required=True),
            arg("--order", required=True, help="order number"),
            arg("--item", required=True, help="item the order makes"),
            arg("--qty", type=decimal_arg, help="planned quantity (information only)"),
            request_id,
        ),
        action(
            "close", "close a production order", config, arg("--order", required=True), request_id
        ),
        action("list", "list production orders", config, as_json),
    ),
)
def _run_order(args: argparse.Namespace) -> int:
    if args.action == "list":
        data = queries.orders(ledger_of(args).conn)
        if args.json:
            print_json(data)
        else:
            cols = ("order_no", "work_center", "item", "qty", "status", "started_ts", "closed_ts")
            print(render(data, cols))
        return EXIT_OK
    command: Command
    if args.action == "start":
        fields = ("order", "work_center", "item", "qty")
        command = by_hand(args, StartOrder, "cli-order-start", *fields)
    else:
        command = by_hand(args, CloseOrder, "cli-order-close", "order")
    result = post(args, command)
    if result.ok:
        print(f"order {args.order} {'started' if args.action == 'start' else 'closed'}")
        return EXIT_OK
    return report_result(args, result)


@command(
    "reverse",
    "post the exact opposite of a transaction, once",
    config,
    arg("tx_id", metavar="TX_ID", help="id of the transaction to reverse"),
    request_id,
    as_json,
)
def _run_reverse(args: argparse.Namespace) -> int:
    return apply(args, by_hand(args, Reverse, "cli-reverse", "tx_id"))


HELD_ID = arg("held_id", metavar="ID", type=count_arg, help="id from `held list`")


@command(
    "held",
    "list, release or discard events waiting for stock, data or a person",
    actions(
        "action",
        "ACTION",
        action(
            "list",
            "events waiting (held) and why",
            config,
            arg("--all", action="store_true", help="also the ones posted or discarded"),
            as_json,
        ),
        action(
            "release",
            "post a held event a person has checked",
            config,
            HELD_ID,
            request_id,
            as_json,
        ),
        action(
            "discard",
            "drop a held event, saying why (kept on record)",
            config,
            HELD_ID,
            arg("--reason", required=True, help="why it is dropped"),
            request_id,
            as_json,
        ),
    ),
)
def _run_held(args: argparse.Namespace) -> int:
    if args.action == "release":
        key = request_key(args, "cli-held-release")
        return apply(args, ReleaseHeld(key=key, ts=utc_now(), held_id=args.held_id))
    if args.action == "discard":
        key = request_key(args, "cli-held-discard")
        return apply(
            args, DiscardHeld(key=key, ts=utc_now(), held_id=args.held_id, reason=args.reason)
        )
    ledger = ledger_of(args)
    data = []
    for r in queries.held(ledger.conn, everything=args.all):
        held = held_events.listed(held_events.from_json(r["command"]))
        data.append(
            {
                "id": r["id"],
                "ts": r["ts"],
                "work_center": r["work_center"],
                "item": held["item"],
                "units": held["units"],
                "role": held["role"],
                "status": r["status"],
                "reason": r["reason"],
            }
        )
    if args.json:
        print_json(data)
    else:
        print(
            render(data, ("id", "ts", "work_center", "item", "role", "units", "status", "reason"))
        )
    return EXIT_OK
