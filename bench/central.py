"""lineside central: transactions/s into PostgreSQL for one and two consumer processes,
beside raw psycopg inserting the same rows with the same commits, in the same run.

Starts a PostgreSQL (tests/pg.py: initdb in a temporary folder, fsync on, as on a server)
and a mosquitto on free loopback ports. For each round: the consumers connect once (their
persistent sessions join the shared subscription), stop, a raw paho publisher queues
--messages P/tx messages of --batch transactions from --gateways gateways at the broker,
and the consumers start again; the rate is the transactions landed per second from the
first to the last. Raw psycopg then COPYs the same rows into the same table, in commits of
the consumers' mean transactions per commit. Prints figures and ratios; asserts nothing.

    .venv/bin/python bench/central.py [--messages 2000] [--batch 100] [--rounds 2]

Targets: one consumer >= 50% of raw psycopg; two consumers >= 1.6x one.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from common import (
    Figure,
    Process,
    broker_module,
    free_port,
    lineside_command,
    median,
    say,
    workdir,
    write_figures,
)
from paho.mqtt.enums import CallbackAPIVersion

from lineside.central.rows import parse_tx
from lineside.central.schema import migrate
from lineside.central.store import COPY_TX

REPO = Path(__file__).resolve().parents[1]


def messages(gateways: int, count: int, batch: int) -> list[tuple[str, bytes]]:
    """count P/tx messages, round-robin over the gateways, each gateway's seqs from 1."""
    out = []
    for n in range(count):
        gateway = f"gw-{n % gateways:02d}"
        seq = n // gateways + 1
        txs = [
            {"id": str(uuid.uuid4()), "ts": "2026-01-05T06:00:00.000Z", "kind": "backflush",
             "item": f"C{i % 20:02d}", "location": "LINE-3", "qty": "-0.875", "uom": "kg",
             "lot": None, "order": "PO-4711", "work_center": "PRESS-3", "cost": "-1.09375",
             "cause": f"plc3.good:{seq * batch + i}->{seq * batch + i + 1}"}
            for i in range(batch)
        ]  # fmt: skip
        body = json.dumps({"gateway": gateway, "seq": seq, "transactions": txs},
                          separators=(",", ":")).encode()
        out.append((f"lineside/v1/bench/{gateway}/tx", body))
    return out


def queue_at_broker(port: int, payloads: list[tuple[str, bytes]]) -> None:
    """Publish everything with QoS 1 (the broker queues it for the offline sessions)."""
    done = threading.Event()
    acked = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == len(payloads):
            done.set()

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id="bench-gateways", protocol=mqtt.MQTTv5)
    client.on_publish = on_publish
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, body in payloads:
        client.publish(topic, body, qos=1)
    done.wait(600)
    client.disconnect()
    client.loop_stop()


class Consumers:
    def __init__(self, tmp: Path, port: int, dsn: str, count: int) -> None:
        # A group of their own: the broker would hand a share of the messages to the
        # (offline) sessions of an earlier round's group.
        group = f"bench-{uuid.uuid4().hex[:8]}"
        self.configs = []
        for n in range(count):
            health = free_port()
            path = tmp / f"{group}-{n}.yaml"
            path.write_text(
                f"mqtt: {{port: {port}, client_id: {group}-{n}, session_expiry_s: 3600,"
                f" receive_max: 200}}\npostgres: {{dsn: \"{dsn}\"}}\ngroup: {group}\n"
                f'health: {{listen: "127.0.0.1:{health}"}}\nlog: {{level: warning}}\n'
            )
            self.configs.append((path, health))
        self.procs: list[Process] = []

    def start(self) -> None:
        self.procs = [
            Process([*lineside_command(), "central", "run", "-c", str(p)], p.with_suffix(".log"))
            for p, _ in self.configs
        ]
        for _, health in self.configs:
            wait_metric(health, "lineside_central_broker_connected", 1)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()

    def total(self, name: str) -> float:
        return sum(metric(health, name) for _, health in self.configs)


def metric(port: int, name: str) -> float:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return -1.0
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def wait_metric(port: int, name: str, value: float, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while metric(port, name) < value:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not reach {value} on port {port}")
        time.sleep(0.05)


def consumer_round(tmp: Path, port: int, pg: Any, payloads: list[tuple[str, bytes]],
                   count: int, total_tx: int) -> tuple[float, float]:
    """Transactions/s of count consumers draining the queued payloads; and their mean
    transactions per commit."""
    dsn = pg.create_database()
    consumers = Consumers(tmp, port, dsn, count)
    consumers.start()  # sessions and subscriptions made; schema migrated
    consumers.stop()
    queue_at_broker(port, payloads)
    consumers.start()
    try:
        first = None
        while (landed := consumers.total("lineside_central_transactions_total")) < total_tx:
            if first is None and landed > 0:
                first = (time.perf_counter(), landed)
            time.sleep(0.02)
        end = time.perf_counter()
        commits = consumers.total("lineside_central_commits_total")
    finally:
        consumers.stop()
    assert first is not None
    rate = (total_tx - first[1]) / (end - first[0])
    return rate, total_tx / max(1.0, commits)


def raw_round(pg: Any, payloads: list[tuple[str, bytes]], per_commit: int,
              connections: int = 1) -> float:
    """Raw psycopg: the same rows by COPY into the same table, per_commit rows a commit,
    split over connections writing side by side (one thread each)."""
    rows = []
    for topic, body in payloads:
        _, site, gateway, _ = topic.rsplit("/", 3)
        rows.extend(parse_tx(site, gateway, body).rows)
    dsn = pg.create_database()
    with psycopg.connect(dsn) as conn:
        migrate(conn)
    conns = [psycopg.connect(dsn) for _ in range(connections)]

    def copy_share(conn: Any, share: list[Any]) -> None:
        for start in range(0, len(share), per_commit):
            with conn.cursor() as cur, cur.copy(COPY_TX) as copy:
                for row in share[start : start + per_commit]:
                    copy.write_row(row)
            conn.commit()

    shares = [rows[n::connections] for n in range(connections)]
    threads = [
        threading.Thread(target=copy_share, args=(c, s))
        for c, s in zip(conns, shares, strict=True)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    for conn in conns:
        conn.close()
    return len(rows) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100, help="transactions per message")
    parser.add_argument("--gateways", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures here (for run_all.py)")
    args = parser.parse_args()
    # SIGTERM still runs the finally blocks: PostgreSQL and mosquitto are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    brokers = broker_module()
    pg_module = importlib.import_module("tests.pg")
    bin_dir = pg_module.find_bin_dir()
    if bin_dir is None or brokers.find_mosquitto() is None:
        sys.exit("bench/central.py needs PostgreSQL and mosquitto (see .ci/run)")
    payloads = messages(args.gateways, args.messages, args.batch)
    total = args.messages * args.batch
    one, two, raw, raw2 = [], [], [], []
    with workdir("bench-central") as tmp:
        broker = brokers.Broker(tmp / "broker", executable=brokers.find_mosquitto())
        broker.start()
        pg = pg_module.Postgres(bin_dir, fsync=True).start()
        try:
            for n in range(args.rounds):  # alternate, so that load from others hits all alike
                rate1, per_commit = consumer_round(tmp, broker.port, pg, payloads, 1, total)
                rate2, _ = consumer_round(tmp, broker.port, pg, payloads, 2, total)
                rate_raw = raw_round(pg, payloads, int(per_commit))
                rate_raw2 = raw_round(pg, payloads, int(per_commit), connections=2)
                say(f"round {n + 1}: one consumer {rate1:.0f} tx/s, two {rate2:.0f} tx/s,"
                    f" raw psycopg {rate_raw:.0f} tx/s, two raw connections"
                    f" {rate_raw2:.0f} tx/s ({per_commit:.0f} tx per commit)")
                one.append(rate1)
                two.append(rate2)
                raw.append(rate_raw)
                raw2.append(rate_raw2)
        finally:
            pg.stop()
            broker.stop()
    r1, r2, rr, rr2 = median(one), median(two), median(raw), median(raw2)
    say(f"one consumer   : {r1:.0f} transactions/s = {r1 / rr:.2f} x raw psycopg")
    say(f"two consumers  : {r2:.0f} transactions/s = {r2 / r1:.2f} x one consumer")
    say(f"raw psycopg    : {rr:.0f} transactions/s (COPY, the same rows and commits)")
    say(f"raw, two conns : {rr2:.0f} transactions/s = {rr2 / rr:.2f} x one connection"
        " (the most two consumers could reach here)")
    rerun = f".venv/bin/python bench/central.py --messages {args.messages}"
    note = (f"{args.messages} messages of {args.batch} transactions from {args.gateways}"
            f" gateways queued at the broker, then drained; median of {args.rounds} rounds;"
            f" raw psycopg with two connections side by side: {rr2:.0f} tx/s"
            f" ({rr2 / rr:.2f}x one), the ceiling for two consumers on this machine")
    if args.json is not None:
        write_figures(args.json, [
            Figure("lineside central, one consumer, transactions/s into PostgreSQL", r1,
                   "tx/s", rr, "raw psycopg COPY, same rows and commits", ">= 0.50x raw",
                   r1 / rr >= 0.5, rerun, note=note),
            Figure("lineside central, two consumers, transactions/s into PostgreSQL", r2,
                   "tx/s", r1, "one consumer", ">= 1.6x one", r2 / r1 >= 1.6, rerun,
                   note=note),
        ])


if __name__ == "__main__":
    sys.exit(main())
