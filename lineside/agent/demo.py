"""`lineside demo`: the whole backflush story on a throw-away ledger, no hardware needed."""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from lineside.agent import reports
from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import Complete, CounterReading, MeterReading, Receive, StartOrder
from lineside.agent.config import load_text
from lineside.agent.tables import render
from lineside.data import data_text


def demo_config_text() -> str:
    return data_text("demo.yaml")


def run_demo(args: argparse.Namespace | None = None) -> int:
    if args is not None and getattr(args, "story", False):
        return run_story()
    from lineside.agent.demo_live import run_live

    seconds = getattr(args, "seconds", None)
    return run_live(None if seconds is None else float(seconds))


def run_story() -> int:
    """The backflush story on a throw-away ledger, printed once (no devices, no broker)."""
    with tempfile.TemporaryDirectory(prefix="lineside-demo-") as tmp:
        text = demo_config_text().replace("data_dir: ../var/demo", f"data_dir: {tmp}")
        loaded = load_text(text, Path(tmp) / "demo.yaml")
        ledger = open_ledger(loaded)
        t0 = datetime.now(UTC)
        step = iter(range(1_000_000))

        def at() -> datetime:
            return t0 + timedelta(seconds=next(step))

        print("lineside demo: press PRESS-3 makes BRKT-100 (see config/demo.yaml)\n")
        for item, qty, lot in (
            ("STEEL-2MM", "500", "HEAT-1"),
            ("STEEL-2MM", "500", "HEAT-2"),
            ("BOLT-M8", "5000", None),
            ("PRIMER-A", "8", "PR-7"),
            ("PAINT-9005", "40", "P-1"),
        ):
            ledger.execute(
                Receive(
                    key=f"demo-rcv-{item}-{lot}",
                    ts=at(),
                    item=item,
                    qty=Decimal(qty),
                    lot=lot,
                    location="LINE-3",
                )
            )
        ledger.execute(
            StartOrder(
                key="demo-order",
                ts=at(),
                order="ORD-1001",
                work_center="PRESS-3",
                item="BRKT-100",
                qty=Decimal(1000),
            )
        )
        print("PLC counters: good 0 -> 1000 in steps of 10; paint stage follows; pump runs\n")
        for point in ("plc3.good", "plc3.painted", "plc3.scrap", "doser3.total_l"):
            _read(ledger, point, 0, at())
        for n in range(10, 1001, 10):
            _read(ledger, "plc3.good", n, at())
            _read(ledger, "plc3.painted", n, at())
            _read(ledger, "doser3.total_l", Decimal(n) * Decimal("0.0213"), at())
        _read(ledger, "plc3.scrap", 12, at())
        ledger.execute(Complete(key="demo-hand", ts=at(), work_center="PRESS-3", good=0, scrap=0))
        master = ledger.master
        print("Stock at LINE-3 (negative PRIMER-A asks for a count)")
        print(render(reports.stock(ledger.conn, master), ("item", "location", "lot", "qty", "uom")))
        print("\nJournal entry for ORD-1001 (backflush costing)")
        currency = loaded.config.gateway.currency.currency()
        for entry in reports.journal_entries(ledger.conn, master, currency):
            print(reports.entry_text(entry))
        print("\nMeasured paint against standard")
        print(
            render(
                reports.variance(ledger.conn, master),
                ("order", "item", "standard", "measured", "variance", "variance_pct"),
            )
        )
        print("\nGenealogy: lots consumed by ORD-1001")
        print(
            render(
                reports.genealogy_of_order(ledger.conn, "ORD-1001"), ("item", "lot", "qty", "uom")
            )
        )
        ledger.conn.close()
    return 0


def _read(ledger: object, point: str, value: int | Decimal, ts: datetime) -> None:
    from lineside.agent.handlers import Ledger

    assert isinstance(ledger, Ledger)
    if point.startswith("doser"):
        ledger.execute(MeterReading(key=point, ts=ts, point=point, value=Decimal(value)))
    else:
        ledger.execute(CounterReading(key=point, ts=ts, point=point, value=int(value)))
