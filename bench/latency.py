"""Latency from a counter step at a PLC to the P/tx message at a subscriber, beside the limit.

Starts a mosquitto, one simulated PLC and `lineside run` polling it at poll_ms 250, and a
subscriber to P/tx. Steps the good counter by 1 at random phases (--steps times, 0.3-0.6 s
apart), noting time.monotonic() at each step, and matches every step to the message whose
completion's cause (`plc00.good:1000->1001`) covers it. The physical limit, measured in the
same run through the same broker: a raw paho QoS 1 publish -> receive round trip, plus the
wait for the next poll (poll/2 on average, a whole poll interval at worst). Prints figures
and ratios; asserts nothing.

    .venv/bin/python bench/latency.py [--steps 200] [--poll-ms 250] [--seed 1]

Target: p99 <= poll interval + 50 ms, measured with readings posted as they come
(`ledger: {commit_interval_s: 0, post_interval_s: 0}`); with a posting window the
promise is the window + poll + 50 ms (docs/configuration.md#ledger).
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from common import (
    START_GOOD,
    AgentProcess,
    Figure,
    Line,
    config_text,
    free_port,
    mosquitto,
    percentile,
    print_table,
    say,
    stock_up,
    wait_for,
    workdir,
    write_figures,
)
from paho.mqtt.enums import CallbackAPIVersion

TX_TOPIC = "lineside/v1/lab/bench/tx"
RERUN = ".venv/bin/python bench/latency.py"
IMMEDIATE = "ledger: {commit_interval_s: 0, post_interval_s: 0}\n"  # no window to wait for


class Subscriber:
    """Records when each completion arrives, by the (first, last) counter values of its
    cause, with the transaction's ts (when the driver read the new value)."""

    def __init__(self, port: int, topic: str) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[tuple[int, int, float, float]] = []
        self.stamps: dict[bytes, float] = {}  # raw round trips: payload -> arrival
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-sub-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, *_: c.subscribe([(topic, 1), ("bench/rtt", 1)])
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("no SUBACK from the broker")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if msg.topic == "bench/rtt":
            with self.lock:
                self.stamps[bytes(msg.payload)] = now
            return
        for tx in json.loads(msg.payload)["transactions"]:
            if tx["kind"] == "completion":
                first, last = tx["cause"].rsplit(":", 1)[1].split("->")
                read = datetime.fromisoformat(tx["ts"].replace("Z", "+00:00")).timestamp()
                with self.lock:
                    self.arrivals.append((int(first), int(last), now, read))

    def arrival_of(self, value: int) -> tuple[float, float] | None:
        """(monotonic arrival, epoch time of the reading) of the completion that took the
        counter to value (or past it)."""
        with self.lock:
            return next(((t, r) for a, b, t, r in self.arrivals if a < value <= b), None)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def step_counter(line: Line, steps: int, rng: random.Random) -> dict[int, tuple[float, float]]:
    """Step the good counter by 1 at random phases; value after the step -> its
    (monotonic, epoch) time."""
    sim, stepped = line.sims[0], {}
    value = START_GOOD
    for _ in range(steps):
        time.sleep(rng.uniform(0.3, 0.6))
        stamp = (time.monotonic(), time.time())
        sim.advance(1, "good", 1)
        value += 1
        stepped[value] = stamp
    return stepped


def raw_round_trips(port: int, sub: Subscriber, samples: int, size: int,
                    rng: random.Random) -> list[float]:
    """The physical limit of the transport: paho QoS 1 publish -> subscriber, same broker."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    rtts = []
    try:
        for i in range(samples):
            payload = f"{i:08d}".encode().ljust(size, b"x")
            sent = time.monotonic()
            pub.publish("bench/rtt", payload, qos=1)
            wait_for(lambda p=payload: p in sub.stamps, 10, "a raw round trip")
            rtts.append(sub.stamps[payload] - sent)
            time.sleep(rng.uniform(0.005, 0.02))
    finally:
        pub.disconnect()
        pub.loop_stop()
    return rtts


def measure(args: argparse.Namespace) -> tuple[list[tuple[float, float]], list[float]]:
    """(step -> P/tx latencies with their wait for the poll, raw round trips), seconds."""
    rng = random.Random(args.seed)
    with workdir("bench-latency") as tmp, mosquitto(tmp / "broker") as broker:
        line = Line(1)
        line.start()
        try:
            health = free_port()
            config = tmp / "bench.yaml"
            text = config_text(tmp / "data", line, broker.port, health, args.poll_ms)
            config.write_text(text + "\n" + IMMEDIATE)
            stock_up(config, 1)
            agent = AgentProcess(config, health, tmp / "agent.log")
            sub: Subscriber | None = None
            try:
                agent.wait_ready(1)
                sub = Subscriber(broker.port, TX_TOPIC)
                say(f"stepping the counter {args.steps} times, 0.3-0.6 s apart")
                stepped = step_counter(line, args.steps, rng)
                final = max(stepped)
                wait_for(lambda: sub is not None and sub.arrival_of(final) is not None, 30,
                         "the last step's P/tx message")
                say(f"{args.steps} raw paho round trips through the same broker")
                rtts = raw_round_trips(broker.port, sub, args.steps, 1400, rng)
                latencies = [
                    (a[0] - mono, a[1] - wall)
                    for v, (mono, wall) in stepped.items()
                    if (a := sub.arrival_of(v))
                ]
            finally:
                if sub is not None:
                    sub.stop()
                agent.stop()
        finally:
            line.stop()
    return latencies, rtts


def figures(args: argparse.Namespace, lat: list[tuple[float, float]],
            rtts: list[float]) -> list[Figure]:
    poll = args.poll_ms
    ms = [t * 1000 for t, _ in lat]
    raw = [x * 1000 for x in rtts]
    name = f"counter step -> P/tx at subscriber (poll {poll} ms)"
    missing = args.steps - len(lat)
    wait = percentile([w * 1000 for _, w in lat], 50)
    rest = percentile([(t - w) * 1000 for t, w in lat], 50)
    note = (f"{len(lat)} steps matched" + (f", {missing} NOT" if missing else "")
            + f"; p50 of step -> driver's read {wait:.0f} ms, read -> subscriber {rest:.0f} ms")
    p99 = percentile(ms, 99)
    return [
        Figure(f"{name}, p50", percentile(ms, 50), "ms", poll / 2 + percentile(raw, 50),
               "poll/2 + raw paho p50", "—", None, RERUN, note=note),
        Figure(f"{name}, p99", p99, "ms", poll + percentile(raw, 99),
               "poll + raw paho p99", f"<= {poll + 50} ms", p99 <= poll + 50, RERUN, note=note),
        Figure(f"{name}, max", max(ms), "ms", poll + max(raw), "poll + raw paho max", "—",
               None, RERUN, note=note),
    ]


def report(lat: list[tuple[float, float]], rtts: list[float], figs: list[Figure]) -> None:
    rows = (
        ("lineside step -> P/tx", [t for t, _ in lat]),
        ("  of which step -> read", [w for _, w in lat]),
        ("  of which read -> P/tx", [t - w for t, w in lat]),
        ("raw paho publish -> receive", rtts),
    )
    for label, values in rows:
        ms = [v * 1000 for v in values]
        print(f"{label:<28} n={len(ms):<4} p50 {percentile(ms, 50):7.1f} ms  p90"
              f" {percentile(ms, 90):7.1f} ms  p99 {percentile(ms, 99):7.1f} ms  max"
              f" {max(ms):7.1f} ms")
    print_table(figs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="counter steps (and round trips)")
    parser.add_argument("--poll-ms", type=int, default=250, help="the PLC's poll_ms")
    parser.add_argument("--seed", type=int, default=1, help="random phases of the steps")
    parser.add_argument("--json", type=Path, help="also write the figures here (run_all)")
    args = parser.parse_args()
    lat, rtts = measure(args)
    if not lat:
        raise SystemExit("no step was matched to a P/tx message: see the agent's log")
    figs = figures(args, lat, rtts)
    report(lat, rtts, figs)
    write_figures(args.json, figs)


if __name__ == "__main__":
    main()
