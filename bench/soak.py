"""Soak: does the agent's memory grow? RSS every 10 s under a steady line, for a long time.

The same line as bench/agent.py (10 simulated PLCs x 10 points at 4 Hz, counters at 1-2
units/s, a 3-line BOM) with `lineside run` as a real process, and beside it the same bare
pymodbus loop (the physical limit: what the same polling costs without ledger or MQTT).
RSS and CPU of both are sampled every --interval seconds; growth is counted after the
warm-up: the median of the last three samples minus the median of the first three, and
the least-squares slope over all samples after the warm-up. Prints figures; asserts
nothing. Not part of `make bench` (too long): `make soak` runs it.

    .venv/bin/python bench/soak.py [--minutes 30] [--warmup 5] [--interval 10]
    .venv/bin/python bench/soak.py --minutes 3 --warmup 1      # a quick check

Target: RSS growth after the warm-up < 5 MB.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    START_GOOD,
    AgentProcess,
    Figure,
    Line,
    Process,
    bare_poller,
    config_text,
    cpu_seconds,
    free_port,
    median,
    mosquitto,
    print_table,
    rss_mb,
    say,
    status_kb,
    stock_up,
    workdir,
    write_figures,
)

RERUN = ".venv/bin/python bench/soak.py --minutes 30   (make soak)"


@dataclass
class Series:
    """Samples of one process: (seconds since start, RSS MB, CPU % since the last sample)."""

    pid: int
    points: list[tuple[float, float, float]] = field(default_factory=list)
    _last: tuple[float, float] | None = None

    def sample(self, t: float) -> None:
        cpu = cpu_seconds(self.pid)
        pct = 0.0 if self._last is None else 100 * (cpu - self._last[1]) / (t - self._last[0])
        self._last = (t, cpu)
        self.points.append((t, rss_mb(self.pid), pct))

    def after(self, warmup_s: float) -> list[tuple[float, float, float]]:
        return [p for p in self.points if p[0] >= warmup_s]

    def growth(self, warmup_s: float) -> float:
        rss = [r for _, r, _ in self.after(warmup_s)]
        if len(rss) < 2:
            return float("nan")
        k = min(3, len(rss) // 2)
        return median(rss[-k:]) - median(rss[:k])

    def slope_mb_per_h(self, warmup_s: float) -> float:
        pts = self.after(warmup_s)
        if len(pts) < 2:
            return float("nan")
        ts, rs = [p[0] for p in pts], [p[1] for p in pts]
        mt, mr = sum(ts) / len(ts), sum(rs) / len(rs)
        var = sum((t - mt) ** 2 for t in ts)
        return 3600 * sum((t - mt) * (r - mr) for t, r in zip(ts, rs, strict=True)) / var


def sample_loop(args: argparse.Namespace, agent: AgentProcess, bare: Process) -> dict[str, Series]:
    series = {"agent": Series(agent.pid), "bare": Series(bare.pid)}
    started = time.monotonic()
    end = started + args.minutes * 60
    say(f"{'t s':>6} {'agent MB':>9} {'agent CPU%':>10} {'bare MB':>8} {'bare CPU%':>9}")
    while True:
        t = time.monotonic() - started
        for s in series.values():
            s.sample(t)
        a, b = series["agent"].points[-1], series["bare"].points[-1]
        say(f"{t:6.0f} {a[1]:9.1f} {a[2]:10.1f} {b[1]:8.1f} {b[2]:9.1f}")
        if not agent.alive():
            say(f"lineside run exited early:\n{agent.tail()}")
            break
        if time.monotonic() >= end:
            break
        time.sleep(max(0.0, min(args.interval, end - time.monotonic())))
    return series


def measure(args: argparse.Namespace) -> tuple[dict[str, Series], int, int, int]:
    """(series, agent's peak RSS kB, units the PLCs counted, completions in the ledger)."""
    with workdir("bench-soak") as tmp, mosquitto(tmp / "broker") as broker:
        line = Line(args.plcs)
        line.start()
        try:
            health = free_port()
            config = tmp / "bench.yaml"
            config.write_text(config_text(tmp / "data", line, broker.port, health, args.poll_ms))
            stock_up(config, args.plcs)
            agent = AgentProcess(config, health, tmp / "agent.log")
            bare: Process | None = None
            try:
                agent.wait_ready(args.plcs)
                bare = bare_poller(line, args.poll_ms, tmp)
                line.run()
                say(f"soak: {args.minutes:g} min, warm-up {args.warmup:g} min, agent pid"
                    f" {agent.pid}, bare loop pid {bare.pid}")
                series = sample_loop(args, agent, bare)
                hwm = status_kb(agent.pid, "VmHWM") if agent.alive() else 0
                line.halt()
                time.sleep(3)  # the last counts reach the ledger
            finally:
                if bare is not None:
                    bare.stop()
                agent.stop()
            counted = line.counted() - args.plcs * START_GOOD
            return series, hwm, counted, completions(tmp / "data" / "ledger.sqlite")
        finally:
            line.stop()


def completions(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT SUM(CAST(qty AS INTEGER)) FROM journal WHERE kind = 'completion'"
        ).fetchone()
    return int(row[0] or 0)


def figures(args: argparse.Namespace, series: dict[str, Series]) -> list[Figure]:
    warm = args.warmup * 60
    agent, bare = series["agent"], series["bare"]
    label = "bare pymodbus loop"
    minutes = args.minutes - args.warmup
    growth = agent.growth(warm)
    return [
        Figure(f"agent RSS growth over {minutes:g} min after warm-up", growth, "MB",
               bare.growth(warm), label, "< 5 MB", growth < 5, RERUN,
               relative=False),
        Figure("agent RSS trend after warm-up", agent.slope_mb_per_h(warm), "MB/h",
               bare.slope_mb_per_h(warm), label, "—", None, RERUN, relative=False),
        Figure("agent CPU during the soak (median)", median([c for _, _, c in agent.after(warm)]),
               "% of a core", median([c for _, _, c in bare.after(warm)]), label, "< 10 %",
               median([c for _, _, c in agent.after(warm)]) < 10, RERUN),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30, help="length of the soak")
    parser.add_argument("--warmup", type=float, default=5, help="minutes not counted at first")
    parser.add_argument("--interval", type=float, default=10, help="seconds between samples")
    parser.add_argument("--plcs", type=int, default=10, help="simulated PLCs, 10 points each")
    parser.add_argument("--poll-ms", type=int, default=250, help="poll_ms of every PLC")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.warmup >= args.minutes:
        parser.error("--warmup must be shorter than --minutes")
    series, hwm, counted, completed = measure(args)
    figs = figures(args, series)
    print(f"agent peak RSS (VmHWM) {hwm / 1024:.1f} MB; exactly once: the PLCs counted {counted}"
          f" good units, the ledger completed {completed}"
          + ("" if counted == completed else "  <-- MISMATCH"))
    print_table(figs)
    write_figures(args.json, figs)


if __name__ == "__main__":
    main()
