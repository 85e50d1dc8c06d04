"""The must-show of lineside central (issue 14): five gateways, two consumers, a broker
restarted without persistence and a consumer killed with kill -9; at the end PostgreSQL
holds every transaction of every gateway exactly once, the gaps were found and filled by
replay, and the consumers' metrics say so. A replay of a pruned range is answered
honestly."""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from lineside.agent.bootstrap import LEDGER_FILE, open_ledger
from lineside.agent.config import LoadedConfig, load
from lineside.agent.ledger.outbox import mark_sent
from lineside.agent.ledger.store import connect
from lineside.agent.sync import prune, sync_status
from lineside.clock import utc_now
from tests.broker import Broker, Consumer, wait_until
from tests.conftest import write_config
from tests.integration.central_helpers import CentralProcess, central_config
from tests.integration.test_sync_crash import start_publisher
from tests.integration.test_sync_outage import receive_many

pytestmark = [pytest.mark.broker, pytest.mark.slow]
GATEWAYS = [f"press-{n}" for n in range(1, 6)]
ROUNDS, PER_ROUND = 12, 150  # transactions per gateway: 1800


def gateway_config(tmp_path: Path, port: int, gateway: str) -> LoadedConfig:
    path = write_config(
        tmp_path / gateway,
        **{"id: press-3\n": f"id: {gateway}\n", "port: 18830\n": f"port: {port}\n",
           "  topic_prefix: lineside/v1\n": "  topic_prefix: lineside/v1\n  protocol: \"5\"\n"
           "  batch_max: 20\n  inflight_max: 5\n"},
    )
    return load(path)


def journal_ids(config: LoadedConfig) -> set[str]:
    conn = connect(config.data_dir / LEDGER_FILE)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM journal")}
    finally:
        conn.close()


def drained(config: LoadedConfig) -> bool:
    conn = connect(config.data_dir / LEDGER_FILE)
    try:
        return int(sync_status(conn)["backlog_tx"]) == 0
    finally:
        conn.close()


def landed(dsn: str) -> dict[str, list[str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT gateway, id FROM lineside_transactions").fetchall()
    out: dict[str, list[str]] = {}
    for gateway, tx_id in rows:
        out.setdefault(gateway, []).append(tx_id)
    return out


def state(dsn: str, expected: dict[str, set[str]]) -> str:
    """What the database holds, for a failure's message."""
    got = landed(dsn)
    lines = [f"{g}: {len(expected[g] - set(got.get(g, [])))} of {len(expected[g])} missing"
             for g in sorted(expected)]
    with psycopg.connect(dsn) as conn:
        for row in conn.execute(
            "SELECT g.gateway, g.contiguous_seq, g.announced_seq, g.probe, max(m.seq),"
            " count(m.seq) FROM lineside_gateways g LEFT JOIN lineside_messages m"
            " USING (site, gateway) GROUP BY 1, 2, 3, 4 ORDER BY 1"
        ):
            lines.append(f"gateway/contiguous/announced/probe/max/count: {row}")
        for row in conn.execute(
            "SELECT g.gateway, array_agg(s) FROM lineside_gateways g,"
            " generate_series(1, g.contiguous_seq) s WHERE NOT EXISTS (SELECT 1 FROM"
            " lineside_messages m WHERE (m.site, m.gateway, m.seq) = (g.site, g.gateway, s))"
            " GROUP BY 1"
        ):
            lines.append(f"absent below contiguous: {row}")
        for row in conn.execute(
            "SELECT gateway, from_seq, to_seq, requested_at, answered_at, reply->>'resent'"
            " FROM lineside_replays ORDER BY requested_at"
        ):
            lines.append(f"replay: {row}")
    return "\n".join(lines)


@pytest.fixture
def made() -> Iterator[list[CentralProcess]]:
    """The consumers a test starts, stopped however the test ends (no orphans on failure)."""
    procs: list[CentralProcess] = []
    yield procs
    for proc in procs:
        proc.stop()


def test_five_gateways_two_consumers_a_broker_restart_and_a_kill_lose_nothing(
    tmp_path: Path, broker: Broker, pg_dsn: str, made: list[CentralProcess]
) -> None:
    configs = {g: gateway_config(tmp_path, broker.port, g) for g in GATEWAYS}
    ledgers = {g: open_ledger(c) for g, c in configs.items()}

    def central(name: str) -> CentralProcess:
        path, health = central_config(tmp_path / "central", broker.port, pg_dsn, name)
        proc = CentralProcess(path, health).start()
        made.append(proc)
        wait_until(proc.connected, 30, f"{name} connected")
        return proc

    a, b = central("central-a"), central("central-b")
    publishers = [start_publisher(c, tmp_path / f"{g}.log") for g, c in configs.items()]
    errors: list[BaseException] = []

    def load_generator() -> None:
        try:
            for n in range(ROUNDS):
                for ledger in ledgers.values():
                    receive_many(ledger, n * PER_ROUND, (n + 1) * PER_ROUND, batch=PER_ROUND)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writer = threading.Thread(target=load_generator)
    writer.start()
    snapshots: list[CentralProcess] = []
    try:
        total = ROUNDS * PER_ROUND * len(GATEWAYS)
        wait_until(lambda: sum(map(len, landed(pg_dsn).values())) >= total // 4, 120,
                   "a quarter of the transactions landed")
        # The faults, while the gateways keep publishing: b dies with what it holds
        # unacknowledged; a is paused so that the broker queues for it; then the broker
        # restarts without persistence, and what it queued is gone.
        b_counts = {k: b.metric(k) for k in ("lineside_central_gaps_total",
                                              "lineside_central_replayed_messages_total")}
        b.kill()
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            threading.Event().wait(1.5)
            broker.restart()
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        b2 = central("central-b")
        writer.join(300)
        assert not errors and not writer.is_alive()
        wait_until(lambda: all(drained(c) for c in configs.values()), 120,
                   "every gateway's outbox acknowledged")
        expected = {g: journal_ids(c) for g, c in configs.items()}
        assert sum(map(len, expected.values())) == total
        try:
            wait_until(lambda: {g: set(ids) for g, ids in landed(pg_dsn).items()} == expected,
                       180, "PostgreSQL to hold every transaction of every gateway")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{state(pg_dsn, expected)}") from None
        snapshots = [a, b2]
        wait_until(lambda: all(p.metric("lineside_central_missing_seqs") == 0 for p in snapshots),
                   30, "no seq missing")
    finally:
        writer.join(60)
        for proc in publishers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)

    # Exactly once: no transaction twice, whatever was delivered twice.
    rows = landed(pg_dsn)
    assert all(len(ids) == len(set(ids)) for ids in rows.values())
    assert sum(map(len, rows.values())) == total
    # The gaps were found and filled by replay, and the metrics say so.
    gaps = b_counts["lineside_central_gaps_total"] + sum(
        p.metric("lineside_central_gaps_total") for p in snapshots)
    replayed = b_counts["lineside_central_replayed_messages_total"] + sum(
        p.metric("lineside_central_replayed_messages_total") for p in snapshots)
    probes = sum(p.metric("lineside_central_replay_requests_total", reason="probe")
                 for p in snapshots)
    requests = sum(p.metric("lineside_central_replay_requests_total") for p in snapshots)
    # What the broker lost is found either as a gap (a later seq landed) or by the probe
    # each consumer sends after a link that did not resume its session (the lost seqs
    # were a gateway's newest); either way replayed messages filled it.
    assert (gaps > 0 or probes > 0) and replayed > 0 and requests > 0, (gaps, probes, replayed)
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE replayed), count(*) FILTER (WHERE state <> 'landed')"
            " FROM lineside_messages").fetchone()
    assert row is not None and row[0] > 0 and row[1] == 0  # replays landed; nothing lost

    # A replay of a pruned range is answered honestly.
    config = configs["press-1"]
    conn = connect(config.data_dir / LEDGER_FILE)
    mark_sent(conn)
    prune(conn, 0, utc_now() + timedelta(seconds=1))
    conn.close()
    publisher = start_publisher(config, tmp_path / "press-1.log")
    try:
        answer = ask_replay(broker.port, "press-1", from_seq=1, to_seq=10)
    finally:
        publisher.send_signal(signal.SIGTERM)
        publisher.wait(20)
    assert answer["ok"] is True and answer["not_held"] == [[1, 10]] and answer["resent"] == []


def ask_replay(port: int, gateway: str, **body: int) -> dict[str, object]:
    base = f"lineside/v1/plant-a/{gateway}"
    replies = Consumer(port, [f"{base}/reply/replay"], protocol=mqtt.MQTTv5).start()
    request_id = f"test-{uuid.uuid4().hex[:8]}"
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        def answered() -> bool:
            # Sent again until answered: the publisher may still be subscribing.
            if not replies.on(f"{base}/reply/replay"):
                client.publish(f"{base}/cmd/replay",
                               json.dumps({"request_id": request_id, **body}), qos=1)
                threading.Event().wait(0.5)
            return bool(replies.on(f"{base}/reply/replay"))

        wait_until(answered, 60, "the answer to the replay of a pruned range")
    finally:
        client.loop_stop()
        replies.stop()
    found = [r for r in replies.json_on(f"{base}/reply/replay") if r["request_id"] == request_id]
    return dict(found[0])
