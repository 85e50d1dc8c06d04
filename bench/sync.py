"""Outbox drain rate against raw paho, measured in the same run on the same local mosquitto.

Fills a ledger's outbox with --n transactions, starts a mosquitto on a free loopback port,
then times (1) a raw paho QoS 1 publishing loop of messages the same size as lineside's
P/tx messages, with the same in-flight window, and (2) lineside's Sync draining the backlog
(read in pages, messages stored with their seq, rows marked sent on PUBACK). Prints figures
and ratios; asserts nothing.

    .venv/bin/python bench/sync.py [--n 200000] [--batch 100] [--inflight 20]

Targets: messages/s >= 80% of raw paho; transactions/s >= 20x the raw message rate.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from common import cpu_seconds, stat_cpu_seconds
from paho.mqtt.enums import CallbackAPIVersion

from lineside.agent.config import load
from lineside.agent.ledger.outbox_pages import PageReader
from lineside.agent.ledger.store import connect
from lineside.agent.sync import Sync

REPO = Path(__file__).resolve().parents[1]


def broker_module() -> Any:
    sys.path.insert(0, str(REPO))  # tests/broker.py starts and stops the test mosquitto
    return importlib.import_module("tests.broker")


def fill_outbox(conn: sqlite3.Connection, n: int) -> None:
    """n realistic transactions, written as the ledger writes them (one commit here): the
    journal row, and an outbox row that points at it (payload '': rebuilt when published)."""
    conn.execute("BEGIN IMMEDIATE")
    ts = "2026-01-05T06:00:00.000Z"
    conn.executemany(
        "INSERT INTO journal (id, ts, kind, item, location, lot, qty, uom, order_no,"
        " work_center, cost, cause, event) VALUES (?, ?, 'backflush', ?, 'LINE-3', '',"
        " '-0.875', 'kg', 'PO-4711', 'PRESS-3', '-1.09375', ?, ?)",
        (
            (str(uuid.uuid4()), ts, f"C{i % 20:02d}", f"plc3.good:{i}->{i + 1}", f"e{i}")
            for i in range(n)
        ),
    )
    first = conn.execute("SELECT last_insert_rowid()").fetchone()[0] - n + 1
    conn.executemany(
        "INSERT INTO outbox (stream, payload, created_ts, tx) VALUES ('tx', '', ?, ?)",
        ((ts, first + i) for i in range(n)),
    )
    conn.execute("COMMIT")


@dataclass
class Run:
    """One drain or raw loop: wall seconds and CPU seconds of who did the work."""

    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)
    first_ack_s: float = 0.0
    marking_s: float = 0.0


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name."""
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        out[names.get(tid, tid)] = stat_cpu_seconds(Path(f"/proc/self/task/{tid}/stat"))
    return out


def drain(config_path: Path, db: Path, messages: int, broker_pid: int) -> Run:
    """From start() until every message was acknowledged (then the rows are marked sent)."""
    sync = Sync(load(config_path), None, db)
    threads, broker = thread_cpu(), cpu_seconds(broker_pid)
    started = time.perf_counter()
    sync.start()
    first = None
    while (acks := sync.counters()["acks"]) < messages:
        if first is None and acks:
            first = time.perf_counter() - started
        time.sleep(0.001)
    delivered = time.perf_counter() - started
    after = thread_cpu()
    cpu = {n: after[n] - threads.get(n, 0.0) for n in after if n.startswith("lineside-sync")}
    cpu["mosquitto"] = cpu_seconds(broker_pid) - broker
    sync.stop(5)  # records the last acks and marks the remaining rows sent
    return Run(delivered, cpu, first or delivered, time.perf_counter() - started - delivered)


def raw_paho(port: int, payload: bytes, messages: int, inflight: int, broker_pid: int) -> Run:
    """The physical limit here: paho publishing QoS 1 as fast as the window allows."""
    done = threading.Event()
    acked = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == messages:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw")
    client.max_inflight_messages_set(inflight)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    process, broker = cpu_seconds(os.getpid()), cpu_seconds(broker_pid)
    started = time.perf_counter()
    for _ in range(messages):
        client.publish("bench/raw", payload, qos=1)
    done.wait(600)
    elapsed = time.perf_counter() - started
    cpu = {"paho": cpu_seconds(os.getpid()) - process,
           "mosquitto": cpu_seconds(broker_pid) - broker}
    client.disconnect()
    client.loop_stop()
    return Run(elapsed, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="transactions in the backlog")
    parser.add_argument("--batch", type=int, default=100, help="mqtt.batch_max")
    parser.add_argument("--inflight", type=int, default=20, help="mqtt.inflight_max")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate raw and lineside this many times; the best of each counts"
                             " (other work on the machine only ever slows a run down)")
    args = parser.parse_args()
    brokers = broker_module()
    executable = brokers.find_mosquitto()
    if executable is None:
        sys.exit(brokers.INSTALL_HINT)
    messages = -(-args.n // args.batch)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = brokers.Broker(tmp / "broker", executable=executable)
        broker.start()
        assert broker.proc is not None
        try:
            rounds = [one_round(tmp / f"round{r}", broker.port, broker.proc.pid, args, messages)
                      for r in range(args.rounds)]
        finally:
            broker.stop()
    for r, (_, raw, lineside) in enumerate(rounds):
        print(f"round {r + 1}: raw paho {raw.seconds:.2f} s, lineside {lineside.seconds:.2f} s"
              f" (first ack after {lineside.first_ack_s * 1000:.0f} ms; rows all marked sent"
              f" {lineside.marking_s:.2f} s later)")
    size = rounds[0][0]
    best_raw = min((r[1] for r in rounds), key=lambda run: run.seconds)
    best_lineside = min((r[2] for r in rounds), key=lambda run: run.seconds)
    report(args, messages, size, best_lineside, best_raw)


def one_round(tmp: Path, port: int, broker_pid: int, args: argparse.Namespace,
              messages: int) -> tuple[float, Run, Run]:
    """(message size, raw paho, lineside)."""
    config = tmp / "bench.yaml"
    tmp.mkdir(parents=True)
    config.write_text(
        f"gateway: {{id: bench, site: lab, data_dir: {tmp / 'data'}}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {port}, batch_max: {args.batch},"
        f" inflight_max: {args.inflight}}}\n"
    )
    db = tmp / "data" / "ledger.sqlite"
    conn = connect(db)
    fill_outbox(conn, args.n)
    payload = PageReader(conn, "bench", args.batch).read(0, 1, 1)[0].payload  # a real one
    raw = raw_paho(port, payload, messages, args.inflight, broker_pid)
    lineside = drain(config, db, messages, broker_pid)
    unsent = conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_ts IS NULL").fetchone()[0]
    assert unsent == 0, f"{unsent} rows left unsent"
    conn.close()
    return float(len(payload)), raw, lineside


def report(args: argparse.Namespace, messages: int, size: float, lineside: Run,
           raw: Run) -> None:
    msg_rate, raw_rate = messages / lineside.seconds, messages / raw.seconds
    tx_rate = args.n / lineside.seconds
    print(f"backlog: {args.n} transactions, batch_max {args.batch}, inflight_max"
          f" {args.inflight}; {messages} messages of {size / 1024:.1f} KiB (best of"
          f" {args.rounds} rounds)")
    print(f"lineside drain : {lineside.seconds:7.2f} s  {msg_rate:9.0f} messages/s"
          f"  {tx_rate:10.0f} transactions/s")
    print(f"raw paho QoS 1 : {raw.seconds:7.2f} s  {raw_rate:9.0f} messages/s")
    print(f"messages/s, lineside / raw paho     : {msg_rate / raw_rate:6.2f}  (target >= 0.80)")
    print(f"transactions/s / raw paho messages/s: {tx_rate / raw_rate:6.1f}  (target >= 20)")
    # Where the time goes: CPU per message of each side, and what the cores allow.
    cores = os.cpu_count() or 1
    for label, run in (("raw paho", raw), ("lineside", lineside)):
        parts = ", ".join(f"{name} {1e6 * cpu / messages:.0f}" for name, cpu in run.cpu.items())
        total = sum(run.cpu.values())
        print(f"CPU per message, {label:8}: {1e6 * total / messages:5.0f} us ({parts});"
              f" {total / run.seconds:.2f} of {cores} cores busy")
    ceiling = cores * messages / sum(lineside.cpu.values())
    print(f"ceiling for lineside's CPU per message on {cores} cores, perfectly parallel:"
          f" {ceiling:.0f} messages/s = {ceiling / raw_rate:.2f} x raw paho")


if __name__ == "__main__":
    main()
