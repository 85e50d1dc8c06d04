"""The technician's command line as a subprocess: exit codes, tables, --json, no tracebacks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_config


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineside.agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def cfg(tmp_path: Path) -> str:
    return str(write_config(tmp_path))


def test_help_for_every_command() -> None:
    for command in (
        "check",
        "stock",
        "tx",
        "complete",
        "receive",
        "count",
        "order",
        "reverse",
        "report",
        "held",
    ):
        result = run(command, "--help")
        assert result.returncode == 0 and "usage: lineside" in result.stdout, command


def test_receive_complete_stock_json(cfg: str) -> None:
    assert (
        run(
            "receive",
            "-c",
            cfg,
            "--item",
            "STEEL-2MM",
            "--qty",
            "100",
            "--lot",
            "H1",
            "--location",
            "LINE-3",
        ).returncode
        == 0
    )
    done = run("complete", "-c", cfg, "--work-center", "PRESS-3", "--good", "10", "--scrap", "1")
    assert done.returncode == 0, done.stderr
    assert "backflush" in done.stdout and "scrap" in done.stdout
    stock = json.loads(run("stock", "-c", cfg, "--json").stdout)
    assert {
        "item": "STEEL-2MM",
        "location": "LINE-3",
        "lot": "H1",
        "qty": "90.369",
        "uom": "kg",
        "expiry": None,  # issue 16: stock shows the lot's expiry (H1 has none)
    } in stock
    assert all(set(row) == {"item", "location", "lot", "qty", "uom", "expiry"} for row in stock)
    txs = json.loads(run("tx", "-c", cfg, "--json").stdout)
    assert set(txs[0]) == {
        "id",
        "ts",
        "kind",
        "item",
        "location",
        "qty",
        "uom",
        "lot",
        "order",
        "work_center",
        "cost",
        "cause",
    }
    table = run("stock", "-c", cfg).stdout.splitlines()
    assert table[0].split() == ["ITEM", "LOCATION", "LOT", "QTY", "UOM", "EXPIRY"]


def test_zero_good_is_allowed_and_request_id_applies_once(cfg: str) -> None:
    assert run("complete", "-c", cfg, "--work-center", "PRESS-3", "--good", "0").returncode == 0
    args = ("complete", "-c", cfg, "--work-center", "PRESS-3", "--good", "3", "--request-id", "r1")
    assert run(*args).returncode == 0
    again = run(*args)
    assert again.returncode == 0 and "already applied" in again.stdout
    stock = json.loads(run("stock", "-c", cfg, "--json", "--item", "BRKT-100").stdout)
    assert [row["qty"] for row in stock] == ["3"]


def test_second_reversal_exits_1(cfg: str) -> None:
    run("receive", "-c", cfg, "--item", "BOLT-M8", "--qty", "10", "--location", "LINE-3")
    tx_id = json.loads(run("tx", "-c", cfg, "--json").stdout)[0]["id"]
    assert run("reverse", "-c", cfg, tx_id).returncode == 0
    second = run("reverse", "-c", cfg, tx_id)
    assert second.returncode == 1 and "already reversed" in second.stderr
    assert "Traceback" not in second.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("complete", "--work-center", "PRESS-3", "--good", "-1"),
        ("complete", "--work-center", "PRESS-3", "--good", "two"),
        ("receive", "--item", "BOLT-M8", "--qty", "1e", "--location", "L"),
        ("receive", "--item", "NOPE", "--qty", "1", "--location", "L"),
        ("receive", "--item", "BOLT-M8", "--qty", "0.5", "--location", "L"),
        ("complete", "--work-center", "NOPE", "--good", "1"),
        ("order", "close", "--order", "NOPE"),
        ("report", "genealogy"),
        # Deterministic bad input, never "exit 1, InvalidOperation" (issue 11 items 7, 10).
        ("receive", "--item", "BOLT-M8", "--qty", "1e400", "--location", "LINE-3"),
        ("receive", "--item", "BOLT-M8", "--qty", "1" * 29, "--location", "LINE-3"),
        ("receive", "--item", "STEEL-2MM", "--qty", "9999999999999999999999999.999",
         "--location", "LINE-3"),
        ("count", "--item", "BOLT-M8", "--qty", "١٢", "--location", "LINE-3"),
        ("receive", "--item", "BOLT-M8", "--qty", "1", "--location", ""),
        ("receive", "--item", "BOLT-M8", "--qty", "1", "--location", "NOWHERE"),
        ("receive", "--item", "BOLT-M8", "--qty", "1", "--location", "LINE-3", "--lot", "L\x01"),
        ("order", "start", "--work-center", "PRESS-3", "--order", "PO-1", "--item", "PRIMER-KIT"),
        ("order", "start", "--work-center", "PRESS-3", "--order", "PO-2", "--item", "BRKT-100",
         "--qty", "1e400"),
    ],
)
def test_bad_input_exits_2_with_a_message(cfg: str, args: tuple[str, ...]) -> None:
    result = (
        run(*args[:2], "-c", cfg, *args[2:])
        if args[0] in ("order", "report")
        else run(args[0], "-c", cfg, *args[1:])
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip() and "Traceback" not in result.stderr


def test_a_quantity_in_exponent_form_never_reaches_a_payload(cfg: str) -> None:
    """--qty 1E+5 once became qty "1E+5" and cost "5E+3" in P/tx: decimals are plain."""
    refused = run("receive", "-c", cfg, "--item", "BOLT-M8", "--qty", "1E+5",
                  "--location", "LINE-3")
    assert refused.returncode == 2 and "is not a decimal string" in refused.stderr
    done = run("receive", "-c", cfg, "--item", "BOLT-M8", "--qty", "100000",
               "--location", "LINE-3", "--json")
    assert done.returncode == 0, done.stderr
    tx = json.loads(done.stdout)["transactions"][0]
    assert (tx["qty"], tx["cost"]) == ("100000", "5000.00")


def test_config_from_environment_and_missing_config(cfg: str) -> None:
    assert run("stock", env={"LINESIDE_CONFIG": cfg}).returncode == 0
    missing = run("stock", env={"LINESIDE_CONFIG": ""})
    assert missing.returncode == 2 and "LINESIDE_CONFIG" in missing.stderr


def test_check_reports_file_line_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, **{"{item: BOLT-M8, qty: 4": "{item: BOLT-M9, qty: 4"})
    result = run("check", "-c", str(path))
    assert result.returncode == 2
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "BOLT-M9" in text)
    assert f"{path}:{line}: boms.BRKT-100.components[1].item: unknown item 'BOLT-M9'" in (
        result.stderr
    )


def test_order_start_close_and_reports(cfg: str) -> None:
    assert (
        run(
            "order",
            "start",
            "-c",
            cfg,
            "--work-center",
            "PRESS-3",
            "--order",
            "O-1",
            "--item",
            "BRKT-100",
            "--qty",
            "100",
        ).returncode
        == 0
    )
    run(
        "receive",
        "-c",
        cfg,
        "--item",
        "STEEL-2MM",
        "--qty",
        "10",
        "--lot",
        "H1",
        "--location",
        "LINE-3",
    )
    run("complete", "-c", cfg, "--work-center", "PRESS-3", "--good", "2")
    assert run("order", "close", "-c", cfg, "--order", "O-1").returncode == 0
    again = run("order", "close", "-c", cfg, "--order", "O-1")
    assert again.returncode == 1 and "already closed" in again.stderr
    orders = json.loads(run("order", "list", "-c", cfg, "--json").stdout)
    assert [(o["order_no"], o["status"]) for o in orders] == [("O-1", "closed")]
    gen = json.loads(run("report", "genealogy", "-c", cfg, "--order", "O-1", "--json").stdout)
    assert [(g["item"], g["lot"], g["qty"]) for g in gen] == [("STEEL-2MM", "H1", "1.751")]
    journal = json.loads(run("report", "journal", "-c", cfg, "--json").stdout)
    assert journal[0]["order"] == "O-1" and journal[0]["units"] == "2"
    for report in ("journal", "variance", "counts"):
        assert run("report", report, "-c", cfg).returncode == 0
    counts = json.loads(run("report", "counts", "-c", cfg, "--json").stdout)
    assert counts["suggestions"][0]["reason"].startswith("negative balance")


def test_simulate_refuses_a_bad_scenario_before_starting(cfg: str, tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "plc3:\n  events:\n    - {at_s: 1, point: good, set: 5, reset: true}\nnope: {}\n"
    )
    result = run("simulate", "-c", cfg, "--scenario", str(scenario), "--seconds", "1")
    assert result.returncode == 2
    assert "nope: no such device" in result.stderr and "plc3.events.0" in result.stderr
    assert "Traceback" not in result.stderr
    ok = run("simulate", "-c", cfg, "--seconds", "1")
    assert ok.returncode == 0 and "simulating 3 devices" in ok.stdout


def test_simulate_reads_a_scenario_as_strictly_as_a_config(cfg: str, tmp_path: Path) -> None:
    """Not UTF-8, a device given twice, a bad event: each refused at file:line, exit 2."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_bytes(b"plc3:\n  events: []\n# caf\xe9\n")
    result = run("simulate", "-c", cfg, "--scenario", str(scenario), "--seconds", "1")
    assert result.returncode == 2, result
    assert f"{scenario}:1: (file): cannot read" in result.stderr
    assert "Traceback" not in result.stderr and "UnicodeDecodeError" not in result.stderr

    scenario.write_text("plc3:\n  events: []\ndoser3: {}\nplc3:\n  events: []\n")
    result = run("simulate", "-c", cfg, "--scenario", str(scenario), "--seconds", "1")
    assert result.returncode == 2, result
    assert f"{scenario}:4: plc3: duplicate key (first given on line 1)" in result.stderr

    scenario.write_text("doser3: {}\nplc3:\n  events:\n    - {at_s: 1, point: good}\n")
    result = run("simulate", "-c", cfg, "--scenario", str(scenario), "--seconds", "1")
    assert result.returncode == 2, result
    assert f"{scenario}:4: plc3.events.0" in result.stderr


def test_simulate_stops_with_a_message_when_a_device_cannot_be_served(cfg: str) -> None:
    """A port already taken is not a simulator quietly missing: exit 1, saying which."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 15020))
        taken.listen()
        result = run("simulate", "-c", cfg, "--seconds", "5")
    assert result.returncode == 1, result
    assert "plc3: cannot serve on 127.0.0.1:15020" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_complete_that_is_held_says_so_instead_of_nothing_to_post(tmp_path: Path) -> None:
    """An order's item removed by a config change: the production is held, not 'nothing'."""
    cfg = str(write_config(tmp_path))
    started = run("order", "start", "-c", cfg, "--work-center", "PRESS-3", "--order", "PO-1",
                  "--item", "BOLT-M8")
    assert started.returncode == 0, started.stderr
    removed = write_config(tmp_path, **{
        '  BOLT-M8:    {uom: ea, cost: 0.05, gtin: "09521234543220"}\n': "",
        "      - {item: BOLT-M8, qty: 4, stage: paint}\n": ""})
    result = run("complete", "-c", str(removed), "--work-center", "PRESS-3", "--good", "3")
    assert result.returncode == 0, result.stderr
    assert "nothing to post" not in result.stdout
    assert "held: 3 good units of BOLT-M8 at PRESS-3 wait (unknown item 'BOLT-M8')" in (
        result.stdout)
    assert "lineside held list" in result.stdout


def test_simulate_takes_an_empty_scenario_as_none(cfg: str, tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("# nothing happens yet\n")
    result = run("simulate", "-c", cfg, "--scenario", str(scenario), "--seconds", "1")
    assert result.returncode == 0, result.stderr
