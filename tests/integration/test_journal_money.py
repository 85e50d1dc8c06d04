"""The journal report as the cost accountant signs it (issue 16 items 2 and 3): amounts to the
currency's decimals with every entry balanced, scrapped units' measured standard in Scrap
Loss, and a measured line without a meter reading flagged, not a favourable variance.

Every expected amount is worked out by hand in the comments.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import MeterReading
from lineside.agent.config import load
from tests.conftest import StepClock, write_config

FOUR_DECIMALS = """
gateway: {id: gw, site: s, data_dir: ./var, currency: {code: EUR, decimals: 2}}
items:
  FG: {uom: ea, cost: 1, conversion_cost: 0.4455}
  RESIN: {uom: kg, decimals: 3, cost: 0.3755}
boms:
  FG: {components: [{item: RESIN, qty: 1}]}
work_centers:
  CELL: {location: L, item: FG}
"""

CANS = """
gateway: {id: gw, site: s, data_dir: ./var}
items:
  CAN: {uom: ea, cost: 3, conversion_cost: 0.50}
  TIN: {uom: ea, cost: 0.40}
  LACQUER: {uom: l, decimals: 3, cost: 12.00}
boms:
  CAN:
    components:
      - {item: TIN, qty: 1}
      - {item: LACQUER, qty: 0.015, flush: measured}
work_centers:
  LINE: {location: L1, item: CAN}
meters:
  sprayer: {point: spray.total_l, item: LACQUER, work_center: LINE}
devices:
  spray:
    driver: modbus_tcp
    host: 127.0.0.1
    port: 15999
    points:
      total_l: {address: 1, type: float32, table: input}
"""


def lineside(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "lineside.agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    return result


def accounts(lines: list[dict[str, str]]) -> dict[str, tuple[D, D]]:
    return {ln["account"]: (D(ln["debit"]), D(ln["credit"])) for ln in lines}


def balanced(lines: list[dict[str, str]]) -> bool:
    return sum(D(ln["debit"]) for ln in lines) == sum(D(ln["credit"]) for ln in lines)


def journal(cfg: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(
        lineside("report", "journal", "-c", cfg, "--json").stdout
    )
    return entries


def test_four_decimal_amounts_are_posted_to_the_cent_and_balance(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path, FOUR_DECIMALS))
    lineside("receive", "-c", cfg, "--item", "RESIN", "--qty", "10", "--location", "L")
    lineside("complete", "-c", cfg, "--work-center", "CELL", "--good", "3")
    (entry,) = journal(cfg)
    # materials  3 × 1 kg × 0.3755 = 1.1265 (exact)  -> 1.13 (half up)
    # conversion 3 × 0.4455        = 1.3365 (exact)  -> 1.34
    # Finished Goods 1.1265 + 1.3365 = 2.4630        -> 2.46
    assert accounts(entry["exact"]) == {
        "Finished Goods": (D("2.4630"), D(0)),
        "Materials and In-Process": (D(0), D("1.1265")),
        "Conversion Costs Allocated": (D(0), D("1.3365")),
    }
    # debits 2.46, credits 1.13 + 1.34 = 2.47: the cent goes to Rounding Difference (debit)
    assert accounts(entry["lines"]) == {
        "Finished Goods": (D("2.46"), D(0)),
        "Materials and In-Process": (D(0), D("1.13")),
        "Conversion Costs Allocated": (D(0), D("1.34")),
        "Rounding Difference": (D("0.01"), D(0)),
    }
    assert balanced(entry["lines"]) and balanced(entry["exact"])
    assert entry["currency"] == "EUR"
    assert all(
        len(ln[side].split(".")[1]) == 2 for ln in entry["lines"] for side in ("debit", "credit")
    )
    text = lineside("report", "journal", "-c", cfg).stdout
    assert "amounts in EUR" in text
    printed = [re.split(r"\s{2,}", line) for line in text.splitlines()]
    assert ["Materials and In-Process", "0.00", "1.13"] in printed
    assert ["Rounding Difference", "0.01", "0.00"] in printed
    assert "1.1265" not in text


def test_no_decimals_for_a_currency_without_cents(tmp_path: Path) -> None:
    cfg = str(
        write_config(
            tmp_path, FOUR_DECIMALS.replace("code: EUR, decimals: 2", "code: JPY, decimals: 0")
        )
    )
    lineside("receive", "-c", cfg, "--item", "RESIN", "--qty", "10", "--location", "L")
    lineside("complete", "-c", cfg, "--work-center", "CELL", "--good", "3")
    (entry,) = journal(cfg)
    # 2.4630 -> 2, 1.1265 -> 1, 1.3365 -> 1: debits 2 = credits 2, no rounding line
    assert accounts(entry["lines"]) == {
        "Finished Goods": (D(2), D(0)),
        "Materials and In-Process": (D(0), D(1)),
        "Conversion Costs Allocated": (D(0), D(1)),
    }
    assert entry["lines"][0]["debit"] == "2"


def cans(tmp_path: Path) -> str:
    cfg = str(write_config(tmp_path, CANS))
    lineside("receive", "-c", cfg, "--item", "TIN", "--qty", "1000", "--location", "L1")
    lineside(
        "receive",
        "-c",
        cfg,
        "--item",
        "LACQUER",
        "--qty",
        "10",
        "--lot",
        "LQ-1",
        "--location",
        "L1",
    )
    return cfg


def make_cans(
    cfg: str, order: str, meter: tuple[str, ...], clock: StepClock, reason: str | None = None
) -> dict[str, Any]:
    """Order: 100 good cans and 20 scrapped (for reason, if given), the sprayer's totalizer
    read at meter; its entry."""
    lineside(
        "order", "start", "-c", cfg, "--work-center", "LINE", "--order", order, "--item", "CAN"
    )
    ledger = open_ledger(load(Path(cfg)), clock)
    for value in meter:
        point = "spray.total_l"
        assert ledger.execute(MeterReading(key=value, ts=clock(), point=point, value=D(value))).ok
    ledger.conn.close()
    because = ("--reason", reason) if reason else ()
    lineside(
        "complete", "-c", cfg, "--work-center", "LINE", "--good", "100", "--scrap", "20", *because
    )
    (entry,) = journal(cfg)
    return entry


# What the 100 good and 20 scrapped cans cost whether the lacquer was measured or not:
# tin:     good 100 × 0.40 = 40.00 (backflush), scrapped 20 × 0.40 = 8.00 (scrap)
# lacquer: standard good 100 × 0.015 l = 1.5 l × 12 = 18.00,
#          scrapped 20 × 0.015 l = 0.3 l × 12 = 3.60
# conversion 100 × 0.50 = 50.00
# Finished Goods 40 + 18 + 50 = 108.00; Scrap Loss 8 + 3.60 = 11.60
CANS_AT_STANDARD = {
    "Finished Goods": (D("108.00"), D(0)),
    "Conversion Costs Allocated": (D(0), D("50.00")),
    "Scrap Loss": (D("11.60"), D(0)),
}


def test_measured_line_without_a_reading_is_not_measured(tmp_path: Path, clock: StepClock) -> None:
    cfg = cans(tmp_path)
    entry = make_cans(cfg, "O-1", (), clock)
    # no meter reading: 0 measured
    # Materials and In-Process 40 + 0 + 8 = 48.00; Not Measured 18 + 3.60 = 21.60
    # debits 108 + 11.60 = 119.60 = credits 48 + 50 + 21.60
    assert accounts(entry["lines"]) == {
        **CANS_AT_STANDARD,
        "Materials and In-Process": (D(0), D("48.00")),
        "Not Measured": (D(0), D("21.60")),
    }
    assert "Material Usage Variance" not in accounts(entry["lines"])
    assert entry["not_measured"] == ["LACQUER"] and balanced(entry["lines"])
    text = lineside("report", "journal", "-c", cfg).stdout
    assert "not measured: LACQUER" in text
    (row,) = json.loads(lineside("report", "variance", "-c", cfg, "--json").stdout)
    # standard 120 × 0.015 = 1.800 l; nothing measured: no variance, no -100 %
    assert (row["standard"], row["measured"], row["variance"], row["variance_pct"]) == (
        "1.800",
        None,
        None,
        None,
    )
    assert row["note"] == "not measured"
    table = lineside("report", "variance", "-c", cfg).stdout
    assert "not measured" in table and "-100" not in table


@pytest.mark.parametrize("reason", [None, "JAM"])
def test_scrapped_units_measured_standard_goes_to_scrap_loss(
    tmp_path: Path, clock: StepClock, reason: str | None
) -> None:
    cfg = cans(tmp_path)
    entry = make_cans(cfg, "O-2", ("10.000", "11.950"), clock, reason)  # 1.950 l during O-2
    # lacquer measured 1.950 l × 12 = 23.40; standard of all 120 units 1.8 l × 12 = 21.60
    # Material Usage Variance 23.40 - 21.60 = 1.80 debit (more lacquer than standard)
    # Finished Goods 108.00 has the good units' lacquer (18) only, Scrap Loss 11.60 the
    # scrapped units' (3.60); Materials and In-Process 40 + 23.40 + 8 = 71.40
    # debits 108 + 11.60 + 1.80 = 121.40 = credits 71.40 + 50
    assert accounts(entry["lines"]) == {
        **CANS_AT_STANDARD,
        "Materials and In-Process": (D(0), D("71.40")),
        "Material Usage Variance": (D("1.80"), D(0)),
    }
    assert entry["not_measured"] == [] and balanced(entry["lines"])
    (row,) = json.loads(lineside("report", "variance", "-c", cfg, "--json").stdout)
    # 1.950 - 1.800 = 0.150 l, 0.150 / 1.800 = 8.33 %
    assert (
        row["standard"],
        row["measured"],
        row["variance"],
        row["variance_pct"],
        row["note"],
    ) == (
        "1.800",
        "1.950",
        "0.150",
        "8.33",
        "",
    )


def test_the_story_posts_to_the_cent() -> None:
    text = lineside("demo", "--story").stdout
    entry = text.split("Journal entry for ORD-1001")[1].split("Measured paint")[0]
    # ORD-1001: 1,000 good, 12 scrapped; steel 963.05 + primer 90 + bolts 200 = 1253.05
    # paint standard good 1,000 × 0.02 l × 6.50 = 130.00, scrapped 12 × 0.02 × 6.50 = 1.56
    # Finished Goods 1253.05 + 130 + 1500 = 2883.05
    # Scrap Loss 10.506 kg × 1.10 + 0.12 l × 9.00 = 12.6366, + 1.56 = 14.1966 -> 14.20
    # Materials and In-Process 1253.05 + 21.30 l × 6.50 (138.45) + 12.6366 = 1404.1366 -> 1404.14
    # Variance 138.45 - (130 + 1.56) = 6.89; debits 2883.05 + 14.20 + 6.89 = 2904.14
    # = credits 1404.14 + 1500.00: no rounding line
    assert "1404.1366" not in text
    rows = {line[:28].strip(): line[28:].split() for line in entry.strip().splitlines()[2:]}
    assert rows == {
        "Finished Goods": ["2883.05", "0.00"],
        "Materials and In-Process": ["0.00", "1404.14"],
        "Conversion Costs Allocated": ["0.00", "1500.00"],
        "Scrap Loss": ["14.20", "0.00"],
        "Material Usage Variance": ["6.89", "0.00"],
    }


def test_a_bad_currency_is_refused_at_its_line(tmp_path: Path) -> None:
    text = FOUR_DECIMALS.replace(
        "currency: {code: EUR, decimals: 2}", "currency: {code: eur, decimals: 5}"
    )
    cfg = str(write_config(tmp_path, text))
    result = subprocess.run(
        [sys.executable, "-m", "lineside.agent.cli", "check", "-c", cfg],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert (
        "line.yaml:2: gateway.currency.code: 'eur' is not an ISO 4217 code"
        in result.stdout + result.stderr
    )
    assert "line.yaml:2: gateway.currency.decimals: Input should be less than or equal to 4" in (
        result.stdout + result.stderr
    )


def test_a_ledger_from_before_keeps_scrapped_standards_in_finished_goods(
    tmp_path: Path, clock: StepClock
) -> None:
    """Before this release the scrapped units' standard was added to the plain row: it
    cannot be told apart, so it stays in Finished Goods (as that release reported it)."""
    cfg = cans(tmp_path)
    entry = make_cans(cfg, "O-3", ("10.000", "11.950"), clock)
    ledger = open_ledger(load(Path(cfg)), clock)
    with ledger.conn:  # fold the scrapped units' row into the plain one, as before
        (scrap,) = ledger.conn.execute("SELECT exact FROM standards WHERE bucket LIKE 'scrap:%'")
        ledger.conn.execute("DELETE FROM standards WHERE bucket LIKE 'scrap:%'")
        (good,) = ledger.conn.execute("SELECT exact FROM standards")
        ledger.conn.execute("UPDATE standards SET exact = ?", (str(D(good[0]) + D(scrap[0])),))
    ledger.conn.close()
    (old,) = journal(cfg)
    # Finished Goods 108.00 + 3.60 = 111.60; Scrap Loss 8.00 (tin only); the rest unchanged
    assert accounts(old["lines"]) == {
        **accounts(entry["lines"]),
        "Finished Goods": (D("111.60"), D(0)),
        "Scrap Loss": (D("8.00"), D(0)),
    }
    assert balanced(old["lines"])
