"""The Sparkplug edge node against a real mosquitto, seen by a host application of the
tests' own (tests/sparkplug_host.py: its own decoding of Tahu's proto, no protobuf)."""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineside.agent.config import load
from lineside.agent.runtime import Agent
from lineside.simulators.plc import PlcSimulator, SimPoint
from tests.broker import Broker, Consumer, tx_check, wait_until
from tests.sparkplug_host import SparkplugHost, SpbMessage, bdseq, state_payload, typed_value

REPO = Path(__file__).resolve().parents[2]
GROUP, NODE = "plant-t", "gw-spb"
CONFIG = """
gateway: {{id: gw-spb, site: test, data_dir: ./var}}
ledger: {{post_interval_s: 1}}  # postings within seconds: the test waits for them
mqtt: {{port: {broker}}}
items:
  FG:    {{uom: ea, cost: 2}}
  STEEL: {{uom: kg, decimals: 3, cost: 1.1}}
boms: {{FG: {{components: [{{item: STEEL, qty: 0.5}}]}}}}
work_centers:
  PRESS: {{location: LINE, item: FG, counters: {{good: plc.good, scrap: plc.scrap}},
           stages: {{paint: plc.painted}}}}
  SAW:   {{location: CUT, item: FG, counters: {{good: plc.cut}}}}
devices:
  plc: {{driver: modbus_tcp, host: 127.0.0.1, port: {plc}, poll_ms: 50,
         points: {{good: {{address: 10, type: uint32}}, scrap: {{address: 12, type: uint16}},
                  painted: {{address: 14, type: uint32}}, cut: {{address: 16, type: uint32}}}}}}
sparkplug: {{group_id: plant-t, interval_s: {interval}, stock: [STEEL, FG]{extra}}}
"""


@pytest.fixture
def plc() -> Iterator[PlcSimulator]:
    sim = PlcSimulator(
        {1: {"good": SimPoint(10, "uint32", value=100), "scrap": SimPoint(12, "uint16", value=3),
             "painted": SimPoint(14, "uint32", value=90), "cut": SimPoint(16, "uint32", value=5)}},
        port=0,
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def host(broker: Broker) -> Iterator[SparkplugHost]:
    spb = SparkplugHost(broker.port, GROUP).start()
    yield spb
    spb.stop()


def start_agent(tmp_path: Path, broker: Broker, plc: PlcSimulator, interval: float = 0.2,
                extra: str = "") -> Agent:
    path = tmp_path / "line.yaml"
    path.write_text(CONFIG.format(broker=broker.port, plc=plc.port, interval=interval,
                                  extra=extra))
    agent = Agent(load(path))
    agent.start()
    return agent


def documented() -> dict[str, dict[str, str]]:
    """docs/sparkplug.md's metric tables: {"node"|"device": {name pattern: datatype}}."""
    text = (REPO / "docs" / "sparkplug.md").read_text()
    tables: dict[str, dict[str, str]] = {}
    for kind, heading in (("node", "### Node metrics"), ("device", "### Work center metrics")):
        body = text.split(heading, 1)[1].split("\n#", 1)[0]
        tables[kind] = dict(re.findall(r"^\| `([^`]+)` \| (\w+) \|", body, re.M))
    return tables


def expand(pattern: str, **names: list[str]) -> list[str]:
    out = [pattern]
    for key, values in names.items():
        out = [o.replace("{" + key + "}", v) for o in out for v in values] if "{" + key + "}" \
            in pattern else out
    return out


def types_of(message: SpbMessage) -> dict[str, str]:
    return {m["name"]: m["type"] for m in message.payload["metrics"]}


def session_seqs(messages: list[SpbMessage]) -> list[int]:
    """seq of every message from the last NBIRTH on (NDEATH has none)."""
    start = max(i for i, m in enumerate(messages) if m.kind == "NBIRTH")
    return [m.payload["seq"] for m in messages[start:] if m.kind != "NDEATH"]


def test_births_carry_every_documented_metric_with_its_datatype(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, host: SparkplugHost
) -> None:
    agent = start_agent(tmp_path, broker, plc)
    try:
        (nbirth,) = host.wait("NBIRTH", node=NODE)
        dbirths = host.wait("DBIRTH", 2, node=NODE)
    finally:
        agent.stop()
    docs = documented()
    node = {name: t for p, t in docs["node"].items()
            for name in expand(p, location=["CUT", "LINE"], item=["STEEL", "FG"])}
    assert types_of(nbirth) == node
    assert nbirth.payload["seq"] == 0 and bdseq(nbirth) == 0
    assert nbirth.metrics["Node Control/Rebirth"]["value"] is False
    assert all("alias" not in nbirth.metrics[n] for n in ("bdSeq", "Node Control/Rebirth"))
    by_device = {m.device: m for m in dbirths}
    press = {n: t for p, t in docs["device"].items() for n in expand(p, stage=["paint"])}
    assert types_of(by_device["PRESS"]) == press
    saw = {n: t for n, t in press.items() if n not in ("Counters/Scrap", "Stages/paint")}
    assert types_of(by_device["SAW"]) == saw
    assert [m.payload["seq"] for m in dbirths] == [1, 2]
    aliases = [m["alias"] for msg in (nbirth, *dbirths) for m in msg.payload["metrics"]
               if "alias" in m]
    assert len(aliases) == len(set(aliases)) == len(node) - 2 + len(press) + len(saw)
    for message in (nbirth, *dbirths):
        assert all(m["timestamp"] > 0 and (m["is_null"] or m["value"] is not None)
                   for m in message.payload["metrics"])


def test_ddata_follows_a_plc_count_throttled_by_the_interval(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, host: SparkplugHost
) -> None:
    agent = start_agent(tmp_path, broker, plc, interval=0.3)
    try:
        host.wait("DBIRTH", 2, node=NODE)
        plc.set_rate(1, "good", 20)
        wait_until(lambda: any(typed_value(m.metrics.get("Counters/Good", {"value": 0})) > 140
                               for m in host.of("DDATA") if m.device == "PRESS"),
                   20, "DDATA with the PRESS count moving")
        plc.set_rate(1, "good", 0)
        final = int(plc.value(1, "good"))
        wait_until(lambda: any(m.metrics.get("Counters/Good", {}).get("value") == final
                               for m in host.of("DDATA") if m.device == "PRESS"),
                   20, f"DDATA with the PRESS count {final}")
        wait_until(lambda: host.of("DDATA")[-1].metrics.get("Line State", {}).get("value")
                   in (None, "running"), 5, "running")
    finally:
        agent.stop()
    press = [m for m in host.of("DDATA") if m.device == "PRESS"]
    stamps = [m.payload["timestamp"] for m in press]
    assert all(b - a >= 0.3 * 1000 * 0.9 for a, b in itertools.pairwise(stamps)), stamps
    assert all("name" not in metric and "datatype" not in metric
               for m in press for metric in m.payload["metrics"])
    assert any(m.metrics.get("Line State", {}).get("value") == "running" for m in press)
    # The birth may come before the first poll (its count null, then the first value in a
    # DDATA); after that, a counter that does not move is never reported again.
    saw = [m.metrics["Counters/Good"] for m in host.of("DBIRTH") + host.of("DDATA")
           if m.device == "SAW" and "Counters/Good" in m.metrics]
    known = [typed_value(v) for v in saw if not v.get("is_null")]
    assert len(known) <= 1, saw


def test_a_rebirth_request_repeats_every_birth_with_the_same_bdseq(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, host: SparkplugHost
) -> None:
    agent = start_agent(tmp_path, broker, plc)
    try:
        (first,) = host.wait("NBIRTH", node=NODE)
        host.wait("DBIRTH", 2, node=NODE)
        plc.set_rate(1, "cut", 10)
        wait_until(lambda: len(host.of("DDATA")) >= 3, 20, "some DDATA")
        host.rebirth(NODE)
        births = host.wait("NBIRTH", 2, node=NODE)
        host.wait("DBIRTH", 4, node=NODE)
        plc.set_rate(1, "cut", 0)
    finally:
        agent.stop()
    again = births[1]
    assert bdseq(again) == bdseq(first) and again.payload["seq"] == 0
    assert types_of(again) == types_of(first)
    messages = host.messages(NODE)
    after = messages[messages.index(next(m for m in messages if m is not first and
                                         m.kind == "NBIRTH")):]
    assert [m.kind for m in after[:3]] == ["NBIRTH", "DBIRTH", "DBIRTH"]
    assert [m.payload["seq"] for m in after[:3]] == [0, 1, 2]
    ndeath = host.of("NDEATH", NODE)[-1]  # the clean stop's own NDEATH
    assert bdseq(ndeath) == bdseq(first) and "seq" not in ndeath.payload


def test_seq_runs_gapless_mod_256_and_p_tx_is_untouched(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, host: SparkplugHost
) -> None:
    central = Consumer(broker.port, ["lineside/v1/test/gw-spb/tx"]).start()
    agent = start_agent(tmp_path, broker, plc, interval=0.05)
    try:
        host.wait("NBIRTH", node=NODE)
        for point in ("good", "cut", "painted"):
            plc.set_rate(1, point, 40)
        wait_until(lambda: len(host.messages(NODE)) > 300, 60, "300 Sparkplug messages")
        for point in ("good", "cut", "painted"):
            plc.set_rate(1, point, 0)
        good, cut = int(plc.value(1, "good")), int(plc.value(1, "cut"))
        assert agent.ledger is not None
        wait_until(lambda: agent.ledger is not None and completions(agent) == good - 100 + cut - 5,
                   30, "the ledger to post every unit")
        wait_until(lambda: len(tx_check(central.on("lineside/v1/test/gw-spb/tx"))[0])
                   == transactions(agent), 30, "P/tx to carry every transaction")
    finally:
        agent.stop()
        central.stop()
    seqs = session_seqs(host.messages(NODE))
    assert seqs[0] == 0
    assert all(b == (a + 1) % 256 for a, b in itertools.pairwise(seqs)), seqs
    assert 255 in seqs and seqs.count(0) >= 2, "seq wrapped"
    txs, _ = tx_check(central.on("lineside/v1/test/gw-spb/tx"))
    assert sum(int(t["qty"]) for t in txs if t["kind"] == "completion") == good - 100 + cut - 5


def completions(agent: Agent) -> int:
    assert agent.ledger is not None
    rows = agent.ledger.conn.execute("SELECT qty FROM journal WHERE kind = 'completion'")
    return sum(int(r[0]) for r in rows)


def transactions(agent: Agent) -> int:
    assert agent.ledger is not None
    return int(agent.ledger.conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0])


def test_commands_other_than_rebirth_are_refused_and_the_node_carries_on(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, host: SparkplugHost,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="lineside.sparkplug")
    agent = start_agent(tmp_path, broker, plc)
    try:
        host.wait("DBIRTH", 2, node=NODE)
        host.publish(f"spBv1.0/{GROUP}/NCMD/{NODE}", b"\xff\xff not protobuf")
        host.publish(f"spBv1.0/{GROUP}/DCMD/{NODE}/PRESS", b"")
        wait_until(lambda: "DCMD/gw-spb/PRESS refused" in caplog.text, 10, "the DCMD refusal")
        assert "NCMD refused: not a Sparkplug B payload" in caplog.text
        plc.advance(1, "good", 5)
        wait_until(lambda: any(m.metrics.get("Counters/Good", {}).get("value") == 105
                               for m in host.of("DDATA")), 20, "DDATA after the bad commands")
    finally:
        agent.stop()
    assert len(host.of("NBIRTH", NODE)) == 1


def test_a_primary_host_gates_the_births(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, host: SparkplugHost
) -> None:
    state = "spBv1.0/STATE/scada-1"
    now = int(time.time() * 1000)
    host.publish(state, state_payload(False, now - 5000), qos=1, retain=True)
    agent = start_agent(tmp_path, broker, plc, extra=", primary_host_id: scada-1")
    try:
        wait_until(lambda: agent.sparkplug is not None and agent.sparkplug.bdseq == 0, 20,
                   "the node's first CONNECT")
        time.sleep(1.0)  # a birth, were there one, would have come by now (interval 0.2 s)
        assert host.of("NBIRTH", NODE) == []
        host.publish(state, state_payload(True, now), qos=1, retain=True)
        (first,) = host.wait("NBIRTH", node=NODE)
        host.publish(state, state_payload(False, now - 1), qos=1, retain=True)  # stale death
        host.publish(state, state_payload(False, now), qos=1, retain=True)
        (death,) = host.wait("NDEATH", node=NODE)
        host.publish(state, state_payload(True, now + 1000), qos=1, retain=True)
        births = host.wait("NBIRTH", 2, node=NODE)
    finally:
        agent.stop()
    assert bdseq(first) == 0 and bdseq(death) == 0
    assert bdseq(births[1]) == 1, "a new connection, the next bdSeq"


def test_a_reload_that_changes_the_node_starts_a_new_session(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, host: SparkplugHost
) -> None:
    agent = start_agent(tmp_path, broker, plc)
    path = tmp_path / "line.yaml"
    try:
        (first,) = host.wait("NBIRTH", node=NODE)
        agent.reload(load(path))  # nothing of the node's changed: the session goes on
        path.write_text(path.read_text().replace("stock: [STEEL, FG]", "stock: [STEEL]"))
        agent.reload(load(path))
        births = host.wait("NBIRTH", 2, node=NODE)
        host.wait("DBIRTH", 4, node=NODE)
    finally:
        agent.stop()
    (death, _) = host.of("NDEATH", NODE)  # the reload's, then the stop's
    assert len(births) == 2 and bdseq(death) == bdseq(first) == 0
    assert bdseq(births[1]) == 1
    assert "Stock/LINE/FG" in first.metrics and "Stock/LINE/FG" not in births[1].metrics


def test_a_reload_whose_sparkplug_files_cannot_be_read_keeps_the_agent_running(
    tmp_path: Path, broker: Broker, plc: PlcSimulator, host: SparkplugHost,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = start_agent(tmp_path, broker, plc)
    path = tmp_path / "line.yaml"
    try:
        host.wait("NBIRTH", node=NODE)
        path.write_text(path.read_text().replace(
            "stock: [STEEL, FG]",
            f"stock: [STEEL], host: 127.0.0.1, port: {broker.port}, password_file: nowhere.pw"))
        agent.reload(load(path))
        assert "sparkplug: not started with the new config" in caplog.text
        assert "(sparkplug.password_file)" in caplog.text
        plc.advance(1, "good", 5)
        wait_until(lambda: completions(agent) == 5, 20, "the agent to go on counting")
    finally:
        agent.stop()
