"""`make bench`: every benchmark, one table of figures against the physical limits measured in
the same run, and bench/results.md with the machine, the date and how to re-run each.

    .venv/bin/python bench/run_all.py [--quick] [--out bench/results.md]

Runs, in order: bench/ledger.py's measurement (imported; each mode --reps times,
alternating with raw sqlite3, medians), bench/sync.py (a subprocess, its own best of three
rounds), bench/agent.py, bench/latency.py, bench/endurance.py and bench/central.py
(subprocesses handing their figures back as JSON; endurance once per ENDURANCE_VARIANTS).
About 15 minutes on 2 cores; --quick shortens every phase for a smoke test (its figures are
not worth keeping). Prints figures and ratios; asserts nothing; exits 0 even when a target
is missed (benchmarks never fail a build on speed).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import ledger
from common import (
    BENCH,
    PYTHON,
    REPO,
    Figure,
    broker_module,
    median,
    print_table,
    read_figures,
    say,
    table_rows,
    workdir,
)


def run_script(argv: Sequence[str]) -> str:
    """Run a bench script, echoing its output as it comes; returns the output."""
    say(f"$ {' '.join(argv)}")
    proc = subprocess.Popen([PYTHON, *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:
            print(f"  {line}", end="", flush=True)
            lines.append(line)
    finally:
        code = proc.wait()
    if code != 0:
        say(f"  (exited {code})")
    return "".join(lines)


# -- ledger ----------------------------------------------------------------------------------


def ledger_figures(n: int, batch: int, reps: int) -> tuple[list[Figure], str]:
    say(f"$ bench/ledger.py measure(): {n} completions, {ledger.LINES}-line BOM, {reps} reps")
    figs, lines = [], []
    for label, size in (("one per transaction", 1), (f"batches of {batch}", batch)):
        ours, raw = [], []
        for _ in range(reps):  # alternate, so that load from others hits both alike
            ours.append(ledger.measure(ledger.ledger_rate, n, size))
            raw.append(ledger.measure(ledger.raw_rate, n, size))
        line = (f"{label:<22} lineside {' '.join(f'{x:.0f}' for x in ours)} /s;"
                f" raw sqlite3 {' '.join(f'{x:.0f}' for x in raw)} /s")
        say(f"  {line}")
        lines.append(line)
        value, limit = median(ours), median(raw)
        figs.append(Figure(
            f"backflush completions/s, {ledger.LINES}-line BOM, {label}", value, "/s", limit,
            "raw sqlite3, same rows", ">= 0.50x raw", value / limit >= 0.5,
            f".venv/bin/python bench/ledger.py --n {n} --batch {batch}",
            note=f"median of {reps} runs of {n} completions each",
        ))
    return figs, "\n".join(lines)


# -- sync --------------------------------------------------------------------------------------


def sync_figures(n: int) -> tuple[list[Figure], str]:
    output = run_script(["bench/sync.py", "--n", str(n)])
    drain = re.search(r"lineside drain\s*:\s*([\d.]+) s\s+(\d+) messages/s\s+(\d+) transactions/s",
                      output)
    raw = re.search(r"raw paho QoS 1\s*:\s*([\d.]+) s\s+(\d+) messages/s", output)
    if drain is None or raw is None:
        say("  could not read bench/sync.py's figures (see its output above)")
        return [], output
    msgs, txs, raw_msgs = float(drain[2]), float(drain[3]), float(raw[2])
    rerun = f".venv/bin/python bench/sync.py --n {n}"
    note = f"backlog of {n} transactions; best of bench/sync.py's 3 rounds"
    cpu = re.findall(r"CPU per message, (raw paho|lineside)\s*:\s*(\d+) us", output)
    ceiling = re.search(r"perfectly parallel: (\d+) messages/s = ([\d.]+) x raw paho", output)
    if len(cpu) == 2 and ceiling is not None:
        note += (f"; CPU per message: lineside {cpu[1][1]} us, raw paho {cpu[0][1]} us (each"
                 f" with mosquitto's), so this machine's cores allow lineside at most"
                 f" {ceiling[2]}x raw even perfectly parallel")
    return [
        Figure("outbox drain, P/tx messages/s (batch 100)", msgs, "msg/s", raw_msgs,
               "raw paho QoS 1", ">= 0.80x raw",
               msgs / raw_msgs >= 0.8, rerun, note=note),
        Figure("outbox drain, transactions/s", txs, "tx/s", raw_msgs,
               "raw paho QoS 1 msg/s", ">= 20x raw msg/s", txs / raw_msgs >= 20, rerun,
               note=note),
    ], output


# -- subprocess benchmarks ---------------------------------------------------------------------

# bench/endurance.py's variants, each the ledger: keys it sets (KEY=VALUE; none: the defaults).
# Issue 13's figures are with the defaults and with ["post_interval_s=0"].
ENDURANCE_VARIANTS: list[list[str]] = [[], ["post_interval_s=0"]]


def script_figures(script: str, extra: Sequence[str], json_path: Path) -> tuple[list[Figure], str]:
    output = run_script([f"bench/{script}", *extra, "--json", str(json_path)])
    if not json_path.exists():
        say(f"  bench/{script} gave no figures (see its output above)")
        return [], output
    return read_figures(json_path), output


def endurance_figures(quick: bool, tmp: Path) -> tuple[list[Figure], str]:
    """bench/endurance.py once per variant of ENDURANCE_VARIANTS, both lines each."""
    figs, outputs = [], []
    for n, keys in enumerate(ENDURANCE_VARIANTS):
        extra = [arg for key in keys for arg in ("--ledger", key)] + (["--quick"] if quick else [])
        got, output = script_figures("endurance.py", extra, tmp / f"endurance-{n}.json")
        figs += got
        outputs.append(output)
    return figs, "\n".join(outputs)


# -- the machine and the report ----------------------------------------------------------------


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
    return {
        "CPU": model[1].strip() if model else platform.processor() or "unknown",
        "cores": f"{len(os.sched_getaffinity(0))} usable ({os.cpu_count()} online)",
        "RAM": f"{int(mem[1]) / 1024 / 1024:.1f} GiB" if mem else "unknown",
        "kernel": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "pymodbus / paho-mqtt": f"{metadata.version('pymodbus')} / {metadata.version('paho-mqtt')}",
        "mosquitto": mosquitto_version(),
        "psycopg / PostgreSQL": f"{metadata.version('psycopg')} / {postgres_version()}",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def mosquitto_version() -> str:
    exe = broker_module().find_mosquitto()
    if exe is None:
        return "not found"
    out = subprocess.run([exe, "-h"], capture_output=True, text=True).stdout
    found = re.search(r"version (\S+)", out)
    return found[1] if found else exe


def postgres_version() -> str:
    broker_module()  # puts the repository on sys.path for tests/
    bin_dir = importlib.import_module("tests.pg").find_bin_dir()
    if bin_dir is None:
        return "not found"
    out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True,
                         text=True).stdout
    found = re.search(r"\(PostgreSQL\) (\S+)", out)
    return found[1] if found else str(bin_dir)


def markdown(figs: list[Figure], info: dict[str, str], started: datetime, seconds: float,
             details: list[tuple[str, str]]) -> str:
    rows = table_rows(figs)
    table = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    table += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    reruns = sorted({f.rerun for f in figs})
    notes = note_lines(figs)
    parts = [
        "# lineside benchmark results",
        "",
        f"Generated by `make bench` (bench/run_all.py) on {started:%Y-%m-%d %H:%M} UTC;"
        f" the whole run took {seconds / 60:.1f} min. Every figure stands beside its physical"
        " limit measured in the same run on the same machine; ratio = value / limit (for rates,"
        " the fraction of the limit reached; for CPU, memory, latency and size, lineside's"
        " overhead factor). The machine is shared with other test runs, so figures are noisy;"
        " see bench/README.md for how each is measured.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
        "## Figures",
        "",
        *table,
        "",
        "Notes:",
        "",
        *notes,
        "",
        "## How to re-run",
        "",
        "All of it: `make bench` (or `.venv/bin/python bench/run_all.py`). One at a time:",
        "",
        *[f"- `{r}`" for r in reruns],
        "- `.venv/bin/python bench/soak.py --minutes 30` (`make soak`; not part of `make bench`)",
        "",
        "## Output of each benchmark",
        "",
    ]
    for title, text in details:
        parts += [f"### {title}", "", "```", text.rstrip(), "```", ""]
    return "\n".join(parts)


def note_lines(figs: list[Figure]) -> list[str]:
    """One line per distinct note, naming every figure it belongs to."""
    by_note: dict[str, list[str]] = {}
    for f in figs:
        if f.note:
            by_note.setdefault(f.note, []).append(f.name)
    return [f"- {'; '.join(f'**{n}**' for n in names)}: {note}"
            for note, names in by_note.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BENCH / "results.md", help="report file")
    parser.add_argument("--quick", action="store_true",
                        help="short phases: a smoke test of the suite, not figures to keep")
    args = parser.parse_args()
    started, t0 = datetime.now(UTC), time.monotonic()
    info = machine()
    q = args.quick
    figs: list[Figure] = []
    details: list[tuple[str, str]] = []
    with workdir("bench-run") as tmp:
        steps = [
            ("bench/ledger.py", lambda: ledger_figures(500 if q else 2000, 100, 1 if q else 3)),
            ("bench/sync.py", lambda: sync_figures(20_000 if q else 300_000)),
            ("bench/agent.py", lambda: script_figures(
                "agent.py", ["--warmup", "3", "--seconds", "10", "--idle", "10"] if q else [],
                tmp / "agent.json")),
            ("bench/latency.py", lambda: script_figures(
                "latency.py", ["--steps", "20"] if q else [], tmp / "latency.json")),
            ("bench/endurance.py", lambda: endurance_figures(q, tmp)),
            ("bench/central.py", lambda: script_figures(
                "central.py", ["--messages", "300", "--rounds", "1"] if q else [],
                tmp / "central.json")),
        ]
        for title, step in steps:
            began = time.monotonic()
            got, text = step()
            figs += got
            details.append((title, text))
            say(f"  ({title}: {time.monotonic() - began:.0f} s)\n")
    seconds = time.monotonic() - t0
    print_table(figs)
    args.out.write_text(markdown(figs, info, started, seconds, details))
    say(f"\nwrote {args.out} ({seconds / 60:.1f} min)")


if __name__ == "__main__":
    sys.exit(main())
