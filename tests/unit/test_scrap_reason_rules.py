"""Scrap reasons, pure: which reason a role carries, which codes may be reasons, how the
config's scrap counters become roles, and how the report adds scrap postings up."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lineside.agent.config import load
from lineside.agent.config_counters import CountersConfig
from lineside.agent.domain.backflush import plan_consumption
from lineside.agent.domain.model import Bom, Component, Item, MasterData, WorkCenter
from lineside.agent.domain.scrap import UNSPECIFIED, reason_of, reason_problem, scrap_role
from lineside.agent.scrap_report import by_reason
from lineside.agent.sparkplug.metrics import layout

D = Decimal
REPO = Path(__file__).resolve().parents[2]


def test_a_role_carries_its_reason() -> None:
    assert reason_of(scrap_role("JAM")) == "JAM"
    assert scrap_role(UNSPECIFIED) == "scrap"
    assert reason_of(scrap_role(UNSPECIFIED)) == UNSPECIFIED
    assert reason_of("scrap") == UNSPECIFIED  # a held event from before reasons
    assert reason_of("good") is None
    assert reason_of("stage:paint") is None


@pytest.mark.parametrize(
    ("code", "catalogue", "problem"),
    [
        ("JAM", {}, None),
        ("any.code-1_x", {}, None),
        ("JAM", {"JAM": "jammed"}, None),
        (UNSPECIFIED, {"JAM": "jammed"}, None),  # scrap without a reason is always allowed
        ("DENT", {"JAM": "jammed", "PAINT": "run"}, "unknown scrap reason 'DENT'"),
        ("", {}, "1 to 32 characters"),
        ("X" * 33, {}, "1 to 32 characters"),
        ("bad code", {}, "may hold only"),
        ("-JAM", {}, "may hold only"),
        ("JAM\n", {}, "may hold only"),
        ("JÄM", {}, "may hold only"),
    ],
)
def test_which_codes_are_reasons(code: str, catalogue: dict[str, str], problem: str | None) -> None:
    found = reason_problem(code, catalogue)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_scrap_counters_become_a_role_each() -> None:
    one = CountersConfig.model_validate({"good": "plc.good", "scrap": "plc.scrap"})
    assert one.roles() == [
        (("good",), "good", "plc.good"),
        (("scrap",), "scrap", "plc.scrap"),  # the role scrap always had
    ]
    many = CountersConfig.model_validate({"scrap": {"JAM": "plc.jam", "PAINT": "plc.paint"}})
    assert many.roles() == [
        (("scrap", "JAM"), "scrap:JAM", "plc.jam"),
        (("scrap", "PAINT"), "scrap:PAINT", "plc.paint"),
    ]
    assert CountersConfig().roles() == []


def test_scrap_of_any_reason_consumes_with_kind_scrap() -> None:
    steel = Item("STEEL", "kg", 3, D("1.10"))
    master = MasterData(
        items={"BRKT": Item("BRKT", "ea", 0, D("4.20")), "STEEL": steel},
        boms={"BRKT": Bom("BRKT", D(1), (Component("STEEL", D("0.8755")),))},
    )
    wc = WorkCenter("PRESS", "LINE")
    for role in ("scrap", "scrap:JAM"):
        plan = plan_consumption(master, wc, "BRKT", role, 2, {}, {})
        assert [(m.kind, m.qty) for m in plan.moves] == [("scrap", D("-1.751"))]  # 2 x 0.8755


def _posting(reason: str | None, item: str, qty: str, cost: str, **more: Any) -> dict[str, Any]:
    return {
        "reason": reason,
        "order_no": more.get("order", "ORD-1"),
        "work_center": "PRESS-3",
        "item": item,
        "qty": qty,
        "uom": "kg" if item == "STEEL" else "l",
        "cost": cost,
    }


def test_the_report_adds_scrap_up_by_reason_order_and_item() -> None:
    report = by_reason(
        [
            _posting("JAM", "STEEL", "-8.755", "-9.63050"),
            _posting("JAM", "PRIMER", "-0.100", "-0.90000"),
            _posting(None, "STEEL", "-3.502", "-3.85220"),  # before m007: unspecified
            _posting("JAM", "PRIMER", "0.100", "0.90000"),  # the reversal of the primer
            _posting("JAM", "STEEL", "-1.751", "-1.92610", order="ORD-2"),
            _posting(UNSPECIFIED, "STEEL", "-1.000", "-1.10000"),
        ]
    )
    assert [
        (r["reason"], r["order"], r["item"], D(r["qty"]), D(r["cost"])) for r in report["lines"]
    ] == [
        ("JAM", "ORD-1", "STEEL", D("8.755"), D("9.6305")),
        ("JAM", "ORD-1", "PRIMER", D("0"), D("0")),  # 0.100 - 0.100
        ("JAM", "ORD-2", "STEEL", D("1.751"), D("1.9261")),
        ("unspecified", "ORD-1", "STEEL", D("4.502"), D("4.9522")),  # 3.502 + 1.000
    ]
    # JAM 9.6305 + 0 + 1.9261 = 11.5566; unspecified 3.8522 + 1.1 = 4.9522
    assert [(r["reason"], D(r["cost"])) for r in report["reasons"]] == [
        ("JAM", D("11.5566")),
        ("unspecified", D("4.9522")),
    ]
    assert D(report["total_cost"]) == D("16.5088")  # 11.5566 + 4.9522
    assert by_reason([]) == {"lines": [], "reasons": [], "total_cost": "0"}


def test_sparkplug_names_a_metric_per_scrap_counter() -> None:
    example = load(REPO / "config" / "example.yaml").config  # scrap: {JAM: …, PAINT: …}
    names = [m.name for m in layout(example).devices["PRESS-3"] if m.name.startswith("Counters/")]
    assert names == ["Counters/Good", "Counters/Scrap/JAM", "Counters/Scrap/PAINT"]
    demo = load(REPO / "config" / "demo.yaml").config  # scrap: plc3.scrap, as before
    names = [m.name for m in layout(demo).devices["PRESS-3"] if m.name.startswith("Counters/")]
    assert names == ["Counters/Good", "Counters/Scrap"]
