"""The pure engine: explosion, scrap, phantoms, stages, FIFO and drift-free rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineside.agent.domain.backflush import (
    CannotPost,
    Carry,
    advance,
    allocate_fifo,
    explode,
    plan_consumption,
)
from lineside.agent.domain.model import (
    NO_LOT,
    Bom,
    Component,
    Item,
    LotBalance,
    MasterData,
    WorkCenter,
)

D = Decimal
ITEMS = {
    "BRKT-100": Item("BRKT-100", "ea", 0, D("4.20")),
    "STEEL-2MM": Item("STEEL-2MM", "kg", 3, D("1.10")),
    "BOLT-M8": Item("BOLT-M8", "ea", 0, D("0.05")),
    "PAINT-9005": Item("PAINT-9005", "l", 2, D("6.50")),
    "PRIMER-A": Item("PRIMER-A", "l", 3, D("9.00")),
    "PRIMER-KIT": Item("PRIMER-KIT", "ea", phantom=True),
}
BOMS = {
    "BRKT-100": Bom(
        "BRKT-100",
        D(1),
        (
            Component("STEEL-2MM", D("0.85"), D(3)),
            Component("BOLT-M8", D(4), stage="paint"),
            Component("PRIMER-KIT", D(1)),
            Component("PAINT-9005", D("0.02"), flush="measured"),
        ),
    ),
    "PRIMER-KIT": Bom("PRIMER-KIT", D(1), (Component("PRIMER-A", D("0.01")),)),
}
WC = WorkCenter("PRESS-3", "LINE-3", "BRKT-100", "allow", ("paint",))
MASTER = MasterData(ITEMS, BOMS, {"PRESS-3": WC})


def totals(plan_moves: tuple) -> dict[str, Decimal]:  # type: ignore[type-arg]
    out: dict[str, Decimal] = {}
    for m in plan_moves:
        out[m.item] = out.get(m.item, D(0)) + m.qty
    return out


def test_design_example_thousand_brackets() -> None:
    good = plan_consumption(MASTER, WC, "BRKT-100", "good", 1000, {}, {})
    paint = plan_consumption(MASTER, WC, "BRKT-100", "stage:paint", 1000, {}, {})
    assert totals(good.moves) == {"STEEL-2MM": D("-875.500"), "PRIMER-A": D("-10.000")}
    assert totals(paint.moves) == {"BOLT-M8": D("-4000")}
    assert good.standard_measured == {"PAINT-9005": D("20.00")}
    assert all(m.kind == "backflush" for m in good.moves + paint.moves)


def test_per_divides_and_phantoms_multiply() -> None:
    boms = {
        **BOMS,
        "BRKT-100": Bom("BRKT-100", D(10), (Component("PRIMER-KIT", D(5), D(10)),)),
        "PRIMER-KIT": Bom("PRIMER-KIT", D(2), (Component("PRIMER-A", D("0.4"), D(50)),)),
    }
    reqs = explode(MasterData(ITEMS, boms), "BRKT-100", None)
    # 5/10 kits per unit × 1.10 scrap; each kit needs 0.4 × 1.5 / 2 litres
    assert [(r.item, r.qty_per_unit) for r in reqs] == [("PRIMER-A", D("0.165"))]


def test_scrapped_units_consume_non_stage_components_as_scrap() -> None:
    plan = plan_consumption(MASTER, WC, "BRKT-100", "scrap", 10, {}, {})
    assert {m.kind for m in plan.moves} == {"scrap"}
    assert totals(plan.moves) == {"STEEL-2MM": D("-8.755"), "PRIMER-A": D("-0.100")}


def test_unknown_item_and_missing_bom_cannot_post() -> None:
    with pytest.raises(CannotPost, match="unknown item"):
        explode(MASTER, "NOPE", None)
    with pytest.raises(CannotPost, match="no BOM"):
        explode(MASTER, "STEEL-2MM", None)


def test_fifo_spills_over_lots_then_goes_negative_without_lot() -> None:
    lots = [LotBalance("L1", D("3")), LotBalance(NO_LOT, D("0")), LotBalance("L2", D("2"))]
    takes, short = allocate_fifo(lots, D("7"))
    assert takes == [("L1", D(3)), ("L2", D(2))]
    assert short == D(2)
    plan = plan_consumption(
        MASTER,
        WC,
        "BRKT-100",
        "stage:paint",
        2,
        {},
        {"BOLT-M8": [LotBalance("L1", D(3)), LotBalance("L2", D(2))]},
    )
    assert [(m.lot, m.qty) for m in plan.moves] == [("L1", D(-3)), ("L2", D(-2)), (NO_LOT, D(-3))]
    assert plan.shortages[0].missing == D(3)


def test_ten_thousand_single_units_equal_one_batch_to_the_last_decimal() -> None:
    steel = ITEMS["STEEL-2MM"]
    carry, posted = Carry(), D(0)
    for _ in range(10_000):
        post, carry = advance(steel, carry, D("0.8755"))
        posted += post
    batch, _ = advance(steel, Carry(), D("0.8755") * 10_000)
    assert posted == batch == D("8755.000")
    naive = sum((steel.round(D("0.8755")) for _ in range(10_000)), D(0))
    assert naive == D("8760.000")  # what per-posting rounding would have done


@given(
    st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=60),
    st.decimals(min_value=D("0.0001"), max_value=D("50"), places=4),
)
def test_any_split_of_units_posts_the_exact_total_rounded_once(
    splits: list[int], per_unit: Decimal
) -> None:
    item = Item("X", "kg", 2)
    carry, posted = Carry(), D(0)
    for units in splits:
        post, carry = advance(item, carry, per_unit * units)
        posted += post
    assert posted == item.round(per_unit * sum(splits))


def test_uuid4_strings_are_valid_random_uuids() -> None:
    import uuid

    from lineside.agent.ledger.store import uuid4_strings

    made = uuid4_strings(500)
    assert len(set(made)) == 500
    for text in made:
        value = uuid.UUID(text)
        assert value.version == 4 and value.variant == uuid.RFC_4122 and str(value) == text


def test_transaction_ids_are_time_ordered_uuids() -> None:
    import time
    import uuid

    from lineside.agent.ledger.store import uuid7_strings

    before = time.time_ns() // 1_000_000
    made = uuid7_strings(500) + uuid7_strings(3)
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == 503
    for text in made:
        value = uuid.UUID(text)
        assert value.version == 7 and value.variant == uuid.RFC_4122 and str(value) == text
        assert before <= value.int >> 80 <= after  # the first 48 bits: Unix milliseconds
    assert made[-1][:13] >= made[0][:13]  # later ids sort after earlier ones
