"""The consumer-side checks of `lineside tail`: de-duplication, seq gaps and repeats."""

from __future__ import annotations

import json
from typing import Any

from lineside.agent.ledger.outbox_pages import tx_message
from lineside.agent.sync.payloads import Topics, dumps
from lineside.agent.sync.tail import TailChecker, human

TOPICS = Topics("lineside/v1", "plant-a", "press-3")


def tx(i: int) -> str:
    return json.dumps({"id": f"t{i}", "ts": "2026-01-05T06:00:00.000Z", "kind": "receipt",
                       "item": "BOLT-M8", "location": "LINE-3", "qty": "5", "uom": "ea",
                       "lot": None, "order": None, "work_center": None, "cost": "0.25",
                       "cause": ""})


def message(seq: int, *ids: int) -> bytes:
    return tx_message("press-3", seq, [tx(i) for i in ids])


def test_in_order_messages_are_ok_and_duplicates_dropped_by_id() -> None:
    check = TailChecker(TOPICS)
    assert check.feed(TOPICS.tx, message(7, 1, 2)).check == "first"  # joined late: no gap
    second = check.feed(TOPICS.tx, message(8, 2, 3))
    assert second.check == "ok" and [t["id"] for t in second.new] == ["t3"]
    assert second.duplicates == 1


def test_a_gap_is_reported_with_the_missing_range() -> None:
    check = TailChecker(TOPICS)
    check.feed(TOPICS.tx, message(1, 1))
    event = check.feed(TOPICS.tx, message(5, 9))
    assert event.check == "gap" and event.missing == (2, 4) and check.gaps == 1
    assert human(event).splitlines()[0] == "GAP: seq 2..4 missing"
    assert event.to_json()["missing"] == [2, 4]


def test_a_repeat_is_identical_or_flagged() -> None:
    check = TailChecker(TOPICS)
    check.feed(TOPICS.tx, message(1, 1))
    check.feed(TOPICS.tx, message(2, 2))
    same = check.feed(TOPICS.tx, message(2, 2))
    assert same.check == "repeat" and same.new == [] and same.duplicates == 1
    changed = check.feed(TOPICS.tx, message(2, 3))
    assert changed.check == "repeat-different" and "DIFFERENT" in human(changed)
    assert check.feed(TOPICS.tx, message(3, 4)).check == "ok"


def test_other_topics_are_printed_for_a_person_and_as_json() -> None:
    check = TailChecker(TOPICS)
    rows: list[tuple[str, Any]] = [
        (TOPICS.status, {"online": True, "version": "0.1.0", "ts": "T"}),
        (TOPICS.alerts, {"kind": "negative_stock", "ts": "T", "item": "STEEL-2MM"}),
        (TOPICS.reply("receipt"), {"request_id": "r1", "ok": False, "error": "unknown item"}),
    ]
    lines = [human(check.feed(topic, dumps(data))) for topic, data in rows]
    assert lines == [
        "status online version=0.1.0 ts=T",
        "ALERT negative_stock T item=STEEL-2MM",
        "reply receipt r1 refused: unknown item",
    ]
    event = check.feed(TOPICS.status, b"not json")
    assert event.check == "invalid" and json.loads(json.dumps(event.to_json()))["error"]
