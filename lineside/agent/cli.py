"""The technician's command line: `lineside COMMAND --help` documents every option."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from lineside import __version__
from lineside.agent import reports
from lineside.agent.bootstrap import open_ledger
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
from lineside.agent.config import ConfigInvalid, LoadedConfig, load
from lineside.agent.domain import held as held_events
from lineside.agent.handlers import Ledger
from lineside.agent.inputs import BadInput, parse_quantity
from lineside.agent.ledger.store import rows
from lineside.agent.tables import render
from lineside.central import cli as central_cli
from lineside.clock import utc_now

EXIT_OK, EXIT_OTHER, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lineside",
        description="Shop-floor edge agent: backflush locally, sync the ledger over MQTT.",
        epilog="Exit codes: 0 done, 2 bad input (config or arguments), 1 anything else.",
    )
    parser.add_argument("--version", action="version", version=f"lineside {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (help_text, add) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        add(cmd)
    return parser


def _config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        default=os.environ.get("LINESIDE_CONFIG"),
        help="config file (default: $LINESIDE_CONFIG)",
    )


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON only (for machines)")


def _request_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--request-id",
        help="idempotency key: the same id again is answered, not applied again"
        " (default: a new one)",
    )


def _add_check(p: argparse.ArgumentParser) -> None:
    _config_option(p)


def _add_stock(p: argparse.ArgumentParser) -> None:
    _config_option(p)
    p.add_argument("--item", help="only this item")
    p.add_argument("--all", action="store_true", help="also lots used up (balance 0)")
    _json_option(p)


def _add_tx(p: argparse.ArgumentParser) -> None:
    _config_option(p)
    p.add_argument("--limit", type=count_arg, default=50, help="newest N (default 50, 0 = all)")
    p.add_argument("--kind", help="only this kind (backflush, completion, scrap, measured, ...)")
    p.add_argument("--item", help="only this item")
    p.add_argument("--order", help="only this production order")
    _json_option(p)


def _add_complete(p: argparse.ArgumentParser) -> None:
    _config_option(p)
    p.add_argument("--work-center", required=True, help="work center that made the units")
    p.add_argument("--good", type=count_arg, required=True, help="good units (0 allowed)")
    p.add_argument("--scrap", type=count_arg, default=0, help="scrapped units (default 0)")
    p.add_argument("--stage", help="units that passed this stage (flushes its components only)")
    _request_option(p)
    _json_option(p)


def _add_stock_command(p: argparse.ArgumentParser, qty_help: str) -> None:
    _config_option(p)
    p.add_argument("--item", required=True, help="item code")
    p.add_argument("--qty", type=decimal_arg, required=True, help=qty_help)
    p.add_argument("--lot", help="lot (omit for stock without a lot)")
    p.add_argument("--location", required=True, help="stock location, e.g. the line's")
    _request_option(p)
    _json_option(p)


def _add_receive(p: argparse.ArgumentParser) -> None:
    _add_stock_command(p, "quantity received, in the item's unit")


def _add_count(p: argparse.ArgumentParser) -> None:
    _add_stock_command(p, "quantity counted; without --lot it is the item's total there")


def _add_order(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    sub.required = True
    start = sub.add_parser("start", help="start a production order at a work center")
    _config_option(start)
    start.add_argument("--work-center", required=True)
    start.add_argument("--order", required=True, help="order number")
    start.add_argument("--item", required=True, help="item the order makes")
    start.add_argument("--qty", type=decimal_arg, help="planned quantity (information only)")
    _request_option(start)
    close = sub.add_parser("close", help="close a production order")
    _config_option(close)
    close.add_argument("--order", required=True)
    _request_option(close)
    listing = sub.add_parser("list", help="list production orders")
    _config_option(listing)
    _json_option(listing)


def _add_reverse(p: argparse.ArgumentParser) -> None:
    _config_option(p)
    p.add_argument("tx_id", metavar="TX_ID", help="id of the transaction to reverse")
    _request_option(p)
    _json_option(p)


def _add_report(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="report", metavar="REPORT", parser_class=_Parser)
    sub.required = True
    for name, text in (
        ("journal", "journal entries at the completion trigger (backflush costing)"),
        ("variance", "measured consumption against standard, per order and item"),
        ("counts", "count accuracy per item and what to count next"),
    ):
        r = sub.add_parser(name, help=text, description=text)
        _config_option(r)
        _json_option(r)
    gen = sub.add_parser("genealogy", help="lots an order consumed, or orders that consumed a lot")
    _config_option(gen)
    which = gen.add_mutually_exclusive_group(required=True)
    which.add_argument("--order", help="list the lots this order consumed")
    which.add_argument("--lot", help="list the orders that consumed this lot (a recall)")
    _json_option(gen)


def _add_held(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    sub.required = True
    listing = sub.add_parser("list", help="events waiting (held) and why")
    _config_option(listing)
    listing.add_argument("--all", action="store_true", help="also the ones posted or discarded")
    _json_option(listing)
    release = sub.add_parser("release", help="post a held event a person has checked")
    _config_option(release)
    release.add_argument("held_id", metavar="ID", type=count_arg, help="id from `held list`")
    _request_option(release)
    _json_option(release)
    discard = sub.add_parser("discard", help="drop a held event, saying why (kept on record)")
    _config_option(discard)
    discard.add_argument("held_id", metavar="ID", type=count_arg, help="id from `held list`")
    discard.add_argument("--reason", required=True, help="why it is dropped")
    _request_option(discard)
    _json_option(discard)


# -- running commands --------------------------------------------------------------------
def _load(args: argparse.Namespace) -> LoadedConfig:
    if not args.config:
        raise UsageError("no config: give -c FILE or set LINESIDE_CONFIG")
    return load(args.config)


def _ledger(args: argparse.Namespace) -> Ledger:
    return open_ledger(_load(args))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _key(args: argparse.Namespace, prefix: str) -> str:
    return f"{prefix}:{args.request_id or uuid.uuid4()}"


def _apply(args: argparse.Namespace, command: Command) -> int:
    ledger = _ledger(args)
    result = ledger.execute(command)
    return _report_result(args, result)


def _report_result(args: argparse.Namespace, result: Result) -> int:
    if getattr(args, "json", False):
        _print_json(
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
            what = f"{alert['units']} {alert['role']} units of {alert.get('item') or '?'}"
            print(
                f"held: {what} at {alert['work_center']} wait ({alert['reason']});"
                f" see lineside held list (id {alert['held_id']})"
            )
        for alert in result.alerts:
            print("ALERT " + " ".join(f"{k}={v}" for k, v in alert.items()), file=sys.stderr)
    if result.ok:
        return EXIT_OK
    return EXIT_OTHER if result.refused else EXIT_BAD_INPUT


TX_COLUMNS = ("kind", "item", "location", "lot", "qty", "uom", "order", "cost", "id")


def _run_check(args: argparse.Namespace) -> int:
    from lineside.agent.sync.client import check_files, file_warnings

    loaded = _load(args)
    errors = check_files(loaded)
    if errors:
        raise ConfigInvalid(errors)
    cfg = loaded.config
    for warning in [*loaded.warnings, *file_warnings(loaded)]:
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    print(
        f"{args.config}: ok ({len(cfg.items)} items, {len(cfg.boms)} BOMs, "
        f"{len(cfg.work_centers)} work centers, {len(cfg.meters)} meters, "
        f"{len(cfg.devices)} devices); ledger in {loaded.data_dir}"
    )
    return EXIT_OK


def _run_stock(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    data = reports.stock(ledger.conn, ledger.master, args.item, empty=args.all)
    if args.json:
        _print_json(data)
    else:
        print(render(data, ("item", "location", "lot", "qty", "uom")))
    return EXIT_OK


def _run_tx(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    data = reports.transactions(
        ledger.conn, limit=args.limit or None, kind=args.kind, item=args.item, order=args.order
    )
    if args.json:
        _print_json(data)
    else:
        print(render(data, ("ts", *TX_COLUMNS)))
    return EXIT_OK


def _run_complete(args: argparse.Namespace) -> int:
    return _apply(
        args,
        Complete(
            key=_key(args, "cli-complete"),
            ts=utc_now(),
            work_center=args.work_center,
            good=args.good,
            scrap=args.scrap,
            stage=args.stage,
            cause=f"reported by hand ({args.request_id or 'cli'})",
        ),
    )


def _run_receive(args: argparse.Namespace) -> int:
    return _apply(args, _stock_command(args, Receive, "cli-receive", "receipt by hand"))


def _run_count(args: argparse.Namespace) -> int:
    return _apply(args, _stock_command(args, Count, "cli-count", "cycle count"))


def _stock_command(
    args: argparse.Namespace, kind: type[Receive | Count], prefix: str, cause: str
) -> Receive | Count:
    """Receive and Count take the same arguments: an item, qty, lot and location."""
    return kind(
        key=_key(args, prefix),
        ts=utc_now(),
        item=args.item,
        qty=args.qty,
        lot=args.lot,
        location=args.location,
        cause=cause,
    )


def _run_order(args: argparse.Namespace) -> int:
    if args.action == "list":
        ledger = _ledger(args)
        data = [dict(r) for r in rows(ledger.conn, "SELECT * FROM orders ORDER BY started_ts")]
        if args.json:
            _print_json(data)
        else:
            cols = ("order_no", "work_center", "item", "qty", "status", "started_ts", "closed_ts")
            print(render(data, cols))
        return EXIT_OK
    command: Command
    if args.action == "start":
        command = StartOrder(
            key=_key(args, "cli-order-start"),
            ts=utc_now(),
            order=args.order,
            work_center=args.work_center,
            item=args.item,
            qty=args.qty,
        )
    else:
        command = CloseOrder(key=_key(args, "cli-order-close"), ts=utc_now(), order=args.order)
    ledger = _ledger(args)
    result = ledger.execute(command)
    if result.ok:
        print(f"order {args.order} {'started' if args.action == 'start' else 'closed'}")
        return EXIT_OK
    return _report_result(args, result)


def _run_reverse(args: argparse.Namespace) -> int:
    key = _key(args, "cli-reverse")
    return _apply(args, Reverse(key=key, ts=utc_now(), tx_id=args.tx_id))


def _run_report(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    master = ledger.master
    if args.report == "journal":
        entries = reports.journal_entries(ledger.conn, master)
        if args.json:
            _print_json(entries)
            return EXIT_OK
        for e in entries:
            print(
                f"Entry: order {e['order'] or '-'}  work center {e['work_center']}  "
                f"item {e['item'] or '-'}  units {e['units']}"
            )
            print(render(e["lines"], ("account", "debit", "credit")))
            print()
        if not entries:
            print("(no postings)")
        return EXIT_OK
    cols: tuple[str, ...]
    if args.report == "variance":
        data = reports.variance(ledger.conn, master)
        cols = (
            "order",
            "work_center",
            "item",
            "standard",
            "measured",
            "variance",
            "variance_pct",
            "uom",
        )
    elif args.report == "counts":
        counts = reports.counts(ledger.conn, master, utc_now())
        if args.json:
            _print_json(counts)
            return EXIT_OK
        print("Count accuracy")
        print(
            render(
                counts["accuracy"],
                ("item", "class", "counts", "accurate", "accuracy_pct", "last_counted"),
            )
        )
        print("\nCount next")
        print(render(counts["suggestions"], ("item", "location", "class", "reason")))
        return EXIT_OK
    elif args.order:
        data = reports.genealogy_of_order(ledger.conn, args.order)
        cols = ("item", "lot", "qty", "uom", "work_center")
    else:
        data = reports.genealogy_of_lot(ledger.conn, args.lot)
        cols = ("order", "item", "qty", "uom", "work_center")
    if args.json:
        _print_json(data)
    else:
        print(render(data, cols))
    return EXIT_OK


def _run_held(args: argparse.Namespace) -> int:
    if args.action == "release":
        key = _key(args, "cli-held-release")
        return _apply(args, ReleaseHeld(key=key, ts=utc_now(), held_id=args.held_id))
    if args.action == "discard":
        key = _key(args, "cli-held-discard")
        return _apply(
            args, DiscardHeld(key=key, ts=utc_now(), held_id=args.held_id, reason=args.reason)
        )
    ledger = _ledger(args)
    sql = "SELECT id, ts, work_center, status, reason, command FROM held"
    sql += "" if args.all else " WHERE status = 'held'"
    data = []
    for r in rows(ledger.conn, sql + " ORDER BY id"):
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
        _print_json(data)
    else:
        print(
            render(data, ("id", "ts", "work_center", "item", "role", "units", "status", "reason"))
        )
    return EXIT_OK


def _add_run(p: argparse.ArgumentParser) -> None:
    _config_option(p)


def _add_status(p: argparse.ArgumentParser) -> None:
    _config_option(p)
    _json_option(p)


def _add_tail(p: argparse.ArgumentParser) -> None:
    _config_option(p)
    p.add_argument("--count", type=count_arg, help="stop after N messages (any topic)")
    p.add_argument("--timeout", type=decimal_arg, help="stop after this many seconds")
    _json_option(p)


def _add_simulate(p: argparse.ArgumentParser) -> None:
    _config_option(p)
    p.add_argument(
        "--scenario",
        help="scenario file (YAML: device name -> what it does); default: every device idle at 0",
    )
    p.add_argument("--seconds", type=decimal_arg, help="stop by itself after this long")


def _run_simulate(args: argparse.Namespace) -> int:
    import threading

    import yaml

    from lineside.agent.yamlsource import parse
    from lineside.simulators.run import scenario_problems, start_all

    loaded = _load(args)
    scenario: dict[str, Any] = {}
    if args.scenario:
        try:
            data = parse(Path(args.scenario).read_text(encoding="utf-8")).data
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"scenario {args.scenario}: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"scenario {args.scenario}: must map device names to sections")
        scenario = data
    problems = scenario_problems(loaded.config, scenario)
    if problems:
        what = f"{args.config} with {args.scenario}" if args.scenario else args.config
        raise UsageError(f"cannot simulate {what}:\n  " + "\n  ".join(problems))
    stop = threading.Event()
    threads = start_all(loaded.config, scenario, stop)
    print(f"simulating {len(loaded.config.devices)} devices of {args.config}; Ctrl-C stops")
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait(None if args.seconds is None else float(args.seconds))
    stop.set()
    for thread in threads:
        thread.join(10)
    return EXIT_OK


def _run_run(args: argparse.Namespace) -> int:
    from lineside.agent.daemon import StartupError, run

    loaded = _load(args)
    try:
        return run(loaded)
    except StartupError as exc:
        print(f"lineside: cannot start: {exc}", file=sys.stderr)
        return EXIT_OTHER


def _run_status(args: argparse.Namespace) -> int:
    from lineside.agent.status import gather, render_status

    loaded = _load(args)
    ledger = open_ledger(loaded)
    data = gather(loaded, ledger, utc_now())
    if args.json:
        _print_json(data)
    else:
        print(render_status(data))
    return EXIT_OK


def _run_tail(args: argparse.Namespace) -> int:
    from lineside.agent.sync.tail import tail_main

    timeout = None if args.timeout is None else float(args.timeout)
    return tail_main(_load(args), args.json, args.count, timeout)


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=decimal_arg, help="stop by itself after this long")
    p.add_argument(
        "--story",
        action="store_true",
        help="print the backflush story on a throw-away ledger and exit",
    )


def _run_demo(args: argparse.Namespace) -> int:
    from lineside.agent.demo import run_demo

    return run_demo(args)


Runner = Callable[[argparse.Namespace], int]
Adder = Callable[[argparse.ArgumentParser], None]

COMMANDS: dict[str, tuple[str, Adder]] = {
    "check": ("validate a config file without touching devices", _add_check),
    "stock": ("line-side stock per item, location and lot", _add_stock),
    "tx": ("the newest ledger transactions", _add_tx),
    "complete": ("report production by hand (the same path as a PLC count)", _add_complete),
    "receive": ("receive stock at a location (optionally a lot)", _add_receive),
    "count": ("post a cycle count: the difference becomes an adjustment", _add_count),
    "order": ("start, close or list production orders", _add_order),
    "reverse": ("post the exact opposite of a transaction, once", _add_reverse),
    "report": ("journal entries, variance, count accuracy, genealogy", _add_report),
    "held": ("list, release or discard events waiting for stock, data or a person", _add_held),
    "run": ("run the agent: poll devices, backflush, sync (the systemd service)", _add_run),
    "status": ("devices, orders, held events, outbox backlog and broker at a glance", _add_status),
    "tail": ("subscribe as a central system would and check what arrives", _add_tail),
    "simulate": ("stand in for every device of a config (PLCs, scanners, meters)", _add_simulate),
    "demo": ("run the agent on built-in simulators with a local broker, live", _add_demo),
    "central": (central_cli.HELP, central_cli.add_central),
}

RUNNERS: dict[str, Runner] = {
    "check": _run_check,
    "stock": _run_stock,
    "tx": _run_tx,
    "complete": _run_complete,
    "receive": _run_receive,
    "count": _run_count,
    "order": _run_order,
    "reverse": _run_reverse,
    "report": _run_report,
    "held": _run_held,
    "run": _run_run,
    "status": _run_status,
    "tail": _run_tail,
    "simulate": _run_simulate,
    "demo": _run_demo,
    "central": central_cli.run_central,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return RUNNERS[args.command](args)
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


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["build_parser", "main"]
