"""Scrap reasons through the public interface: `lineside complete --reason`, scrap
counters per reason in the config, the catalogue, `lineside report scrap`, the journal
column and an old ledger's scrap. Every number is worked out by hand in the comments.

The demo BOM: one BRKT-100 consumes STEEL-2MM 0.85 kg + 3 % = 0.8755 kg (3 decimals,
1.10 a kg) and, through the phantom PRIMER-KIT, PRIMER-A 0.01 l (3 decimals, 9.00 a l);
BOLT-M8 is flushed by the paint stage and PAINT-9005 is measured, so scrap consumes
neither.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.commands import Complete, CounterReading, Receive, Reverse
from lineside.agent.config import load
from lineside.agent.handlers import Ledger
from lineside.agent.ledger.outbox_pages import PageReader, tx_message
from lineside.agent.ledger.queries import transactions
from lineside.agent.ledger.schema import MIGRATIONS
from lineside.agent.ledger.store import connect
from lineside.agent.scrap_report import scrap_report
from lineside.agent.sync import Sync
from tests.broker import Broker, Consumer, wait_until
from tests.conftest import DEMO_CONFIG, StepClock, write_config
from tests.integration.test_cli import run

D = Decimal
P = "lineside/v1/plant-a/press-3"
CATALOGUE = "\nscrap_reasons:\n  JAM: strip jammed in the die\n  PAINT: paint run\n"


def _cli_line(tmp_path: Path, extra: str = "") -> str:
    cfg = str(write_config(tmp_path, DEMO_CONFIG.read_text() + extra))
    for item, qty, lot in (("STEEL-2MM", "100", "H1"), ("PRIMER-A", "5", "P1")):
        args = ("--item", item, "--qty", qty, "--lot", lot, "--location", "LINE-3")
        assert run("receive", "-c", cfg, *args).returncode == 0
    start = ("--order", "ORD-1", "--work-center", "PRESS-3", "--item", "BRKT-100")
    assert run("order", "start", "-c", cfg, *start).returncode == 0
    return cfg


def _complete(cfg: str, *args: str) -> dict[str, Any]:
    done = run("complete", "-c", cfg, "--work-center", "PRESS-3", "--good", "0", *args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _report(cfg: str, *args: str) -> dict[str, Any]:
    done = run("report", "scrap", "-c", cfg, "--json", *args)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _lines(report: dict[str, Any]) -> list[tuple[str, str, D, D]]:
    return [(r["reason"], r["item"], D(r["qty"]), D(r["cost"])) for r in report["lines"]]


def test_cli_scrap_by_reason_adds_up_to_the_scrap_postings(tmp_path: Path) -> None:
    cfg = _cli_line(tmp_path)
    jam = _complete(cfg, "--scrap", "10", "--reason", "JAM")
    # 10 x 0.8755 = 8.755 kg x 1.10 = 9.6305; 10 x 0.01 = 0.100 l x 9.00 = 0.9
    assert [(t["kind"], t["item"], t["qty"], t.get("reason")) for t in jam["transactions"]] == [
        ("scrap", "STEEL-2MM", "-8.755", "JAM"),
        ("scrap", "PRIMER-A", "-0.100", "JAM"),
    ]
    plain = _complete(cfg, "--scrap", "4")
    # 4 x 0.8755 = 3.502 kg x 1.10 = 3.8522; 4 x 0.01 = 0.040 l x 9.00 = 0.36
    assert {t["reason"] for t in plain["transactions"]} == {"unspecified"}
    good = _complete(cfg, "--good", "2")  # a later --good wins: 2 good units
    assert all("reason" not in t for t in good["transactions"])  # only scrap has a reason
    primer = jam["transactions"][1]["id"]
    undo = run("reverse", "-c", cfg, primer, "--json")
    assert undo.returncode == 0, undo.stderr
    (reversal,) = json.loads(undo.stdout)["transactions"]
    assert (reversal["kind"], reversal["qty"], reversal["reason"]) == ("reversal", "0.100", "JAM")

    report = _report(cfg)
    assert _lines(report) == [
        ("JAM", "STEEL-2MM", D("8.755"), D("9.6305")),
        ("JAM", "PRIMER-A", D("0.000"), D("0")),  # 0.100 scrapped, 0.100 reversed
        ("unspecified", "STEEL-2MM", D("3.502"), D("3.8522")),
        ("unspecified", "PRIMER-A", D("0.040"), D("0.36")),
    ]
    assert [(r["reason"], D(r["cost"])) for r in report["reasons"]] == [
        ("JAM", D("9.6305")),  # 9.6305 + 0.9 - 0.9
        ("unspecified", D("4.2122")),  # 3.8522 + 0.36
    ]
    assert D(report["total_cost"]) == D("13.8427")  # 9.6305 + 4.2122
    # ... which is what the scrap postings and the reversal of one add up to
    txs = json.loads(run("tx", "-c", cfg, "--json").stdout)
    scrap = [t for t in txs if t["kind"] == "scrap" or t["id"] == reversal["id"]]
    assert -sum(D(t["cost"]) for t in scrap) == D(report["total_cost"])

    assert _lines(_report(cfg, "--item", "PRIMER-A")) == [
        ("JAM", "PRIMER-A", D("0.000"), D("0")),
        ("unspecified", "PRIMER-A", D("0.040"), D("0.36")),
    ]
    assert _report(cfg, "--order", "ORD-9") == {"lines": [], "reasons": [], "total_cost": "0"}
    table = run("report", "scrap", "-c", cfg).stdout
    assert "Scrap cost by reason" in table and "13.84270" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--scrap", "2", "--reason", "DENT"), "unknown scrap reason 'DENT' (scrap_reasons: JAM"),
        (("--scrap", "2", "--reason", "bad code"), "may hold only letters"),
        (("--scrap", "2", "--reason", "R" * 33), "1 to 32 characters"),
        (("--good", "2", "--reason", "JAM"), "is for scrapped units"),
    ],
)
def test_a_reason_the_catalogue_does_not_know_is_refused(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    cfg = _cli_line(tmp_path, CATALOGUE)
    before = run("tx", "-c", cfg, "--json").stdout
    done = run("complete", "-c", cfg, "--work-center", "PRESS-3", "--good", "0", *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert run("tx", "-c", cfg, "--json").stdout == before  # nothing posted
    assert _complete(cfg, "--scrap", "1", "--reason", "PAINT")["ok"]  # a known one posts


def test_without_a_catalogue_any_code_is_a_reason(tmp_path: Path) -> None:
    cfg = _cli_line(tmp_path)
    done = _complete(cfg, "--scrap", "1", "--reason", "DENT.left-2")
    assert {t["reason"] for t in done["transactions"]} == {"DENT.left-2"}


def _counting_line(tmp_path: Path) -> Ledger:
    """Two scrap counters, JAM and PAINT, and a posting window of 10 s."""
    text = DEMO_CONFIG.read_text().replace(
        "counters: {good: plc3.good, scrap: plc3.scrap}",
        "counters: {good: plc3.good, scrap: {JAM: plc3.scrap, PAINT: plc3.scrap_paint}}",
    )
    text = text.replace(
        "      painted: {address: 104, type: uint32, table: holding}\n",
        "      painted: {address: 104, type: uint32, table: holding}\n"
        "      scrap_paint: {address: 106, type: uint16, table: holding}\n",
    )
    text += CATALOGUE + "ledger: {commit_interval_s: 5, post_interval_s: 10}\n"
    ledger = open_ledger(load(write_config(tmp_path, text)), StepClock())
    for item, qty, lot in (("STEEL-2MM", "100", "H1"), ("PRIMER-A", "5", "P1")):
        receipt = Receive(
            key=lot, ts=ledger.clock(), item=item, qty=D(qty), lot=lot, location="LINE-3"
        )
        assert ledger.execute(receipt).ok
    return ledger


def test_two_scrap_counters_in_one_window_post_apart_with_their_reasons(tmp_path: Path) -> None:
    ledger = _counting_line(tmp_path)
    now = 0.0

    def offer(**values: int) -> list[Any]:
        nonlocal now
        now += 0.25
        readings = [
            CounterReading(key=p, ts=ledger.clock(), point=p, value=v)
            for p, v in (
                ("plc3.scrap", values.get("jam")),
                ("plc3.scrap_paint", values.get("paint")),
            )
            if v is not None
        ]
        return ledger.offer(readings, now)

    due = offer(jam=0, paint=0)  # baselines: written at once, nothing posted
    assert all(r.ok and not r.transactions for r in ledger.execute_batch(due))
    assert offer(jam=3) == [] and offer(jam=7, paint=2) == []  # both wait in one window
    posted = [t for r in ledger.execute_batch(ledger.take_waiting()) for t in r.transactions]
    # One posting per counter: JAM 0 -> 7 (the window keeps the newest reading), PAINT 0 -> 2.
    # The rounding carry is the work center's, across reasons, so no drift:
    #   JAM   7 x 0.8755 = 6.1285 -> 6.129 kg (half up) x 1.10 = 6.7419; 0.070 l x 9 = 0.63
    #   PAINT exact 6.1285 + 1.751 = 7.8795 -> 7.880, posted 7.880 - 6.129 = 1.751 kg
    #         x 1.10 = 1.9261; primer 0.090 - 0.070 = 0.020 l x 9 = 0.18
    assert [(t["reason"], t["item"], D(t["qty"]), D(t["cost"]), t["cause"]) for t in posted] == [
        ("JAM", "STEEL-2MM", D("-6.129"), D("-6.7419"), "plc3.scrap:0->7"),
        ("JAM", "PRIMER-A", D("-0.070"), D("-0.63"), "plc3.scrap:0->7"),
        ("PAINT", "STEEL-2MM", D("-1.751"), D("-1.9261"), "plc3.scrap_paint:0->2"),
        ("PAINT", "PRIMER-A", D("-0.020"), D("-0.18"), "plc3.scrap_paint:0->2"),
    ]
    report = scrap_report(ledger.conn)
    assert [(r["reason"], D(r["cost"])) for r in report["reasons"]] == [
        ("JAM", D("7.3719")),  # 6.7419 + 0.63
        ("PAINT", D("2.1061")),  # 1.9261 + 0.18
    ]
    assert D(report["total_cost"]) == D("9.4780")  # 7.3719 + 2.1061
    ledger.conn.close()


def test_scrap_rows_publish_the_same_bytes_as_the_python_builder(tmp_path: Path) -> None:
    """The outbox's SQL builds a scrap row's JSON with its reason exactly as Python does."""
    ledger = _counting_line(tmp_path)
    ts = ledger.clock
    for n, reason in enumerate(("JAM", None, "PAINT")):
        cmd = Complete(key=f"c{n}", ts=ts(), work_center="PRESS-3", good=1, scrap=2, reason=reason)
        assert ledger.execute(cmd).ok
    first = ledger.conn.execute("SELECT id FROM journal WHERE kind = 'scrap' LIMIT 1").fetchone()[0]
    assert ledger.execute(Reverse(key="r1", ts=ts(), tx_id=first)).ok
    python = [json.dumps(t, separators=(",", ":")) for t in transactions(ledger.conn)]
    assert any('"reason":"unspecified"' in p for p in python)
    assert sum('"reason":"JAM"' in p for p in python) == 3  # steel, primer, the reversal
    for batch in (1, 4, 100):
        messages = PageReader(ledger.conn, "press-3", batch).read(0, 1, 1000)
        want, at = [], 0
        for m in messages:
            want.append(tx_message("press-3", m.seq, python[at : at + m.count]))
            at += m.count
        assert [m.payload for m in messages] == want
    ledger.conn.close()


def test_an_old_ledger_migrates_and_its_scrap_is_unspecified(tmp_path: Path) -> None:
    """A ledger of main's schema (version 5, no reason column) with scrap in it."""
    ledger = _counting_line(tmp_path)
    ts = ledger.clock
    assert ledger.execute(Complete(key="c1", ts=ts(), work_center="PRESS-3", scrap=10)).ok
    first = ledger.conn.execute("SELECT id FROM journal WHERE kind = 'scrap' LIMIT 1").fetchone()[0]
    assert ledger.execute(Reverse(key="r1", ts=ts(), tx_id=first)).ok
    db = Path(ledger.conn.execute("PRAGMA database_list").fetchone()[2])
    ledger.conn.close()
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as old:
        old.execute("ALTER TABLE journal DROP COLUMN reason")
        old.execute("PRAGMA user_version = 6")  # as m006 (lot expiry) left it
    conn = connect(db)  # migrates
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT COUNT(*) FROM journal WHERE reason IS NOT NULL").fetchone() == (
            0,
        )
        report = scrap_report(conn)
        # 10 x 0.8755 = 8.755 kg (reversed: 0) ; 10 x 0.01 = 0.100 l x 9.00 = 0.9
        assert [(r["reason"], r["item"], D(r["qty"]), D(r["cost"])) for r in report["lines"]] == [
            ("unspecified", "STEEL-2MM", D("0"), D("0")),
            ("unspecified", "PRIMER-A", D("0.100"), D("0.9")),
        ]
        assert D(report["total_cost"]) == D("0.9")
        published = [m.payload for m in PageReader(conn, "press-3", 100).read(0, 1, 10)]
        assert published and b'"reason"' not in published[0]  # as main published them
    finally:
        conn.close()


@pytest.mark.broker
def test_the_mqtt_production_command_carries_the_reason_to_p_tx(
    broker: Broker, tmp_path: Path
) -> None:
    text = DEMO_CONFIG.read_text().replace("port: 18830\n", f"port: {broker.port}\n")
    config = load(write_config(tmp_path, text + CATALOGUE))
    ledger = open_ledger(config, StepClock())
    for item, qty, lot in (("STEEL-2MM", "100", "H1"), ("PRIMER-A", "5", "P1")):
        receipt = Receive(
            key=lot, ts=ledger.clock(), item=item, qty=D(qty), lot=lot, location="LINE-3"
        )
        assert ledger.execute(receipt).ok
    central = Consumer(broker.port, [f"{P}/reply/#", f"{P}/tx"]).start()  # checks schemas
    sync = Sync(config, ledger, config.data_dir / LEDGER_FILE)
    sync.start()
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-mes")
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()

    def send(payload: dict[str, Any]) -> dict[str, Any]:
        sender.publish(f"{P}/cmd/production", json.dumps(payload), qos=1).wait_for_publish(5)
        rid = payload["request_id"]

        def answered() -> list[dict[str, Any]]:
            got = [json.loads(p) for t, p, _ in list(central.messages) if "/reply/" in t]
            return [r for r in got if r["request_id"] == rid]

        wait_until(lambda: bool(answered()), 15, f"the reply to {rid}")
        return answered()[-1]

    try:
        wait_until(lambda: sync.commands_ready, 10, "the agent to subscribe to its commands")
        jam = {
            "request_id": "p1",
            "work_center": "PRESS-3",
            "good": 5,
            "scrap": 10,
            "reason": "JAM",
        }
        assert send(jam) == {"request_id": "p1", "ok": True, "error": None}
        before = ledger.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        dent = {"request_id": "p2", "work_center": "PRESS-3", "scrap": 1, "reason": "DENT"}
        refused = send(dent)
        assert refused["ok"] is False and "unknown scrap reason 'DENT'" in refused["error"]
        bad = send({"request_id": "p3", "work_center": "PRESS-3", "scrap": 1, "reason": "a b"})
        assert bad["ok"] is False and "reason" in bad["error"]
        assert send(jam)["ok"] is True  # the same request_id again: not applied again
        assert ledger.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == before

        def published() -> list[dict[str, Any]]:
            msgs = [json.loads(p) for t, p, _ in list(central.messages) if t.endswith("/tx")]
            return [t for m in msgs for t in m["transactions"]]

        wait_until(lambda: any(t["kind"] == "scrap" for t in published()), 15, "the scrap on P/tx")
        # 10 x 0.8755 = 8.755 kg x 1.10 = 9.6305; 10 x 0.01 = 0.100 l x 9.00 = 0.9
        assert [
            (t["item"], t["qty"], D(t["cost"]), t["reason"])
            for t in published()
            if t["kind"] == "scrap"
        ] == [
            ("STEEL-2MM", "-8.755", D("-9.6305"), "JAM"),
            ("PRIMER-A", "-0.100", D("-0.9"), "JAM"),
        ]
        assert all("reason" not in t for t in published() if t["kind"] != "scrap")
        report = scrap_report(ledger.conn)
        assert [(r["reason"], D(r["cost"])) for r in report["reasons"]] == [("JAM", D("10.5305"))]
    finally:
        sync.stop(5)
        sender.disconnect()
        sender.loop_stop()
        central.stop()
        ledger.conn.close()


def test_scrap_held_for_stock_posts_later_with_its_reason(tmp_path: Path) -> None:
    text = DEMO_CONFIG.read_text().replace("on_shortage: allow", "on_shortage: hold")
    ledger = open_ledger(load(write_config(tmp_path, text)), StepClock())
    ts = ledger.clock
    cmd = Complete(key="c1", ts=ts(), work_center="PRESS-3", scrap=2, reason="JAM")
    held = ledger.execute(cmd)
    assert held.ok and not held.transactions
    assert [(a["kind"], a["role"]) for a in held.alerts] == [("held", "scrap:JAM")]
    for item, qty in (("STEEL-2MM", "10"), ("PRIMER-A", "1")):
        receipt = Receive(key=item, ts=ts(), item=item, qty=D(qty), lot="L1", location="LINE-3")
        assert ledger.execute(receipt).ok
    scrap = [t for t in transactions(ledger.conn) if t["kind"] == "scrap"]
    # 2 x 0.8755 = 1.751 kg; 2 x 0.01 = 0.020 l: posted once the primer arrived
    assert [(t["item"], t["qty"], t["reason"]) for t in scrap] == [
        ("STEEL-2MM", "-1.751", "JAM"),
        ("PRIMER-A", "-0.020", "JAM"),
    ]
    ledger.conn.close()
