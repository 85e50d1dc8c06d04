"""The agent's CPU, memory, idle writes and ledger size, beside a bare pymodbus loop.

Starts a mosquitto, 10 simulated PLCs (10 points each, good counters at 1-2 units/s, a
little scrap) and `lineside run` as a real process polling them at 4 Hz (poll_ms 250),
one work center per PLC with a 3-line BOM, so every count backflushes. In the same run and
the same time windows, a bare pymodbus loop (one thread and connection per PLC, the same
register blocks at the same rate, no ledger, no MQTT) is the physical limit: what reading
those 100 points costs at all.

Phases: warm-up; load (CPU % of one core per 10 s window, median; RSS from /proc); the
line stops (counters frozen) and, after the outbox drained, idle: commits seen from
another connection (PRAGMA data_version polled every 50 ms) and WAL file changes;
then the agent stops and the ledger's bytes per transaction are compared with the raw
text of those transactions. Then (--sparkplug both, the default) the same run again with
the Sparkplug edge node on (one device per work center, stock of the three components at
every line, interval_s 1), for its CPU, RSS and idle commits. Prints figures and ratios;
asserts nothing.

    .venv/bin/python bench/agent.py [--warmup 15] [--seconds 60] [--idle 60] [--plcs 10]
                                    [--sparkplug both|off|on]

Targets: < 10 % of one core, < 60 MB RSS, 0 SQLite commits per idle minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: the bare loop must not load lineside
    from common import AgentProcess, CpuMeter, Figure, Line

RERUN = ".venv/bin/python bench/agent.py"


# -- the bare loop (the physical limit), run as `bench/agent.py bare SPEC POLL_MS` ---------------


def bare_main(spec_path: str, poll_ms: str) -> None:
    """Poll every device of the spec until SIGTERM: pymodbus only, one thread per device."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    spec = json.loads(Path(spec_path).read_text())
    threads = [
        threading.Thread(target=bare_poll, args=(dev, int(poll_ms) / 1000, stop), daemon=True)
        for dev in spec
    ]
    for thread in threads:
        thread.start()
    while not stop.wait(1.0):
        pass
    for thread in threads:
        thread.join(2)


def bare_poll(dev: dict[str, Any], poll_s: float, stop: threading.Event) -> None:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(dev["host"], port=dev["port"], timeout=1, retries=0)
    types = {name.lower(): member for name, member in client.DATATYPE.__members__.items()}
    while not stop.is_set():
        started = time.monotonic()
        try:
            reply = client.read_holding_registers(
                dev["address"], count=dev["count"], device_id=dev["unit"]
            )
            if not reply.isError():
                decode(client, reply.registers, dev["points"], types)
        except Exception:  # a bare loop too must survive a hiccup
            client.close()
        stop.wait(max(0.0, poll_s - (time.monotonic() - started)))
    client.close()


def decode(
    client: Any, words: list[int], points: list[list[Any]], types: dict[str, Any]
) -> list[Any]:
    values = []
    for offset, kind in points:
        width = 2 if "32" in kind else 1
        values.append(client.convert_from_registers(words[offset : offset + width], types[kind]))
    return values


# -- the measurement -------------------------------------------------------------------------------


class IdleWatch:
    """Commits by other connections (PRAGMA data_version) and WAL file changes, every 50 ms."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.wal = Path(f"{db}-wal")
        self.conn = sqlite3.connect(db, isolation_level=None)
        self.commits = 0
        self.wal_changes = 0
        self.when: list[float] = []

    def run(self, seconds: float) -> None:
        version, wal = self._version(), self._wal_state()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(0.05)
            now_version, now_wal = self._version(), self._wal_state()
            if now_version != version:
                self.commits += 1
                self.when.append(time.monotonic() - started)
            self.wal_changes += now_wal != wal
            version, wal = now_version, now_wal
        self.conn.close()

    def _version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def _wal_state(self) -> tuple[int, int]:
        try:
            st = self.wal.stat()
        except FileNotFoundError:
            return (-1, -1)
        return (st.st_size, st.st_mtime_ns)


def unsent(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_ts IS NULL").fetchone()[0])


def run_phases(args: argparse.Namespace, tmp: Path, line: Line, agent: AgentProcess,
               db: Path) -> dict[str, Any]:
    from common import CpuMeter, bare_poller, say, wait_for

    bare = bare_poller(line, args.poll_ms, tmp)
    try:
        say(f"warm-up {args.warmup:.0f} s (agent pid {agent.pid}, bare loop pid {bare.pid})")
        time.sleep(args.warmup)
        say(f"load: {args.seconds:.0f} s, CPU sampled per 10 s window")
        load = CpuMeter({"agent": agent.pid, "bare": bare.pid})
        load.run(args.seconds)
        line.halt()
        say("line stopped; waiting for the last readings to post and the outbox to drain")
        time.sleep(waiting_s())
        wait_for(lambda: unsent(db) == 0, 60, "the outbox to drain")
        time.sleep(args.settle)
        say(f"idle: {args.idle:.0f} s, data_version polled every 50 ms")
        idle_cpu = CpuMeter({"agent": agent.pid, "bare": bare.pid})
        meter = threading.Thread(target=idle_cpu.run, args=(args.idle,), daemon=True)
        meter.start()
        watch = IdleWatch(db)
        watch.run(args.idle)
        meter.join()
    finally:
        bare.stop()
    return {"load": load, "idle_cpu": idle_cpu, "watch": watch}


def ledger_size(db: Path) -> int:
    """Bytes of the database after a full checkpoint (the WAL truncated to nothing)."""
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(f"{db}-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def empty_ledger_size(tmp: Path) -> int:
    from lineside.agent.ledger.store import connect

    db = tmp / "empty" / "ledger.sqlite"
    connect(db).close()
    return ledger_size(db)


def waiting_s() -> float:
    """How long the agent's last readings may wait for their posting after the line stops
    (ledger.commit_interval_s and post_interval_s at their defaults), and a second more:
    that commit is the line's last, not the idle line's first."""
    from lineside.agent.config import LedgerConfig

    ledger = LedgerConfig()
    return float(max(ledger.commit_interval_s, ledger.post_interval_s)) + 1


def ledger_rows(db: Path) -> dict[str, int]:
    from lineside.agent.ledger.outbox_pages import TX_JSON

    with sqlite3.connect(db) as conn:
        one = lambda sql: int(conn.execute(sql).fetchone()[0] or 0)  # noqa: E731
        return {
            "journal": one("SELECT COUNT(*) FROM journal"),
            "completed": one("SELECT SUM(CAST(qty AS INTEGER)) FROM journal"
                             " WHERE kind = 'completion'"),
            # the transactions' JSON as published (most rows build it from the journal)
            "text": one(f"SELECT SUM(length(CAST({TX_JSON} AS BLOB))) FROM outbox AS o"
                        " WHERE stream = 'tx'"),
        }


SPARKPLUG = "sparkplug: {group_id: bench, interval_s: 1, stock: [STEEL, BOLT, PRIMER]}\n"


def measure(args: argparse.Namespace, sparkplug: bool = False) -> list[Figure]:
    from common import (
        START_GOOD,
        AgentProcess,
        Line,
        config_text,
        free_port,
        mosquitto,
        stock_up,
        workdir,
    )

    with workdir("bench-agent") as tmp, mosquitto(tmp / "broker") as broker:
        line = Line(args.plcs)
        line.start()
        try:
            health = free_port()
            config = tmp / "bench.yaml"
            text = config_text(tmp / "data", line, broker.port, health, args.poll_ms)
            config.write_text(text + (SPARKPLUG if sparkplug else ""))
            stock_up(config, args.plcs)
            db = tmp / "data" / "ledger.sqlite"
            agent = AgentProcess(config, health, tmp / "agent.log")
            try:
                agent.wait_ready(args.plcs)
                line.run()
                phases = run_phases(args, tmp, line, agent, db)
            finally:
                code = agent.stop()
            if code not in (0, None):
                print(f"NOTE: lineside run exited {code}:\n{agent.tail()}")
            counted = line.counted() - args.plcs * START_GOOD
            size = ledger_size(db) - empty_ledger_size(tmp)
            if sparkplug:
                print("with sparkplug on:")
                return sparkplug_figures(args, phases, ledger_rows(db), counted, size)
            return figures(args, phases, ledger_rows(db), counted, size)
        finally:
            line.stop()


def figures(args: argparse.Namespace, phases: dict[str, Any], rows: dict[str, int],
            counted: int, size: int) -> list[Figure]:
    from common import Figure

    load: CpuMeter = phases["load"]
    idle: CpuMeter = phases["idle_cpu"]
    watch: IdleWatch = phases["watch"]
    polling = f"{args.plcs} PLCs x 10 points at {1000 / args.poll_ms:g} Hz"
    bare = "bare pymodbus loop"
    per_min = watch.commits * 60 / args.idle
    report_details(args, load, idle, watch, rows, counted, size)
    return [
        Figure(f"agent CPU, {polling}", load.cpu("agent"), "% of a core", load.cpu("bare"),
               bare, "< 10 %", load.cpu("agent") < 10, RERUN,
               note=f"median of {len(load.windows['agent'])} windows of 10 s"),
        Figure("agent RSS (peak of samples)", load.peak_rss("agent"), "MB",
               load.peak_rss("bare"), bare, "< 60 MB", load.peak_rss("agent") < 60, RERUN),
        Figure("agent CPU, line idle (same polling)", idle.cpu("agent"), "% of a core",
               idle.cpu("bare"), bare, "—", None, RERUN),
        Figure("SQLite commits per minute, line idle", per_min, "commits/min", 0.0,
               "0 (nothing to record)", "0 per min", watch.commits == 0, RERUN,
               note=f"WAL file changed {watch.wal_changes} times in {args.idle:.0f} s"),
        Figure("ledger bytes per transaction", size / max(1, rows["journal"]), "B/tx",
               rows["text"] / max(1, rows["journal"]), "tx JSON text", "—",
               None, RERUN, note=f"{rows['journal']} journal rows, incl. outbox and indexes"),
    ]


def sparkplug_figures(args: argparse.Namespace, phases: dict[str, Any], rows: dict[str, int],
                      counted: int, size: int) -> list[Figure]:
    """CPU, RSS and idle commits of the run with the Sparkplug node on."""
    keep = ("agent CPU, ", "agent RSS", "SQLite commits")
    out = []
    for fig in figures(args, phases, rows, counted, size):
        if fig.name.startswith(keep) and "line idle (same" not in fig.name:
            out.append(dataclasses.replace(fig, name=f"{fig.name}, sparkplug on",
                                           rerun=f"{RERUN} --sparkplug on"))
    return out


def report_details(args: argparse.Namespace, load: CpuMeter, idle: CpuMeter, watch: IdleWatch,
                   rows: dict[str, int], counted: int, size: int) -> None:
    for phase, meter in (("load", load), ("idle", idle)):
        for name in ("agent", "bare"):
            cpus = " ".join(f"{c:.1f}" for c in meter.windows.get(name, []))
            print(f"{phase} {name:<5} CPU % per window: {cpus}")
    print(f"RSS MB agent {' '.join(f'{r:.1f}' for r in load.rss['agent'])}")
    print(f"RSS MB bare  {' '.join(f'{r:.1f}' for r in load.rss['bare'])}")
    print(f"exactly once: the PLCs counted {counted} good units, the ledger completed"
          f" {rows['completed']}" + ("" if counted == rows["completed"] else "  <-- MISMATCH"))
    when = ", ".join(f"{t:.1f}" for t in watch.when[:20])
    print(f"idle commits: {watch.commits} in {args.idle:.0f} s (at s: {when or 'none'});"
          f" WAL changes: {watch.wal_changes}")
    print(f"ledger: {size} bytes above an empty ledger for {rows['journal']} journal rows;"
          f" their JSON text {rows['text']} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plcs", type=int, default=10, help="simulated PLCs, 10 points each")
    parser.add_argument("--poll-ms", type=int, default=250, help="poll_ms of every PLC")
    parser.add_argument("--warmup", type=float, default=15, help="seconds before measuring")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of load measured")
    parser.add_argument("--idle", type=float, default=60, help="seconds of idle line watched")
    parser.add_argument("--settle", type=float, default=6,
                        help="seconds after the outbox drained before idle starts"
                             " (covers mqtt.stock_interval_s)")
    parser.add_argument("--json", type=Path, help="also write the figures here (run_all)")
    parser.add_argument("--sparkplug", choices=("both", "off", "on"), default="both",
                        help="runs without and/or with the Sparkplug edge node (default both)")
    args = parser.parse_args()
    from common import print_table, write_figures

    figs = measure(args) if args.sparkplug != "on" else []
    if args.sparkplug != "off":
        figs += measure(args, sparkplug=True)
    print_table(figs)
    write_figures(args.json, figs)


if __name__ == "__main__":
    if sys.argv[1:2] == ["bare"]:
        bare_main(*sys.argv[2:4])
    else:
        main()
