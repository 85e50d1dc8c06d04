"""Properties of the whole ledger path, with hypothesis: exact totals for any counter
history, reversals as inverses, and random bytes as commands never crashing anything."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lineside.agent.bootstrap import open_ledger
from lineside.agent.commands import CounterReading, Receive, Reverse
from lineside.agent.config import load
from lineside.agent.handlers import Ledger
from lineside.agent.sync.commands_in import CommandParser
from lineside.agent.sync.payloads import COMMAND_NAMES
from tests.conftest import StepClock, write_config

UINT16 = 2**16
MAX_DELTA = 100_000  # the demo config's default max_delta
MAX_RATE = 1000  # the default max_rate, units a second; the readings are a second apart


@contextmanager
def fresh_ledger() -> Iterator[Ledger]:
    with tempfile.TemporaryDirectory(prefix="lineside-prop-") as tmp:
        ledger = open_ledger(load(write_config(Path(tmp))), StepClock())
        try:
            yield ledger
        finally:
            ledger.conn.close()


def booked(ledger: Ledger, item: str) -> Decimal:
    rows = ledger.conn.execute("SELECT qty FROM stock WHERE item = ?", (item,)).fetchall()
    return sum((Decimal(r[0]) for r in rows), Decimal(0))


# A counter history: small increments (some wrapping the uint16), repeats, and resets.
step = st.one_of(
    st.tuples(st.just("count"), st.integers(min_value=1, max_value=400)),
    st.tuples(st.just("repeat"), st.just(0)),
    st.tuples(st.just("reset"), st.integers(min_value=0, max_value=300)),
)


@settings(max_examples=40)
@given(start=st.integers(min_value=0, max_value=UINT16 - 1), steps=st.lists(step, max_size=40))
def test_any_counter_history_backflushes_exactly(start: int, steps: list[tuple[str, int]]) -> None:
    """The scrap counter (uint16): whatever rolls over, resets or repeats, what is posted is
    the true number of units × the BOM, rounded once."""
    value = start
    readings = [start]
    for kind, n in steps:
        if kind == "count":
            value = (value + n) % UINT16
        elif kind == "reset":
            value = n  # the PLC restarted and has counted n since
        readings.append(value)
    with fresh_ledger() as ledger:
        ts = datetime(2026, 1, 1, tzinfo=UTC)
        units = 0
        last = None
        for reading in readings:
            ts += timedelta(seconds=1)
            result = ledger.execute(
                CounterReading(key="k", ts=ts, point="plc3.scrap", value=reading)
            )
            assert result.ok, result.error
            if last is not None:
                units += _expected_delta(last, reading)
            last = reading
        steel = (Decimal("0.8755") * units).quantize(Decimal("0.001"), ROUND_HALF_UP)
        assert -booked(ledger, "STEEL-2MM") == steel
        assert -booked(ledger, "PRIMER-A") == (Decimal("0.01") * units).quantize(
            Decimal("0.001"), ROUND_HALF_UP
        )


def _expected_delta(last: int, new: int) -> int:
    """The oracle, written apart from the code: forward moves count, a drop is a wrap when
    that is at most max_delta units, half the range and a second's production at max_rate,
    otherwise a reset from 0."""
    if new == last:
        return 0
    if new > last:
        return new - last if new - last <= MAX_DELTA else 0
    wrapped = UINT16 - last + new
    return wrapped if wrapped <= min(MAX_DELTA, UINT16 // 2, MAX_RATE) else new


@settings(max_examples=30)
@given(
    qtys=st.lists(
        st.decimals(min_value=Decimal("0.001"), max_value=Decimal(1000), places=3),
        min_size=1,
        max_size=8,
    ),
    which=st.data(),
)
def test_a_reversal_is_an_inverse(qtys: list[Decimal], which: st.DataObject) -> None:
    with fresh_ledger() as ledger:
        ids = []
        for n, qty in enumerate(qtys):
            result = ledger.execute(
                Receive(
                    key=f"r{n}",
                    ts=ledger.clock(),
                    item="STEEL-2MM",
                    qty=qty,
                    lot=f"L{n % 3}",
                    location="LINE-3",
                )
            )
            assert result.ok, result.error
            ids.append(result.transactions[0]["id"])
        before = dict(ledger.conn.execute("SELECT lot, qty FROM stock").fetchall())
        chosen = which.draw(st.sampled_from(ids))
        assert ledger.execute(Reverse(key="x", ts=ledger.clock(), tx_id=chosen)).ok
        ledger.execute(
            Receive(
                key="again",
                ts=ledger.clock(),
                item="STEEL-2MM",
                qty=_qty_of(ledger, chosen),
                lot=_lot_of(ledger, chosen),
                location="LINE-3",
            )
        )
        after = dict(ledger.conn.execute("SELECT lot, qty FROM stock").fetchall())
        assert {k: Decimal(v) for k, v in after.items()} == {
            k: Decimal(v) for k, v in before.items()
        }


def _qty_of(ledger: Ledger, tx_id: str) -> Decimal:
    return Decimal(
        ledger.conn.execute("SELECT qty FROM journal WHERE id = ?", (tx_id,)).fetchone()[0]
    )


def _lot_of(ledger: Ledger, tx_id: str) -> str:
    return str(ledger.conn.execute("SELECT lot FROM journal WHERE id = ?", (tx_id,)).fetchone()[0])


NAMES = [*COMMAND_NAMES, "nope", ""]


@settings(max_examples=300)
@given(name=st.sampled_from(NAMES), payload=st.binary(max_size=2048))
def test_random_bytes_as_commands_are_refused_with_a_reason(name: str, payload: bytes) -> None:
    parsed = CommandParser(lambda: datetime.now(UTC)).parse(name, payload)
    assert parsed.error or parsed.command is not None


@settings(max_examples=200)
@given(
    name=st.sampled_from(NAMES),
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "request_id",
                        "item",
                        "qty",
                        "lot",
                        "location",
                        "order",
                        "work_center",
                        "tx_id",
                        "uom",
                        "components",
                        "per",
                        "x",
                    ]
                ),
                children,
                max_size=6,
            )
        ),
        max_leaves=20,
    ),
)
def test_random_json_as_commands_is_refused_or_valid(name: str, data: object) -> None:
    parsed = CommandParser(lambda: datetime.now(UTC)).parse(name, json.dumps(data).encode())
    assert parsed.error or parsed.command is not None
