"""A P/tx message as lineside_transactions rows, and what a consumer refuses (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lineside.agent.sync.contract import Contract
from lineside.central.rows import COLUMNS, Rejected, gateway_of, parse_tx
from lineside.central.store import Incoming, Reply, Status
from lineside.central.writer import classify

TX: dict[str, Any] = {
    "id": "0b6f3c1e-6a43-4a4e-9a53-3f4f0c8e2d10", "ts": "2026-01-05T06:00:01.000Z",
    "kind": "completion", "item": "BRKT-100", "location": "LINE-3", "qty": "10",
    "uom": "ea", "lot": None, "order": "ORD-4711", "work_center": "PRESS-3",
    "cost": "57.00", "cause": "plc3.good:120->130",
}  # fmt: skip


def payload(**changes: Any) -> bytes:
    tx = {**TX, **changes}
    return json.dumps({"gateway": "press-3", "seq": 7, "transactions": [tx]}).encode()


def test_a_message_becomes_one_row_per_transaction_in_column_order() -> None:
    got = parse_tx("plant-a", "press-3", payload())
    assert got.seq == 7 and len(got.digest) == 32
    (row,) = got.rows
    assert dict(zip(COLUMNS, row, strict=True)) == {
        **TX, "site": "plant-a", "gateway": "press-3", "seq": 7,
    }


def test_unknown_fields_are_ignored_as_the_contract_asks() -> None:
    (row,) = parse_tx("plant-a", "press-3", payload(new_field="x")).rows
    assert "x" not in row


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"qty": 10}, "transactions[0].qty"),
        ({"qty": "1e5"}, "transactions[0].qty"),
        ({"qty": "١٢"}, "transactions[0].qty"),  # Arabic-Indic digits, not ASCII
        ({"cost": None}, "transactions[0].cost"),
        ({"ts": "yesterday"}, "transactions[0].ts"),
        ({"kind": "gift"}, "transactions[0].kind"),
        ({"item": ""}, "transactions[0].item"),
        ({"lot": "L\x001"}, "transactions[0].lot"),
        ({"id": None}, "transactions[0].id"),
    ],
)
def test_a_transaction_the_database_could_not_take_rejects_the_message(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Rejected, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_tx("plant-a", "press-3", payload(**change))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"gateway":"press-3","seq":"7","transactions":[]}', "seq"),
        (b'{"gateway":"press-3","seq":true,"transactions":[]}', "seq"),
        (b'{"gateway":"press-4","seq":7,"transactions":[{}]}', "gateway"),
        (b'{"gateway":"press-3","seq":7,"transactions":[]}', "transactions"),
    ],
)
def test_a_message_that_is_no_p_tx_message_is_rejected(body: bytes, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        parse_tx("plant-a", "press-3", body)


def test_topics_name_site_gateway_and_kind() -> None:
    assert gateway_of("lineside/v1/plant-a/press-3/tx", "lineside/v1") == (
        "plant-a", "press-3", "tx")
    assert gateway_of("lineside/v1/a/b/reply/replay", "lineside/v1") == ("a", "b", "reply/replay")
    assert gateway_of("lineside/v1/a/b/stock", "lineside/v1") is None
    assert gateway_of("other/a/b/tx", "lineside/v1") is None


def test_classify_tells_transactions_statuses_replies_and_junk_apart() -> None:
    base, contract = "lineside/v1/plant-a/press-3", Contract()

    def one(leaf: str, body: bytes, replay: bool = False) -> Incoming:
        return classify(f"{base}/{leaf}", body, replay, "lineside/v1", contract)

    tx = one("tx", payload(), replay=True)
    assert tx.message is not None and tx.replay
    status = one("status", b'{"online":true,"version":"1"}')
    assert status.event == Status("plant-a", "press-3", True, "1")
    reply = one("reply/replay", b'{"request_id":"r","ok":true,"error":null,"not_held":[[1,2]]}')
    assert isinstance(reply.event, Reply) and reply.event.data["request_id"] == "r"
    for leaf, body in (("status", b"offline"), ("reply/replay", b'{"request_id":"r",'
                       b'"ok":true,"error":null,"not_held":[[1]]}'), ("stock", b"{}")):
        junk = one(leaf, body)
        assert junk.message is None and junk.event is None and junk.reason, (leaf, body)
