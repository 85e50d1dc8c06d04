"""The pure costing and rounding rules: entry lines of one order, and their posting to the
currency's decimals (domain/costing.py, domain/money.py)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from lineside.agent.domain.costing import MeasuredCosts, OrderCosts, entry_lines
from lineside.agent.domain.money import Currency, Line, posted_lines

EUR = Currency("EUR", 2)


def sides(lines: list[Line]) -> tuple[D, D]:
    return sum((ln.debit for ln in lines), D(0)), sum((ln.credit for ln in lines), D(0))


def test_half_up_to_the_currency() -> None:
    assert EUR.round(D("1.125")) == D("1.13")  # half up, not to the even cent (1.12)
    assert EUR.round(D("1.1249")) == D("1.12")
    assert Currency("JPY", 0).round(D("2.5")) == D(3)
    assert Currency("KWD", 3).round(D("0.0005")) == D("0.001")


def test_the_rounded_cent_goes_to_rounding_difference() -> None:
    # 1.1265 -> 1.13 and 1.3365 -> 1.34 credit; their sum 2.4630 -> 2.46 debit: 0.01 short
    exact = [
        Line("Finished Goods", debit=D("2.4630")),
        Line("Materials and In-Process", credit=D("1.1265")),
        Line("Conversion Costs Allocated", credit=D("1.3365")),
    ]
    posted = posted_lines(exact, EUR)
    assert posted[-1] == Line("Rounding Difference", D("0.01"), D("0.00"))
    assert sides(posted) == (D("2.47"), D("2.47"))


def test_credit_side_rounding_difference_and_none_when_it_adds_up() -> None:
    # debit 1.0050 -> 1.01; credits 0.5025 -> 0.50 twice = 1.00: Rounding Difference credit 0.01
    exact = [
        Line("A", debit=D("1.005")),
        Line("B", credit=D("0.5025")),
        Line("C", credit=D("0.5025")),
    ]
    assert posted_lines(exact, EUR)[-1] == Line("Rounding Difference", D("0.00"), D("0.01"))
    whole = [Line("A", debit=D(10)), Line("B", credit=D(10))]
    assert [ln.account for ln in posted_lines(whole, EUR)] == ["A", "B"]


amounts = st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False)


@given(st.lists(amounts, min_size=1, max_size=8), st.integers(0, 4))
def test_posted_entries_always_balance(credits: list[D], decimals: int) -> None:
    currency = Currency(None, decimals)
    exact = [Line("Dr", debit=sum(credits, D(0)))] + [
        Line(f"Cr{i}", credit=c) for i, c in enumerate(credits)
    ]
    debit, credit = sides(posted_lines(exact, currency))
    assert debit == credit
    assert abs(debit - sum(credits, D(0))) <= D(len(credits)) * D(1).scaleb(-decimals)


def test_scrapped_units_measured_standard_is_scrap_loss() -> None:
    # tin 40 backflushed, 8 scrapped; lacquer standard 18 good + 3.60 scrapped, 23.40 measured
    costs = OrderCosts(
        materials=D(40),
        scrap=D(8),
        conversion=D(50),
        measured={"LACQUER": MeasuredCosts(D("1.95"), D("23.40"), D(18), D("3.60"))},
    )
    lines = {ln.account: (ln.debit, ln.credit) for ln in entry_lines(costs)}
    assert lines == {
        "Finished Goods": (D(108), D(0)),  # 40 + 18 + 50
        "Materials and In-Process": (D(0), D("71.40")),  # 40 + 23.40 + 8
        "Conversion Costs Allocated": (D(0), D(50)),
        "Scrap Loss": (D("11.60"), D(0)),  # 8 + 3.60
        "Material Usage Variance": (D("1.80"), D(0)),  # 23.40 - (18 + 3.60)
    }
    assert costs.not_measured() == []


def test_a_line_without_a_reading_is_not_measured() -> None:
    # paint read (13 standard, 16.12 measured); lacquer not read (18 + 3.60 standard)
    costs = OrderCosts(
        materials=D(40),
        conversion=D(50),
        measured={
            "PAINT": MeasuredCosts(D("2.48"), D("16.12"), D(13)),
            "LACQUER": MeasuredCosts(standard_good=D(18), standard_scrap=D("3.60")),
        },
    )
    lines = entry_lines(costs)
    assert {ln.account: (ln.debit, ln.credit) for ln in lines} == {
        "Finished Goods": (D(121), D(0)),  # 40 + 13 + 18 + 50
        "Materials and In-Process": (D(0), D("56.12")),  # 40 + 16.12
        "Conversion Costs Allocated": (D(0), D(50)),
        "Scrap Loss": (D("3.60"), D(0)),
        "Material Usage Variance": (D("3.12"), D(0)),  # 16.12 - 13, the read line only
        "Not Measured": (D(0), D("21.60")),  # 18 + 3.60
    }
    assert sides(lines) == (D("127.72"), D("127.72"))
    assert costs.not_measured() == ["LACQUER"]
