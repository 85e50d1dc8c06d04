"""The Sparkplug node's pure rules: seq, bdSeq in the ledger, a primary host's STATE,
line state, counts, report by exception, and a layout whose aliases never repeat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lineside.agent.config import LinesideConfig, load
from lineside.agent.ledger.live import next_bdseq
from lineside.agent.ledger.store import connect
from lineside.agent.sparkplug.checks import node_changed
from lineside.agent.sparkplug.host import PrimaryHost, Seq, Topics
from lineside.agent.sparkplug.live import LedgerState, LiveState
from lineside.agent.sparkplug.metrics import (
    DEVICE_DOWN,
    RUNNING,
    STOPPED,
    LineWatch,
    changes,
    count,
    device_values,
    layout,
)
from tests.conftest import write_config


def state(online: object, ts: object) -> bytes:
    return json.dumps({"online": online, "timestamp": ts}).encode()


def test_seq_starts_at_0_with_a_birth_and_wraps_after_255() -> None:
    seq = Seq()
    assert seq.birth() == 0
    assert [seq.next() for _ in range(256)] == [*range(1, 256), 0]
    assert seq.birth() == 0 and seq.next() == 1


def test_bdseq_is_stored_plus_one_per_connect_and_wraps(tmp_path: Path) -> None:
    conn = connect(tmp_path / "ledger.sqlite")
    assert [next_bdseq(conn) for _ in range(3)] == [0, 1, 2]
    conn.close()
    conn = connect(tmp_path / "ledger.sqlite")  # a restart: it goes on, never repeats
    assert next_bdseq(conn) == 3
    conn.execute("UPDATE meta SET value = '254' WHERE key = 'sparkplug_bdseq'")
    assert [next_bdseq(conn) for _ in range(3)] == [255, 0, 1]


def test_topics() -> None:
    topics = Topics("plant-a", "press-3")
    assert topics.nbirth == "spBv1.0/plant-a/NBIRTH/press-3"
    assert topics.dbirth("PRESS-3") == "spBv1.0/plant-a/DBIRTH/press-3/PRESS-3"
    assert topics.dcmd_filter == "spBv1.0/plant-a/DCMD/press-3/+"
    assert Topics.state("scada-1") == "spBv1.0/STATE/scada-1"


def test_the_primary_host_is_offline_until_it_says_online() -> None:
    host = PrimaryHost()
    assert not host.online
    assert host.update(state(False, 100)) == "offline" and not host.online
    assert host.update(state(True, 200)) == "online" and host.online


def test_a_death_older_than_the_hosts_birth_is_ignored() -> None:
    host = PrimaryHost()
    host.update(state(True, 200))
    assert host.update(state(False, 150)) is None and host.online
    assert host.update(state(False, 200)) == "offline" and not host.online
    assert host.update(state(True, 199)) is None and not host.online  # older than the death
    assert host.update(state(True, 300)) == "online"


def test_a_new_connection_waits_for_the_hosts_state_again() -> None:
    host = PrimaryHost()
    host.update(state(True, 200))
    host.new_session()
    assert not host.online
    assert host.update(state(True, 200)) == "online"  # the same retained birth: still valid


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"online", "not JSON"),
        (b"[true, 1]", "not a JSON object"),
        (state("true", 1), "'online' is not true or false"),
        (state(True, "1"), "'timestamp' is not a number"),
        (state(True, True), "'timestamp' is not a number"),
        (b'{"online": true, "timestamp": NaN}', "'timestamp' is not a number"),
        (b"\xff", "not JSON"),
    ],
)
def test_a_state_that_is_not_3_0_json_is_refused(payload: bytes, reason: str) -> None:
    host = PrimaryHost()
    with pytest.raises(ValueError, match=reason):
        host.update(payload)
    assert not host.online


def test_line_state_running_while_counters_move_then_stopped_or_down() -> None:
    lines = LineWatch(stopped_after_s=60)
    assert lines.state("WC", (None,), False, 0) == STOPPED  # never read
    assert lines.state("WC", (10,), False, 1) == STOPPED  # first value: no movement yet
    assert lines.state("WC", (11,), False, 2) == RUNNING
    assert lines.state("WC", (11,), False, 61) == RUNNING
    assert lines.state("WC", (11,), False, 62) == STOPPED
    assert lines.state("WC", (11,), True, 63) == DEVICE_DOWN
    assert lines.state("WC", (12,), False, 64) == RUNNING


def test_counts_are_ascii_integers_only() -> None:
    assert count("120") == 120 and count("-3") == -3
    assert count(None) is None
    assert count("١٢٣") is None  # int() would take Arabic-Indic digits
    assert count("1.5") is None and count("") is None and count("-") is None


def test_changes_are_what_differs_from_what_was_reported() -> None:
    before = {"a": 1, "b": "x", "c": None, "d": True}
    now = {"a": 1, "b": "y", "c": 0, "d": 1, "e": 2.0}
    assert changes(before, now) == {"b": "y", "c": 0, "d": 1, "e": 2.0}
    assert changes(now, now) == {}


def test_layout_aliases_are_unique_and_stable(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "config" / "example.yaml").read_text()
    path = tmp_path / "example.yaml"
    path.write_text(text)
    cfg = load(path).config
    first, second = layout(cfg), layout(cfg)
    assert first == second
    aliases = [d.alias for d in first.node] + [
        d.alias for defs in first.devices.values() for d in defs
    ]
    assert len(aliases) == len(set(aliases)) and min(aliases) == 1
    names = [d.name for d in first.node]
    assert "Stock/LINE-3/STEEL-2MM" in names and "Stock/LINE-3/BOLT-M8" in names


def test_a_work_center_device_speaks_for_its_counters_and_the_ledger(tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path)).config
    code, wc = next(iter(cfg.work_centers.items()))
    good = wc.counters.good
    assert good is not None
    live = LiveState(values={good: "41"}, devices_up={good.split(".")[0]: False})
    ledger = LedgerState(held={code: 2}, orders={code: ("ORD-1", "OTHER")})
    values = device_values(code, wc, live, ledger, LineWatch(60), 0.0)
    assert values["Counters/Good"] == 41
    assert values["Order"] == "ORD-1" and values["Item"] == "OTHER"
    assert values["Line State"] == DEVICE_DOWN and values["Held Events"] == 2
    idle = device_values(code, wc, LiveState(), LedgerState(), LineWatch(60), 0.0)
    assert idle["Counters/Good"] is None and idle["Order"] is None and idle["Item"] == wc.item


def test_a_reload_restarts_the_node_only_for_what_it_is_made_from(tmp_path: Path) -> None:
    base = write_config(tmp_path / "a").read_text() + "sparkplug: {group_id: g}\n"

    def cfg(text: str, name: str) -> LinesideConfig:
        path = tmp_path / name
        path.write_text(text)
        return load(path).config

    old = cfg(base, "old.yaml")
    other_mqtt = base.replace("topic_prefix: lineside/v1", "topic_prefix: lineside/v2")
    own_host = base.replace("{group_id: g}", "{group_id: g, host: 127.0.0.1}")
    assert not node_changed(old, cfg(base, "same.yaml"))
    assert node_changed(old, cfg(other_mqtt, "mqtt.yaml"))
    own = cfg(own_host, "own.yaml")
    own_other_mqtt = cfg(own_host.replace("lineside/v1", "lineside/v2"), "own2.yaml")
    assert not node_changed(own, own_other_mqtt)
    assert node_changed(old, own)
