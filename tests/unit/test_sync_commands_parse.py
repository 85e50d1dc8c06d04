"""P/cmd payloads to command objects: the mapping, the idempotency key, readable refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from lineside.agent.commands import (
    CloseOrder,
    Count,
    PutBom,
    PutItem,
    Receive,
    Rejected,
    Result,
    Reverse,
    StartOrder,
)
from lineside.agent.sync.commands_in import CommandParser, Parsed, handle, sniff_request_id
from lineside.agent.sync.payloads import COMMAND_NAMES, Topics

NOW = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
TOPICS = Topics("lineside/v1", "plant-a", "press-3")


def parse(name: str, body: dict[str, Any] | bytes, max_bytes: int = 65536) -> Parsed:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return CommandParser(lambda: NOW, max_bytes=max_bytes).parse(name, raw)


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("receipt", {"request_id": "a", "item": "X", "qty": "2.50", "location": "L", "lot": "7"},
         Receive(key="mqtt:a", ts=NOW, item="X", qty=Decimal("2.50"), location="L", lot="7")),
        ("count", {"request_id": "b", "item": "X", "qty": "0", "location": "L"},
         Count(key="mqtt:b", ts=NOW, item="X", qty=Decimal(0), location="L")),
        ("order.start", {"request_id": "c", "order": "PO", "work_center": "W", "item": "X",
                         "qty": "10"},
         StartOrder(key="mqtt:c", ts=NOW, order="PO", work_center="W", item="X",
                    qty=Decimal(10))),
        ("order.start", {"request_id": "c2", "order": "PO", "work_center": "W", "item": "X"},
         StartOrder(key="mqtt:c2", ts=NOW, order="PO", work_center="W", item="X")),
        ("order.close", {"request_id": "d", "order": "PO"},
         CloseOrder(key="mqtt:d", ts=NOW, order="PO")),
        ("reverse", {"request_id": "e", "tx_id": "T"}, Reverse(key="mqtt:e", ts=NOW, tx_id="T")),
        ("item.put", {"request_id": "f", "item": "N", "uom": "ea", "cost": "0.02",
                      "decimals": 0, "phantom": False},
         PutItem(key="mqtt:f", ts=NOW, item="N",
                 data={"uom": "ea", "decimals": 0, "cost": "0.02", "phantom": False})),
        ("bom.put", {"request_id": "g", "item": "P", "per": "2",
                     "components": [{"item": "N", "qty": "4", "flush": "measured"}]},
         PutBom(key="mqtt:g", ts=NOW, item="P",
                data={"per": "2", "components": [{"item": "N", "qty": "4",
                                                  "flush": "measured"}]})),
    ],
)
def test_each_command_maps_to_its_dataclass(name: str, body: dict[str, Any],
                                            expected: object) -> None:
    parsed = parse(name, body)
    assert parsed.error is None and parsed.command == expected
    assert parsed.request_id == body["request_id"]


def test_every_command_name_has_a_schema_and_a_mapping() -> None:
    for name in COMMAND_NAMES:
        assert parse(name, {"request_id": "x"}).error  # a schema refused the empty command


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"request_id": "x", "item": "X", "qty": "1e3", "location": "L"},
         "qty: '1e3' is not a decimal string"),
        ({"request_id": "x", "item": "X", "qty": True, "location": "L"},
         "qty: must be a decimal string"),
        ({"request_id": "x", "item": "", "qty": "1", "location": "L"}, "item: empty"),
        ({"request_id": "x", "item": "X", "qty": "1", "location": "L", "lot": 5},
         "lot: must be a string or null"),
        ({"request_id": "x" * 200, "item": "X", "qty": "1", "location": "L"},
         "request_id: longer than 128 characters"),
    ],
)
def test_refusals_name_the_field_and_the_problem(body: dict[str, Any], message: str) -> None:
    parsed = parse("receipt", body)
    assert parsed.command is None and message in (parsed.error or ""), parsed.error


def test_bom_components_are_checked_one_by_one() -> None:
    parsed = parse("bom.put", {"request_id": "b", "item": "P",
                               "components": [{"item": "N", "qty": "1"},
                                              {"item": "M", "qty": "x", "flush": "never"}]})
    assert parsed.error is not None
    assert "components[1].qty: 'x' is not a decimal string" in parsed.error
    assert "components[1].flush: 'never' is not one of 'standard', 'measured'" in parsed.error


def test_an_oversized_payload_is_not_parsed_but_its_request_id_is_found() -> None:
    body = b'{"request_id": "big-1", "lot": "' + b"x" * 100 + b'"}'
    parsed = parse("receipt", body, max_bytes=64)
    assert parsed.request_id == "big-1" and "over the 64-byte limit" in (parsed.error or "")
    assert sniff_request_id(b'{"request_id": "a\\"b"') == 'a"b'
    assert sniff_request_id(b'{"item": 1}') is None


class FakeLedger:
    def __init__(self, outcome: Result | Exception) -> None:
        self.outcome = outcome
        self.seen: list[object] = []

    def execute(self, command: object) -> Result:
        self.seen.append(command)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def stock_snapshot(self) -> list[dict[str, Any]]:
        return []


@pytest.mark.parametrize(
    ("outcome", "ok", "error"),
    [
        (Result(ok=True), True, None),
        (Result(ok=False, error="unknown item 'Q'"), False, "unknown item 'Q'"),
        (Rejected("no such order"), False, "no such order"),
        (RuntimeError("boom"), False, "internal error: RuntimeError: boom"),
    ],
)
def test_the_reply_carries_the_ledger_outcome(outcome: Result | Exception, ok: bool,
                                              error: str | None) -> None:
    ledger = FakeLedger(outcome)
    out = handle(parse("order.close", {"request_id": "r", "order": "PO"}), ledger, TOPICS)
    assert out is not None and out.topic == "lineside/v1/plant-a/press-3/reply/order.close"
    assert json.loads(out.payload) == {"request_id": "r", "ok": ok, "error": error}


def test_a_refused_command_never_reaches_the_ledger() -> None:
    ledger = FakeLedger(Result(ok=True))
    out = handle(parse("receipt", {"request_id": "r", "qty": "1"}), ledger, TOPICS)
    assert ledger.seen == [] and out is not None and json.loads(out.payload)["ok"] is False
    assert handle(parse("receipt", b"[]"), ledger, TOPICS) is None  # no request_id: logged
