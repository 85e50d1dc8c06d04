"""Commands in on P/cmd/{name}: applied once, answered on P/reply/{name}; every malformed one is
answered with a clear error (or logged when it has no readable request_id) and changes nothing."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.commands import Receive
from lineside.agent.config import LoadedConfig
from lineside.agent.handlers import Ledger
from lineside.agent.sync import Sync
from lineside.agent.sync.contract import Contract
from tests.broker import Broker, Consumer, wait_until
from tests.conftest import StepClock

P = "lineside/v1/plant-a/press-3"
pytestmark = pytest.mark.broker


@dataclass
class Line:
    ledger: Ledger
    sync: Sync
    central: Consumer
    sender: mqtt.Client

    def send(self, name: str, payload: bytes | dict[str, Any]) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.sender.publish(f"{P}/cmd/{name}", body, qos=1).wait_for_publish(5)

    def replies(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for topic, payload, _ in list(self.central.messages):
            if "/reply/" in topic:
                data = json.loads(payload)
                out.setdefault(data["request_id"], {**data, "topic": topic})
        return out

    def reply(self, request_id: str) -> dict[str, Any]:
        wait_until(lambda: request_id in self.replies(), 15, f"the reply to {request_id}")
        return self.replies()[request_id]

    def replies_to(self, request_id: str) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p, _ in list(self.central.messages)
                if "/reply/" in t and json.loads(p)["request_id"] == request_id]


@pytest.fixture
def line(
    broker: Broker, sync_config: Callable[..., LoadedConfig], clock: StepClock
) -> Iterator[Line]:
    config = sync_config(broker.port, stock_interval_s=0.2)
    ledger = open_ledger(config, clock)
    central = Consumer(broker.port, [f"{P}/reply/#", f"{P}/tx", f"{P}/stock"]).start()
    sync = Sync(config, ledger, config.data_dir / LEDGER_FILE)
    sync.start()
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-mes")
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    wait_until(lambda: sync.commands_ready, 10, "the agent to subscribe to its commands")
    line = Line(ledger, sync, central, sender)
    line.send("order.close", {"request_id": "probe", "order": "NO-SUCH-ORDER"})
    line.reply("probe")
    yield line
    sync.stop(5)
    sender.disconnect()
    sender.loop_stop()
    central.stop()


def dump(conn: sqlite3.Connection, *, events: bool = True) -> list[Any]:
    """The ledger's rows; events=False leaves out the answers remembered per request_id."""
    tables = ("journal", "stock", "outbox", "orders", "counts", "held", "master_items",
              "master_boms", "carries", "standards", "counters", *(("events",) if events else ()))
    return [conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables]


def remembered(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """The answers the ledger keeps, by request_id."""
    rows = conn.execute("SELECT key, reply FROM events WHERE key LIKE 'mqtt:%'").fetchall()
    return {key.removeprefix("mqtt:"): json.loads(reply) for key, reply in rows}


def test_every_command_is_applied_and_answered(line: Line) -> None:
    line.send("item.put", {"request_id": "i1", "item": "NUT-M8", "uom": "ea", "cost": "0.02",
                           "decimals": 0})
    assert line.reply("i1") == {"request_id": "i1", "ok": True, "error": None,
                                "topic": f"{P}/reply/item.put"}
    line.send("bom.put", {"request_id": "b1", "item": "BRKT-100", "per": "1", "components": [
        {"item": "STEEL-2MM", "qty": "0.85", "scrap_pct": "3"},
        {"item": "NUT-M8", "qty": "4", "stage": "paint"}]})
    assert line.reply("b1")["ok"] is True
    line.send("receipt", {"request_id": "r1", "item": "NUT-M8", "qty": "100", "lot": "L7",
                          "location": "LINE-3"})
    assert line.reply("r1")["ok"] is True
    line.send("count", {"request_id": "c1", "item": "NUT-M8", "qty": "98", "location": "LINE-3"})
    assert line.reply("c1")["ok"] is True
    line.send("order.start", {"request_id": "o1", "order": "PO-1", "work_center": "PRESS-3",
                              "item": "BRKT-100", "qty": "500"})
    assert line.reply("o1")["ok"] is True
    line.send("order.close", {"request_id": "o2", "order": "PO-1"})
    assert line.reply("o2")["ok"] is True
    receipt = line.ledger.conn.execute(
        "SELECT id FROM journal WHERE kind = 'receipt' AND item = 'NUT-M8'").fetchone()[0]
    line.send("reverse", {"request_id": "v1", "tx_id": receipt})
    assert line.reply("v1")["ok"] is True
    kinds = [r[0] for r in line.ledger.conn.execute(
        "SELECT kind FROM journal WHERE item = 'NUT-M8' ORDER BY seq")]
    assert kinds == ["receipt", "adjustment", "reversal"]
    status = line.ledger.conn.execute("SELECT status FROM orders WHERE order_no = 'PO-1'")
    assert status.fetchone()[0] == "closed"
    # The ledger's transactions went out on P/tx, like any other.
    wait_until(lambda: receipt in json.dumps(line.central.json_on(f"{P}/tx")), 10, "P/tx")


def test_a_repeated_request_id_is_answered_again_and_applied_once(line: Line) -> None:
    body = {"request_id": "again", "item": "BOLT-M8", "qty": "10", "location": "LINE-3"}
    line.send("receipt", body)
    line.reply("again")
    line.send("receipt", body)
    wait_until(lambda: len(line.replies_to("again")) == 2, 10, "the second reply")
    assert [r["ok"] for r in line.replies_to("again")] == [True, True]
    rows = line.ledger.conn.execute("SELECT COUNT(*) FROM journal WHERE kind = 'receipt'")
    assert rows.fetchone()[0] == 1


BAD: list[tuple[str, str, bytes | dict[str, Any], str | None]] = [
    # (case, command name, payload, expected error; None: no request_id, logged only)
    ("invalid json", "receipt", b'{"item": "BOLT-M8", ', None),
    ("invalid json, id readable", "receipt", b'{"request_id": "m2", "item": ', "not valid JSON"),
    ("not utf-8", "receipt", b"\xff\xfe\x00", None),
    ("not an object", "receipt", b"[1, 2]", None),
    ("missing request_id", "receipt", {"item": "BOLT-M8", "qty": "1", "location": "LINE-3"},
     None),
    ("request_id not a string", "receipt",
     {"request_id": 12, "item": "BOLT-M8", "qty": "1", "location": "LINE-3"}, None),
    ("qty as a number", "receipt",
     {"request_id": "m4", "item": "BOLT-M8", "qty": 5, "location": "LINE-3"},
     'qty: must be a decimal string such as "12.5"'),
    ("bad decimal", "receipt",
     {"request_id": "m5", "item": "BOLT-M8", "qty": "1.2.3", "location": "LINE-3"},
     "qty: '1.2.3' is not a decimal string"),
    ("decimal with a newline", "receipt",
     {"request_id": "m5b", "item": "BOLT-M8", "qty": "12\n", "location": "LINE-3"},
     "is not a decimal string"),
    ("unknown item", "receipt",
     {"request_id": "m6", "item": "NO-SUCH-ITEM", "qty": "1", "location": "LINE-3"},
     "NO-SUCH-ITEM"),
    ("unknown command", "launch.rocket", {"request_id": "m7"}, "unknown command 'launch.rocket'"),
    ("oversized", "receipt",
     {"request_id": "m9", "item": "BOLT-M8", "qty": "1", "location": "LINE-3",
      "lot": "x" * 70_000}, "over the 65536-byte limit"),
    ("unknown key", "receipt",
     {"request_id": "m11", "item": "BOLT-M8", "qty": "1", "location": "LINE-3", "qtty": "2"},
     "unknown key 'qtty'"),
    ("missing key", "receipt", {"request_id": "m12", "item": "BOLT-M8", "qty": "1"},
     "missing required key 'location'"),
    ("wrong type", "order.close", {"request_id": "m13", "order": ["PO-1"]},
     "order: must be a string"),
    ("negative count", "count",
     {"request_id": "m14", "item": "BOLT-M8", "qty": "-3", "location": "LINE-3"}, "negative"),
    ("unknown transaction", "reverse", {"request_id": "m15", "tx_id": "nope"}, "nope"),
    ("empty bom", "bom.put", {"request_id": "m16", "item": "BRKT-100", "components": []},
     "components: empty"),
    ("bom of an unknown component", "bom.put",
     {"request_id": "m17", "item": "BRKT-100", "components": [{"item": "GHOST", "qty": "1"}]},
     "GHOST"),
    ("bad gtin", "item.put", {"request_id": "m18", "item": "X", "uom": "ea", "gtin": "12"},
     "gtin"),
    ("unknown work center", "order.start",
     {"request_id": "m19", "order": "PO-9", "work_center": "NOWHERE", "item": "BRKT-100"},
     "NOWHERE"),
    # Deterministic bad input is refused as such, never an internal error (issue 11 item 7).
    ("39-digit qty", "receipt",
     {"request_id": "m21", "item": "BOLT-M8", "qty": "1" * 39, "location": "LINE-3"},
     "qty: 111111111111111111111111111111111111111 has too many digits"),
    ("28 digits of kg", "receipt",
     {"request_id": "m21b", "item": "STEEL-2MM", "qty": "9999999999999999999999999.999",
      "location": "LINE-3"}, "has too many digits"),
    ("lone surrogate in a lot", "receipt",
     b'{"request_id": "m22", "item": "BOLT-M8", "qty": "1", "lot": "\\ud800",'
     b' "location": "LINE-3"}', "lot: '\\ud800' holds the unprintable character U+D800"),
    # Codes, locations and quantities (item 10).
    ("unknown location", "receipt",
     {"request_id": "m23", "item": "BOLT-M8", "qty": "1", "location": "NOWHERE"},
     "unknown location 'NOWHERE' (known: LINE-3)"),
    ("blank location", "count",
     {"request_id": "m24", "item": "BOLT-M8", "qty": "1", "location": " "},
     "location: ' ' starts or ends with a space"),
    ("location with a NUL", "receipt",
     {"request_id": "m25", "item": "BOLT-M8", "qty": "1", "location": "LINE-3\0"},
     "unprintable character U+0000"),
    ("Cyrillic lookalike location", "receipt",
     {"request_id": "m26", "item": "BOLT-M8", "qty": "1", "location": "LІNE-3"},
     "mixes Cyrillic and Latin letters"),
    ("lot with a newline", "receipt",
     {"request_id": "m27", "item": "BOLT-M8", "qty": "1", "lot": "L1\nL2",
      "location": "LINE-3"}, "unprintable character U+000A"),
    ("lot with a right-to-left override", "receipt",
     {"request_id": "m28", "item": "BOLT-M8", "qty": "1", "lot": "L\u202e1",
      "location": "LINE-3"}, "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("item with a NUL", "item.put", {"request_id": "m29", "item": "a\0b", "uom": "ea"},
     "item: 'a\\x00b' holds the unprintable character U+0000"),
    ("Arabic-Indic digits", "receipt",
     {"request_id": "m30", "item": "BOLT-M8", "qty": "١٢", "location": "LINE-3"},
     "qty: '١٢' is not a decimal string"),
    ("duplicate key", "receipt",
     b'{"request_id": "m31", "item": "BOLT-M8", "qty": "1", "qty": "500",'
     b' "location": "LINE-3"}', "duplicate key 'qty' in the payload"),
    ("order with a line break", "order.start",
     {"request_id": "m32", "order": "PO-1\r\n", "work_center": "PRESS-3",
      "item": "BRKT-100"}, "unprintable character U+000D"),
    ("nested 30,000 levels deep", "receipt",
     b'{"request_id": "m20", "lot": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
     "nested more than 16 levels deep"),
]


def test_every_malformed_command_is_answered_or_logged_and_changes_nothing(
    line: Line, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lineside.sync.commands")
    before, answered = dump(line.ledger.conn, events=False), remembered(line.ledger.conn)
    for _, name, payload, _ in BAD:
        line.send(name, payload)
    line.send("reverse", {"request_id": "last", "tx_id": "nope"})  # the worker is FIFO
    line.reply("last")
    replies = line.replies()
    contract = Contract()
    for case, name, payload, expected in BAD:
        if expected is None:
            continue
        request_id = (
            re.search(rb'"request_id": "(\w+)"', payload).group(1).decode()  # type: ignore[union-attr]
            if isinstance(payload, bytes) else payload["request_id"]
        )
        assert request_id in replies, f"{case}: no reply"
        reply = replies[request_id]
        assert reply["topic"] == f"{P}/reply/{name}", case
        assert expected in (reply["error"] or ""), f"{case}: {reply['error']!r}"
    for reply in replies.values():
        body = {k: v for k, v in reply.items() if k != "topic"}
        assert contract.errors("reply", body) == []
        assert reply["request_id"] == "probe" or reply["ok"] is False
    logged = [r.getMessage() for r in caplog.records if "no reply possible" in r.getMessage()]
    assert len(logged) == sum(1 for *_, e in BAD if e is None), logged
    assert dump(line.ledger.conn, events=False) == before
    # The only rows written: the ledger's refusals, remembered under their request_ids.
    new = {k: v for k, v in remembered(line.ledger.conn).items() if k not in answered}
    assert {"m6", "m14", "m15", "m19", "last"} <= new.keys()
    assert all(v["ok"] is False and v["error"] == replies[k]["error"] for k, v in new.items())


def test_a_refused_request_id_keeps_its_answer_after_the_cause_is_fixed(line: Line) -> None:
    receipt = {"request_id": "rcv-nut", "item": "NUT-M8", "qty": "5", "location": "LINE-3"}
    line.send("receipt", receipt)
    first = line.reply("rcv-nut")
    assert first["ok"] is False and first["error"] == "unknown item 'NUT-M8'"
    line.send("item.put", {"request_id": "put-nut", "item": "NUT-M8", "uom": "ea"})
    assert line.reply("put-nut")["ok"] is True
    before = dump(line.ledger.conn)
    line.send("receipt", receipt)  # the same request_id, now that the item exists
    wait_until(lambda: len(line.replies_to("rcv-nut")) == 2, 10, "the second reply")
    assert line.replies_to("rcv-nut") == [{k: v for k, v in first.items() if k != "topic"}] * 2
    assert dump(line.ledger.conn) == before
    line.send("receipt", {**receipt, "request_id": "rcv-nut-2"})  # corrected: a new request_id
    assert line.reply("rcv-nut-2")["ok"] is True
    receipts = line.ledger.conn.execute(
        "SELECT qty FROM journal WHERE kind = 'receipt' AND item = 'NUT-M8'").fetchall()
    assert receipts == [("5",)]


def test_commands_keep_flowing_while_the_ledger_is_busy(line: Line) -> None:
    """Commands queue behind the worker; the network loop keeps publishing meanwhile."""
    with line.ledger._lock:  # the ledger is busy (a long batch, say)
        line.send("receipt", {"request_id": "w1", "item": "BOLT-M8", "qty": "1",
                              "location": "LINE-3"})
        wait_until(lambda: line.sync.commands >= 2, 10, "the command to arrive")
        assert line.sync.connected and "w1" not in line.replies()
    assert line.reply("w1")["ok"] is True


def test_stock_is_published_retained_on_change(line: Line) -> None:
    line.ledger.execute(Receive(key="s1", ts=line.ledger.clock(), item="BOLT-M8",
                                qty=Decimal(40), location="LINE-3"))

    def bolts() -> list[str]:
        return [b["qty"] for s in line.central.json_on(f"{P}/stock") for b in s["balances"]
                if b["item"] == "BOLT-M8"]

    wait_until(lambda: "40" in bolts(), 15, "a stock snapshot with 40 bolts")
    late = Consumer(line.central.port, [f"{P}/stock"]).start()
    try:
        wait_until(lambda: bool(late.on(f"{P}/stock")), 10, "the retained snapshot")
        assert late.messages[-1][2] is True  # retained
        assert Contract().errors("stock", late.json_on(f"{P}/stock")[-1]) == []
    finally:
        late.stop()


def test_a_retained_command_is_ignored_on_every_subscription(
    broker: Broker, sync_config: Callable[..., LoadedConfig], clock: StepClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lineside.sync.commands")
    config = sync_config(broker.port)
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="careless-mes")
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    body = {"request_id": "kept", "item": "BOLT-M8", "qty": "5", "location": "LINE-3"}
    sender.publish(f"{P}/cmd/receipt", json.dumps(body), qos=1, retain=True).wait_for_publish(5)
    ledger = open_ledger(config, clock)
    central = Consumer(broker.port, [f"{P}/reply/#"]).start()
    try:
        for _ in range(2):  # the broker hands the retained copy over with each subscription
            sync = Sync(config, ledger, config.data_dir / LEDGER_FILE)
            sync.start()
            wait_until(lambda s=sync: s.commands_ready, 10, "the subscription")
            probe = f"probe-{len(central.messages)}"
            sender.publish(f"{P}/cmd/order.close", json.dumps(
                {"request_id": probe, "order": "NONE"}), qos=1).wait_for_publish(5)
            wait_until(lambda p=probe: any(p.encode() in m for _, m, _ in central.messages),
                       10, "the probe's reply")
            sync.stop(5)
    finally:
        sender.disconnect()
        sender.loop_stop()
        central.stop()
    assert ledger.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0
    assert not any(b'"kept"' in m for _, m, _ in central.messages)
    ignored = [r for r in caplog.records if "ignored a retained command" in r.getMessage()]
    assert len(ignored) == 2 and f"{P}/cmd/receipt" in ignored[0].getMessage()


def test_a_request_id_used_for_another_command_is_refused_not_answered_ok(line: Line) -> None:
    line.send("receipt", {"request_id": "r1", "item": "BOLT-M8", "qty": "10",
                          "location": "LINE-3"})
    assert line.reply("r1")["ok"] is True
    line.send("order.start", {"request_id": "o1", "order": "PO-7", "work_center": "PRESS-3",
                              "item": "BRKT-100"})
    assert line.reply("o1")["ok"] is True
    before = dump(line.ledger.conn)
    line.send("order.close", {"request_id": "r1", "order": "PO-7"})
    line.send("count", {"request_id": "r1", "item": "BOLT-M8", "qty": "3", "location": "LINE-3"})
    wait_until(lambda: len(line.replies_to("r1")) == 3, 10, "both answers")
    first, close, count = line.replies_to("r1")
    assert first["ok"] is True
    for reply in (close, count):
        assert reply == {"request_id": "r1", "ok": False,
                         "error": "request_id r1 was used for receipt"}
    assert dump(line.ledger.conn) == before  # nothing applied, nothing remembered
    line.send("receipt", {"request_id": "r1", "item": "BOLT-M8", "qty": "10",
                          "location": "LINE-3"})
    wait_until(lambda: len(line.replies_to("r1")) == 4, 10, "the repeat's answer")
    assert line.replies_to("r1")[-1]["ok"] is True  # the receipt itself: answered again


def test_master_data_over_mqtt_is_checked_like_the_config_and_against_stock(line: Line) -> None:
    line.send("receipt", {"request_id": "s1", "item": "STEEL-2MM", "qty": "100.000",
                          "lot": "H1", "location": "LINE-3"})
    line.send("receipt", {"request_id": "s2", "item": "BOLT-M8", "qty": "20000",
                          "location": "LINE-3"})
    assert line.reply("s1")["ok"] and line.reply("s2")["ok"]
    line.send("item.put", {"request_id": "k1", "item": "KIT-X", "uom": "ea", "phantom": True})
    assert line.reply("k1")["ok"] is True  # a phantom nobody uses yet needs no BOM yet
    before = dump(line.ledger.conn, events=False)
    refused = {
        "u1": ("item.put", {"item": "STEEL-2MM", "uom": "lb", "decimals": 0},
               "STEEL-2MM has stock on hand (100.000 kg): its uom cannot change from kg to lb"),
        "u2": ("item.put", {"item": "BOLT-M8", "uom": "ea", "phantom": True},
               "BOLT-M8 has stock on hand (20000 ea): it cannot become a phantom"),
        "u3": ("item.put", {"item": "PAINT-9005", "uom": "l", "phantom": True},
               "phantom item 'PAINT-9005' has no BOM to explode"),
        "u4": ("bom.put", {"item": "BRKT-100", "components": [{"item": "KIT-X", "qty": "1"}]},
               "phantom item 'KIT-X' has no BOM to explode"),
        "u5": ("order.start", {"order": "PO-K", "work_center": "PRESS-3", "item": "PRIMER-KIT"},
               "PRIMER-KIT is a phantom item: it is never stocked"),
        "u6": ("item.put", {"item": "NUT-M8", "uom": "ea", "gtin": "09521234543213"},
               "GTIN 09521234543213 is also item STEEL-2MM's"),
    }
    for request_id, (name, body, _) in refused.items():
        line.send(name, {"request_id": request_id, **body})
    for request_id, (_, _, error) in refused.items():
        reply = line.reply(request_id)
        assert reply["ok"] is False and error in (reply["error"] or ""), (request_id, reply)
    assert dump(line.ledger.conn, events=False) == before
    line.send("item.put", {"request_id": "ok1", "item": "STEEL-2MM", "uom": "kg",
                           "decimals": 4, "cost": "1.20"})  # more decimals: every balance fits
    assert line.reply("ok1")["ok"] is True
