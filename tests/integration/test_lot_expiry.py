"""Lot expiry through the public interface: `lineside receive --expiry`, FEFO backflush, the
lot_expired alert once (also across a restart), stock and report expiry, old ledgers.

Quantities are worked out by hand in each test. BOLT-M8 is consumed 4 per painted unit
(config/demo.yaml: BRKT-100's stage paint)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.commands import Complete, Receive
from lineside.agent.config import LoadedConfig, load
from lineside.agent.handlers import Ledger
from lineside.agent.ledger.schema import MIGRATIONS
from tests.conftest import StepClock, write_config
from tests.integration.test_cli import run

D = Decimal
BOLT = '  BOLT-M8:    {uom: ea, cost: 0.05, gtin: "09521234543220"}'
FEFO_BOLT = '  BOLT-M8:    {uom: ea, cost: 0.05, gtin: "09521234543220", removal: fefo}'


def fefo_config(tmp_path: Path, **more: str) -> Path:
    return write_config(tmp_path, **{BOLT: FEFO_BOLT}, **more)


def receive(cfg: str, lot: str, qty: str, expiry: date | None) -> dict[str, object]:
    args = ["receive", "-c", cfg, "--item", "BOLT-M8", "--qty", qty, "--lot", lot]
    args += ["--location", "LINE-3", "--json"]
    if expiry is not None:
        args += ["--expiry", expiry.isoformat()]
    result: dict[str, object] = json.loads(run(*args).stdout)
    return result


def paint(cfg: str, units: int) -> dict[str, object]:
    args = ("complete", "-c", cfg, "--work-center", "PRESS-3", "--stage", "paint")
    done = run(*args, "--good", str(units), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def bolts(cfg: str) -> dict[str, tuple[str, str | None]]:
    stock = json.loads(run("stock", "-c", cfg, "--item", "BOLT-M8", "--json").stdout)
    return {row["lot"]: (row["qty"], row["expiry"]) for row in stock}


def test_fefo_across_three_lots_with_one_expired(tmp_path: Path) -> None:
    cfg = str(fefo_config(tmp_path))
    today = datetime.now(UTC).date()  # the CLI posts at the wall clock's time
    expired, a_day, b_day = today - timedelta(days=1), today + timedelta(37), today + timedelta(16)
    # received in FIFO order C, A, B: FIFO would start with the expired C
    assert receive(cfg, "C", "16", expired)["ok"]
    assert receive(cfg, "A", "20", a_day)["ok"]
    assert receive(cfg, "B", "12", b_day)["ok"]

    first = paint(cfg, 6)
    # 6 units x 4 = 24 bolts: B (earliest) 12, then A 12 of 20; C expired, untouched
    taken = [(t["lot"], D(t["qty"])) for t in first["transactions"]]  # type: ignore[attr-defined]
    assert taken == [("B", D(-12)), ("A", D(-12))]
    alerts = first["alerts"]
    assert [(a["kind"], a["lot"], a["expiry"]) for a in alerts] == [  # type: ignore[attr-defined]
        ("lot_expired", "C", expired.isoformat())
    ]

    second = paint(cfg, 3)
    # 3 x 4 = 12 bolts: A's 8 left (20 - 12), then 4 short on the lot-less row; C still
    # untouched and not alerted again
    taken = [(t["lot"], D(t["qty"])) for t in second["transactions"]]  # type: ignore[attr-defined]
    assert taken == [("A", D(-8)), (None, D(-4))]
    assert [a["kind"] for a in second["alerts"]] == ["negative_stock"]  # type: ignore[attr-defined]
    assert bolts(cfg) == {
        "C": ("16", expired.isoformat()),
        None: ("-4", None),
    }
    table = run("stock", "-c", cfg, "--item", "BOLT-M8", "--all").stdout.splitlines()
    assert table[0].split() == ["ITEM", "LOCATION", "LOT", "QTY", "UOM", "EXPIRY"]
    assert f"BOLT-M8  LINE-3    C     16  ea   {expired.isoformat()}" in table


def test_report_expiry_lists_lots_by_expiry(tmp_path: Path) -> None:
    cfg = str(fefo_config(tmp_path))
    today = datetime.now(UTC).date()
    for lot, qty, days in (("A", "20", 37), ("B", "12", 16), ("C", "16", -1)):
        assert receive(cfg, lot, qty, today + timedelta(days))["ok"]
    assert receive(cfg, "U", "5", None)["ok"]  # no expiry: not in the report
    report = json.loads(run("report", "expiry", "-c", cfg, "--json").stdout)
    assert [(r["lot"], r["qty"], r["days_left"], r["expired"]) for r in report] == [
        ("C", "16", -1, True),
        ("B", "12", 16, False),
        ("A", "20", 37, False),
    ]
    within = json.loads(run("report", "expiry", "-c", cfg, "--within", "16", "--json").stdout)
    assert [r["lot"] for r in within] == ["C", "B"]  # 37 days left is beyond 16
    text = run("report", "expiry", "-c", cfg).stdout.splitlines()
    assert text[0].split() == [
        "ITEM",
        "LOT",
        "LOCATION",
        "QTY",
        "UOM",
        "EXPIRY",
        "DAYS",
        "LEFT",
        "EXPIRED",
    ]
    assert text[1].split()[-2:] == ["-1", "yes"]


def test_a_lot_keeps_its_first_expiry(tmp_path: Path) -> None:
    cfg = str(fefo_config(tmp_path))
    day = date(2027, 1, 10)
    assert receive(cfg, "A", "5", day)["ok"]
    again = receive(cfg, "A", "2", day)  # the same date again: fine
    assert again["ok"]
    other = receive(cfg, "A", "3", date(2027, 1, 11))
    assert not other["ok"]
    assert other["error"] == (
        "lot A of BOLT-M8 expires 2027-01-10, not 2027-01-11:"
        " receive it under another lot, or correct the label"
    )
    undated = receive(cfg, "A", "1", None)  # a receipt that does not say keeps the date
    assert undated["ok"]
    # 5 + 2 + 1 = 8: the refused 3 never arrived
    assert bolts(cfg) == {"A": ("8", "2027-01-10")}
    lotless = run(
        "receive", "-c", cfg, "--item", "BOLT-M8", "--qty", "1", "--location", "LINE-3",
        "--expiry", "2027-01-10", "--json",
    )  # fmt: skip
    assert json.loads(lotless.stdout)["error"] == (
        "an expiry needs a lot: stock without a lot has no expiry"
    )
    bad = run("receive", "-c", cfg, "--item", "BOLT-M8", "--qty", "1", "--lot", "Z",
              "--location", "LINE-3", "--expiry", "2027-02-30")  # fmt: skip
    assert bad.returncode == 2 and "'2027-02-30' is not a day of the calendar" in bad.stderr


# -- in process, at the StepClock's time (2026-01-05) ---------------------------------------


@contextlib.contextmanager
def opened(config: LoadedConfig) -> Iterator[Ledger]:
    ledger = open_ledger(config, StepClock())
    try:
        yield ledger
    finally:
        ledger.conn.close()


def _receive(ledger: Ledger, lot: str, qty: int, expiry: date | None) -> None:
    result = ledger.execute(
        Receive(key=f"rcv-{lot}", ts=ledger.clock(), item="BOLT-M8", qty=D(qty),
                location="LINE-3", lot=lot, expiry=expiry)
    )  # fmt: skip
    assert result.ok, result.error


def _paint(
    ledger: Ledger, key: str, units: int
) -> tuple[list[tuple[str | None, Decimal]], list[str]]:
    result = ledger.execute(
        Complete(key=key, ts=ledger.clock(), work_center="PRESS-3", good=units, stage="paint")
    )
    assert result.ok, result.error
    taken = [(t["lot"], D(t["qty"])) for t in result.transactions]
    return taken, [a["kind"] for a in result.alerts]


def _alerts_in_outbox(ledger: Ledger, kind: str) -> int:
    sql = "SELECT COUNT(*) FROM outbox WHERE stream = 'alert' AND payload ->> '$.kind' = ?"
    return int(ledger.conn.execute(sql, (kind,)).fetchone()[0])


def test_an_expired_lot_is_never_consumed_and_alerts_once_across_a_restart(
    tmp_path: Path,
) -> None:
    config = load(fefo_config(tmp_path))
    with opened(config) as ledger:
        _receive(ledger, "OLD", 40, date(2026, 1, 4))  # expired the day before the clock's
        _receive(ledger, "NEW", 8, date(2026, 6, 30))
        # 1 unit = 4 bolts from NEW (8 -> 4); OLD passed over
        assert _paint(ledger, "p1", 1) == ([("NEW", D(-4))], ["lot_expired"])
        assert _paint(ledger, "p2", 1) == ([("NEW", D(-4))], [])  # NEW 4 -> 0
    with opened(config) as ledger:  # the agent restarted: the alert was remembered
        # 2 units = 8 bolts: NEW is used up, OLD expired: all 8 short (on_shortage allow)
        assert _paint(ledger, "p3", 2) == ([(None, D(-8))], ["negative_stock"])
        assert _alerts_in_outbox(ledger, "lot_expired") == 1
        assert ledger.conn.execute(
            "SELECT qty FROM stock WHERE item = 'BOLT-M8' AND lot = 'OLD'"
        ).fetchone() == ("40",)


def test_on_shortage_hold_holds_what_only_an_expired_lot_could_cover(tmp_path: Path) -> None:
    config = load(fefo_config(tmp_path, **{"on_shortage: allow": "on_shortage: hold"}))
    with opened(config) as ledger:
        _receive(ledger, "OLD", 40, date(2026, 1, 4))
        result = ledger.execute(
            Complete(key="p1", ts=ledger.clock(), work_center="PRESS-3", good=1, stage="paint")
        )
        assert result.ok
        assert [a["kind"] for a in result.alerts] == ["lot_expired", "held"]
        assert "BOLT-M8 short 4" in result.alerts[1]["reason"]
        assert not result.transactions  # nothing consumed: the 4 bolts wait, OLD keeps 40


def test_min_shelf_life_passes_over_a_lot_and_alerts_once(tmp_path: Path) -> None:
    picky = FEFO_BOLT.replace("removal: fefo", "removal: fefo, min_shelf_life_days: 30")
    config = load(write_config(tmp_path, **{BOLT: picky}))
    with opened(config) as ledger:
        _receive(ledger, "SOON", 10, date(2026, 1, 25))  # 20 days left on 2026-01-05
        _receive(ledger, "LATE", 10, date(2026, 3, 1))  # 55 days left
        assert _paint(ledger, "p1", 1) == ([("LATE", D(-4))], ["lot_short_shelf_life"])
        assert _paint(ledger, "p2", 1) == ([("LATE", D(-4))], [])
        alert = json.loads(
            ledger.conn.execute(
                "SELECT payload FROM outbox WHERE stream = 'alert'"
                " AND payload ->> '$.kind' = 'lot_short_shelf_life'"
            ).fetchone()[0]
        )
        assert (alert["lot"], alert["days_left"], alert["expiry"]) == ("SOON", 20, "2026-01-25")


def test_fifo_items_ignore_expiry_order_but_never_take_an_expired_lot(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))  # BOLT-M8 is fifo (the default)
    with opened(config) as ledger:
        _receive(ledger, "OLD", 4, date(2026, 1, 4))  # expired
        _receive(ledger, "LATE", 8, date(2026, 9, 1))  # oldest usable: FIFO takes it first
        _receive(ledger, "SOON", 8, date(2026, 2, 1))
        # 3 units = 12 bolts: LATE 8, SOON 4; OLD passed over
        taken, alerts = _paint(ledger, "p1", 3)
        assert taken == [("LATE", D(-8)), ("SOON", D(-4))]
        assert alerts == ["lot_expired"]


def test_a_ledger_of_the_previous_schema_gets_the_lots_table(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    with opened(config) as ledger:
        _receive(ledger, "H1", 10, None)
    db = config.data_dir / LEDGER_FILE
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP TABLE lots")  # as schema version 5 left it
        conn.execute("ALTER TABLE journal DROP COLUMN reason")  # m007's
        conn.execute("PRAGMA user_version = 5")
    with opened(config) as ledger:  # migrates
        assert ledger.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        _receive(ledger, "H2", 10, date(2026, 1, 4))  # expired: never consumed
        # 1 unit = 4 bolts from H1 (the undated old stock); H2 passed over
        assert _paint(ledger, "p1", 1) == ([("H1", D(-4))], ["lot_expired"])


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("removal: lifo", "items.BOLT-M8.removal: Input should be 'fifo' or 'fefo'"),
        ("removal: FEFO", "items.BOLT-M8.removal: Input should be 'fifo' or 'fefo'"),
        ("min_shelf_life_days: -1", "items.BOLT-M8.min_shelf_life_days: Input should be greater"),
        (
            "min_shelf_life_days: 40000",
            "items.BOLT-M8.min_shelf_life_days: Input should be less than or equal",
        ),
    ],
)
def test_bad_expiry_keys_name_the_file_line_and_key(
    tmp_path: Path, keys: str, message: str
) -> None:
    cfg = str(write_config(tmp_path, **{BOLT: FEFO_BOLT.replace("removal: fefo", keys)}))
    checked = run("check", "-c", cfg)
    assert checked.returncode != 0
    assert f"line.yaml:16: {message}" in checked.stdout + checked.stderr
