"""Commands that read the books: stock, tx and the reports. They print, reports.py shapes."""

from __future__ import annotations

import argparse
from typing import Any

from lineside.agent import expiry_report, reports
from lineside.agent.cli.options import as_json, config, count_arg
from lineside.agent.cli.shared import TX_COLUMNS, ledger_of, print_json
from lineside.agent.cli.table import action, actions, arg, command
from lineside.agent.ledger import queries
from lineside.agent.scrap_report import scrap_report, scrap_text
from lineside.agent.tables import render
from lineside.cli_options import EXIT_OK
from lineside.clock import utc_now


@command(
    "stock",
    "line-side stock per item, location and lot",
    config,
    arg("--item", help="only this item"),
    arg("--all", action="store_true", help="also lots used up (balance 0)"),
    as_json,
)
def _run_stock(args: argparse.Namespace) -> int:
    ledger = ledger_of(args)
    data = reports.stock(ledger.conn, ledger.master, args.item, empty=args.all)
    data = expiry_report.with_expiry(ledger.conn, data)
    if args.json:
        print_json(data)
    else:
        print(render(data, ("item", "location", "lot", "qty", "uom", "expiry")))
    return EXIT_OK


@command(
    "tx",
    "the newest ledger transactions",
    config,
    arg("--limit", type=count_arg, default=50, help="newest N (default 50, 0 = all)"),
    arg("--kind", help="only this kind (backflush, completion, scrap, measured, ...)"),
    arg("--item", help="only this item"),
    arg("--order", help="only this production order"),
    as_json,
)
def _run_tx(args: argparse.Namespace) -> int:
    ledger = ledger_of(args)
    data = queries.transactions(
        ledger.conn, limit=args.limit or None, kind=args.kind, item=args.item, order=args.order
    )
    if args.json:
        print_json(data)
    else:
        print(render(data, ("ts", *TX_COLUMNS)))
    return EXIT_OK


def _genealogy_choice(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--order", help="list the lots this order consumed")
    which.add_argument("--lot", help="list the orders that consumed this lot (a recall)")


@command(
    "report",
    "journal entries, variance, count accuracy, genealogy, scrap by reason, lots by expiry",
    actions(
        "report",
        "REPORT",
        action(
            "journal",
            "journal entries at the completion trigger (backflush costing)",
            config,
            as_json,
        ),
        action(
            "variance",
            "measured consumption against standard, per order and item",
            config,
            as_json,
        ),
        action("counts", "count accuracy per item and what to count next", config, as_json),
        action(
            "genealogy",
            "lots an order consumed, or orders that consumed a lot",
            config,
            _genealogy_choice,
            as_json,
        ),
        action(
            "scrap",
            "scrap by reason, order and component item (quantity and cost)",
            config,
            arg("--order", help="only this production order"),
            arg("--item", help="only this component item"),
            as_json,
        ),
        action(
            "expiry",
            "lots on hand by expiry date, earliest first, expired ones flagged",
            config,
            arg("--within", type=count_arg, help="only lots expiring within DAYS (and expired)"),
            as_json,
        ),
    ),
)
def _run_report(args: argparse.Namespace) -> int:
    ledger = ledger_of(args)
    if args.report == "journal":
        return _print_journal(reports.journal_entries(ledger.conn, ledger.master), args.json)
    if args.report == "counts":
        return _print_counts(reports.counts(ledger.conn, ledger.master, utc_now()), args.json)
    if args.report == "scrap":
        scrap = scrap_report(ledger.conn, args.order, args.item)
        if args.json:
            print_json(scrap)
        else:
            print(scrap_text(scrap))
        return EXIT_OK
    if args.report == "expiry":
        lots = expiry_report.lots_by_expiry(
            ledger.conn, ledger.master, utc_now().date(), args.within
        )
        if not args.json:
            lots = expiry_report.as_text(lots)
        return _print_rows(lots, expiry_report.EXPIRY_COLUMNS, args.json)
    cols: tuple[str, ...]
    if args.report == "variance":
        data = reports.variance(ledger.conn, ledger.master)
        cols = VARIANCE_COLUMNS
    elif args.order:
        data = reports.genealogy_of_order(ledger.conn, args.order)
        cols = ("item", "lot", "qty", "uom", "work_center")
    else:
        data = reports.genealogy_of_lot(ledger.conn, args.lot)
        cols = ("order", "item", "qty", "uom", "work_center")
    return _print_rows(data, cols, args.json)


def _print_rows(data: list[dict[str, Any]], cols: tuple[str, ...], machine: bool) -> int:
    if machine:
        print_json(data)
    else:
        print(render(data, cols))
    return EXIT_OK


VARIANCE_COLUMNS = (
    "order",
    "work_center",
    "item",
    "standard",
    "measured",
    "variance",
    "variance_pct",
    "uom",
)


def _print_journal(entries: list[dict[str, Any]], machine: bool) -> int:
    if machine:
        print_json(entries)
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


def _print_counts(counts: dict[str, Any], machine: bool) -> int:
    if machine:
        print_json(counts)
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
