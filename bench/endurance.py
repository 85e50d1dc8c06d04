"""Bytes written and ledger growth per unit produced: how long an SD card lasts.

Issue 13's two lines (`busy`: a 20-line BOM counting 4 units/s; `slow`: a 5-line BOM at
1 unit/s; poll 250 ms), each on one simulated PLC, with stock received up front, a real
mosquitto, a subscriber on P/tx and `lineside run` as a real process (its log through a
pipe, as under systemd). The ledger is first aged by --age-units of production through
lineside's own handlers. After a warm-up, over a measured window, per unit completed:
/proc/PID/io write_bytes of the agent (plus the checkpoint its WAL owes: bench/wear.py),
and ledger growth as page_count x page_size from a
read-only connection; then per day and the days until the ledger fills 32 GB, beside the
information's own size (the transactions' JSON as received on P/tx). Checks that the PLC's
count, the ledger and the subscriber agree exactly; prints dbstat's bytes per row
(bench/rowbytes.py). bench/README.md says more. Prints figures; asserts nothing.

    .venv/bin/python bench/endurance.py [--line busy|slow] [--age-units 14400]
        [--warmup 15] [--seconds 120] [--ledger KEY=VALUE ...] [--quick] [--json FILE]

--ledger sets a key of the config's `ledger:` section (post_interval_s=0; repeatable); the
figures are labelled with them ("defaults" without). A lineside that does not know a key
refuses the config, and this script stops with `lineside check`'s message.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent import ledger_size
from common import (
    POINTS,
    START_GOOD,
    AgentProcess,
    Figure,
    Line,
    broker_module,
    free_port,
    lineside_command,
    mosquitto,
    print_table,
    say,
    stock_up,
    wait_for,
    workdir,
    write_figures,
)
from rowbytes import row_bytes, table_lines
from wear import Snapshot, read_ledger, sample_window

RERUN = ".venv/bin/python bench/endurance.py"
CARD_BYTES = 32e9  # a "32 GB" card, in the decimal gigabytes of its label
DAY_S = 86_400
TX_TOPIC = "lineside/v1/lab/bench/tx"
COUNTER = "plc00.good"
AGEING_BATCH = 500  # readings per transaction, as many as the agent's writer groups at most
TABLES = ("journal", "outbox", "messages")


@dataclass(frozen=True)
class LineSpec:
    key: str
    bom_lines: int
    units_per_s: float
    poll_ms: int = 250

    @property
    def title(self) -> str:
        unit = "unit" if self.units_per_s == 1 else "units"
        return f"{self.bom_lines}-line BOM at {self.units_per_s:g} {unit}/s"


LINES = {"busy": LineSpec("busy", 20, 4.0), "slow": LineSpec("slow", 5, 1.0)}

# Issue 13's targets, bytes per unit at most, by line and by the label of the ledger: keys.
TARGETS: dict[tuple[str, str], dict[str, int]] = {
    ("busy", "defaults"): {"written": 2_900, "growth": 145},
    ("busy", "post_interval_s: 0"): {"written": 35_000},
}

# A press line's BOM mixes counted parts, sheet by weight, liquids and lengths, with and
# without scrap allowances: (uom, decimals, qty per unit, scrap %, cost).
COMPONENT_KINDS = (
    ("ea", 0, "4", "0", "0.05"),
    ("kg", 3, "0.85", "3", "1.10"),
    ("l", 3, "0.012", "0", "9.00"),
    ("m", 2, "1.25", "2", "0.40"),
)


def components(count: int) -> list[tuple[str, tuple[str, int, str, str, str]]]:
    return [(f"COMP-{i + 1:03d}", COMPONENT_KINDS[i % len(COMPONENT_KINDS)])
            for i in range(count)]


def config_text(spec: LineSpec, data_dir: Path, line: Line, broker_port: int, health_port: int,
                ledger: dict[str, str]) -> str:
    """One work center on one PLC, making FG with a BOM of spec.bom_lines components."""
    parts = components(spec.bom_lines)
    points = ", ".join(f"{n}: {{address: {a}, type: {t}}}" for n, (a, t) in POINTS.items())
    return "\n".join([
        f"gateway: {{id: bench, site: lab, data_dir: {data_dir}}}",
        f"mqtt: {{host: 127.0.0.1, port: {broker_port}}}",
        *(["ledger:", *(f"  {key}: {value}" for key, value in ledger.items())] if ledger else []),
        "items:",
        "  FG: {uom: ea, cost: 12.50, conversion_cost: 2}",
        *(f"  {code}: {{uom: {uom}, decimals: {dec}, cost: {cost}}}"
          for code, (uom, dec, _, _, cost) in parts),
        "boms:",
        "  FG:",
        "    components:",
        *(f"      - {{item: {code}, qty: {qty}, scrap_pct: {scrap}}}"
          for code, (_, _, qty, scrap, _) in parts),
        "work_centers:",
        "  WC00: {location: LINE-00, item: FG, counters: {good: plc00.good, scrap: plc00.scrap}}",
        "devices:",
        f"  plc00: {{driver: modbus_tcp, host: 127.0.0.1, port: {line.sims[0].port}, unit: 1,"
        f" poll_ms: {spec.poll_ms}, points: {{{points}}}}}",
        f"health: {{listen: '127.0.0.1:{health_port}'}}",
        "log: {level: info}",
        "",
    ])


def refuse_unless_valid(config: Path, ledger: dict[str, str]) -> None:
    """`lineside check` first: a lineside that does not know a --ledger key says so here."""
    done = subprocess.run([*lineside_command(), "check", "-c", str(config)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        why = " (does this lineside know the --ledger keys?)" if ledger else ""
        say(f"lineside check refuses the bench's config{why}:\n{done.stdout}{done.stderr}")
        sys.exit(2)


def age_ledger(config: Path, spec: LineSpec, units: int) -> None:
    """The ledger as after `units` of this line's production, before the agent starts: one
    counter reading per unit, back-dated, through lineside's own handlers (the rows the
    agent writes), in batches. The PLC must go on from that count.

    Page writes depend on the ledger's size: an index on random keys (the transactions'
    UUIDs) has one page touched per insert once it holds many more pages than a commit or
    a checkpoint touches, while in a young ledger the same few pages take every insert.
    """
    from lineside.agent.bootstrap import open_ledger
    from lineside.agent.commands import CounterReading
    from lineside.agent.config import load

    step = timedelta(seconds=1 / spec.units_per_s)
    start = datetime.now(UTC) - (units + 1) * step
    readings = [CounterReading(key=COUNTER, ts=start + n * step, point=COUNTER,
                               value=START_GOOD + n) for n in range(units + 1)]
    ledger = open_ledger(load(config))
    try:
        for first in range(0, len(readings), AGEING_BATCH):
            ledger.execute_batch(list(readings[first : first + AGEING_BATCH]))
    finally:
        ledger.conn.close()


# -- one line ----------------------------------------------------------------------------------


@dataclass
class Result:
    spec: LineSpec
    first: Snapshot
    last: Snapshot
    aged: int = 0  # units in the ledger before the agent started (age_ledger)
    counted: int = 0  # units the PLC counted while the agent ran
    completed: int = 0  # units the ledger completed while the agent ran
    received: int = 0  # units in the completions the subscriber received
    info_bytes: int = 0  # the JSON text of the production's transactions, as received
    lines: list[str] = field(default_factory=list)

    @property
    def units(self) -> int:
        return self.last.completed - self.first.completed

    def per_unit(self, value: float) -> float:
        return value / max(1, self.units)

    @property
    def written(self) -> float:
        # the checkpoint a window's WAL frames owe is the window's, when it happens later
        owed = self.last.owed - self.first.owed
        return self.per_unit(self.last.io["write_bytes"] - self.first.io["write_bytes"] + owed)

    @property
    def growth(self) -> float:
        return self.per_unit(self.last.ledger_bytes - self.first.ledger_bytes)

    @property
    def info(self) -> float:
        return self.info_bytes / max(1, self.received)


def measure_line(spec: LineSpec, args: argparse.Namespace, ledger: dict[str, str]) -> Result:
    label = variant_label(ledger)
    say(f"== {spec.title}, poll {spec.poll_ms} ms ({label})")
    with workdir(f"bench-endurance-{spec.key}") as tmp, mosquitto(tmp / "broker") as broker:
        line = Line(1, scrap_per_s=0.0, good_per_s=spec.units_per_s)
        line.start()
        consumer = agent = None
        try:
            config, health = tmp / "lineside.yaml", free_port()
            config.write_text(config_text(spec, tmp / "data", line, broker.port, health, ledger))
            refuse_unless_valid(config, ledger)
            stock_up(config, 1, [code for code, _ in components(spec.bom_lines)])
            aged = args.age_units
            say(f"ageing the ledger by {aged} units, {hours(spec, aged)} of this line")
            age_ledger(config, spec, aged)
            line.sims[0].set(1, "good", START_GOOD + aged)
            db = tmp / "data" / "ledger.sqlite"
            agent = AgentProcess(config, health, tmp / "agent.log", piped=True)
            agent.wait_ready(1)
            wait_for(lambda: read_ledger(db)[3] == 0, 600, "the aged ledger's outbox to drain")
            # Started again on a checkpointed ledger: the WAL of the ageing and the drain is
            # not the measured window's to write.
            agent.stop()
            agent = AgentProcess(config, health, tmp / "agent.log", piped=True)
            agent.wait_ready(1)
            # Subscribed now: what the subscriber receives is the measured production only.
            consumer = broker_module().Consumer(broker.port, [TX_TOPIC], check_schemas=False)
            consumer.start()
            line.run()
            say(f"warm-up {args.warmup:.0f} s (agent pid {agent.pid})")
            time.sleep(args.warmup)
            say(f"measured window: {args.seconds:.0f} s")
            snaps = sample_window(agent.pid, db, args.seconds, args.every)
            line.halt()
            counted = line.counted() - START_GOOD - aged
            wait_for(lambda: read_ledger(db)[2:] == (aged + counted, 0), 60,
                     "the ledger to complete every unit counted and the outbox to drain")
        finally:
            code = agent.stop() if agent is not None else None
            if consumer is not None:
                consumer.stop()
            line.stop()
        if code not in (0, None):
            say(f"NOTE: lineside run exited {code}:\n{agent.tail() if agent else ''}")
        result = Result(spec, snaps[0], snaps[-1], aged=aged, counted=counted)
        check_ledger(result, db)
        check_consumer(result, consumer.on(TX_TOPIC) if consumer else [])
    for text in result.lines:
        say(text)
    return result


def check_ledger(result: Result, db: Path) -> None:
    """Exactly once in the ledger; the page_count method against a real checkpoint; dbstat."""
    pages, free, completed, _ = read_ledger(db)
    result.completed = completed - result.aged
    checkpointed = ledger_size(db)
    btrees = row_bytes(db)
    same = "the same" if pages == checkpointed else "DIFFERENT"
    lines = result.lines
    lines.append(f"ledger after the run: page_count x page_size {pages:,} B ({free:,} B free);"
                 f" main file after wal_checkpoint(TRUNCATE) {checkpointed:,} B: {same}")
    lines.append("where the bytes are (dbstat, the whole run's ledger):")
    lines += [f"  {text}" for text in table_lines(btrees, TABLES)]
    per_unit = []
    for table in TABLES:
        own = [b for b in btrees if b.table == table]
        rows = own[0].rows if own else 0
        size = sum(b.bytes for b in own)
        units = max(1, completed)
        per_unit.append(f"{table} {rows / units:.2f} rows, {size / units:,.0f} B")
    lines.append(f"  per unit in the ledger ({completed} units incl. {result.aged} of its age;"
                 f" receipts included): {'; '.join(per_unit)}")


def check_consumer(result: Result, messages: list[bytes]) -> None:
    """What reached the central system: each unit once, seq gapless; the information's size."""
    try:
        txs, repeats = broker_module().tx_check(messages)
    except AssertionError as exc:
        result.lines.append(f"P/tx at the subscriber: {exc}  <-- BROKEN SEQUENCE")
        txs, repeats = [], 0
    production = [tx for tx in {tx["id"]: tx for tx in txs}.values() if tx["kind"] != "receipt"]
    result.received = sum(int(tx["qty"]) for tx in production if tx["kind"] == "completion")
    result.info_bytes = sum(len(compact(tx)) for tx in production)
    r = result
    mismatch = "" if r.counted == r.completed == r.received else "  <-- MISMATCH"
    r.lines.append(f"exactly once: the PLC counted {r.counted} units, the ledger completed"
                   f" {r.completed}, the subscriber received {r.received}{mismatch}")
    r.lines.append(f"P/tx: {len(messages)} messages ({repeats} repeats), {len(txs)} transactions,"
                   f" {sum(map(len, messages)):,} B; the production's transactions' JSON text"
                   f" {r.info:,.0f} B/unit ({spliced(messages)})")
    w = {k: r.last.io[k] - r.first.io[k] for k in r.first.io}
    cpu = 100 * (r.last.cpu_s - r.first.cpu_s) / (r.last.t - r.first.t)
    r.lines.append(f"window: {r.units} units in {r.last.t - r.first.t:.0f} s; agent CPU {cpu:.1f} %"
                   f" of a core; write_bytes {w['write_bytes']:,}, cancelled_write_bytes"
                   f" {w['cancelled_write_bytes']:,}, wchar {w['wchar']:,} ({w['syscw']:,} writes);"
                   f" checkpoint owed {r.first.owed:,} B before, {r.last.owed:,} B after")


def compact(tx: dict[str, Any]) -> str:
    return json.dumps(tx, separators=(",", ":"))


def spliced(messages: list[bytes]) -> str:
    """Whether each message is its transactions' compact JSON, joined, in the P/tx envelope:
    then what is counted is exactly what was published."""
    for payload in messages:
        body = json.loads(payload)
        head = f'{{"gateway":{json.dumps(body["gateway"])},"seq":{body["seq"]},"transactions":['
        if payload != f"{head}{','.join(map(compact, body['transactions']))}]}}".encode():
            return "NOT the published bytes: a message differs from its re-serialised JSON"
    return "byte for byte as published" if messages else "no messages"


# -- figures -----------------------------------------------------------------------------------


def hours(spec: LineSpec, units: int) -> str:
    return f"{units / spec.units_per_s / 3600:.2g} h"


def variant_label(ledger: dict[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in ledger.items()) or "defaults"


def target(spec: LineSpec, label: str, key: str, value: float) -> tuple[str, bool | None]:
    limit = TARGETS.get((spec.key, label), {}).get(key)
    if limit is None:
        return "—", None
    per_day = limit * spec.units_per_s * DAY_S
    scale = f"{per_day / 1e9:.1f} GB/day" if key == "written" else f"{per_day / 1e6:.0f} MB/day"
    return f"<= {limit:,} B ({scale})", value <= limit


def figures(result: Result, ledger: dict[str, str], args: argparse.Namespace,
            commit: str) -> list[Figure]:
    spec, label = result.spec, variant_label(ledger)
    name = f"endurance, {spec.title} ({label})"
    per_day = spec.units_per_s * DAY_S
    info, written, growth = result.info, result.written, result.growth
    rerun = " ".join([RERUN, "--line", spec.key, *(f"--ledger {k}={v}" for k, v in ledger.items())])
    note = (f"{result.units} units completed in a {args.seconds:.0f} s window after a"
            f" {args.warmup:.0f} s warm-up, poll {spec.poll_ms} ms, the ledger aged by"
            f" {result.aged} units ({hours(spec, result.aged)}), lineside {commit}; written:"
            " /proc/PID/io write_bytes plus the checkpoint the WAL owes; growth: page_count x"
            " page_size; per day: 24 h at this rate")
    days = CARD_BYTES / (growth * per_day) if growth > 0 else float("inf")
    days_info = CARD_BYTES / (info * per_day) if info > 0 else float("inf")
    limit = "tx JSON on P/tx"
    w_target, w_met = target(spec, label, "written", written)
    g_target, g_met = target(spec, label, "growth", growth)
    return [
        Figure(f"{name}: bytes written per unit", written, "B/unit", info, limit, w_target,
               w_met, rerun, note=note),
        Figure(f"{name}: GB written per day", written * per_day / 1e9, "GB/day",
               info * per_day / 1e9, limit, "—", None, rerun, note=note, relative=False),
        Figure(f"{name}: ledger growth per unit", growth, "B/unit", info, limit, g_target, g_met,
               rerun, note=note),
        Figure(f"{name}: ledger MB per day", growth * per_day / 1e6, "MB/day",
               info * per_day / 1e6, limit, "—", None, rerun, note=note, relative=False),
        Figure(f"{name}: days until the ledger fills 32 GB", days, "days", days_info,
               "if it grew by the tx JSON only", "—", None, rerun, note=note),
    ]


def ledger_keys(pairs: Sequence[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", key) or not value.strip():
            raise ValueError(f"--ledger {pair!r}: give KEY=VALUE, e.g. post_interval_s=0")
        if key in keys:
            raise ValueError(f"--ledger {key} given twice")
        keys[key] = value.strip()
    return keys


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=Path(__file__).parent)
    return done.stdout.strip() or "(unknown commit)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line", action="append", choices=sorted(LINES),
                        help="busy: 20-line BOM at 4 units/s; slow: 5-line BOM at 1 unit/s"
                             " (repeatable; default both)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (15; quick 5)")
    parser.add_argument("--seconds", type=float,
                        help="seconds measured per line (120, four posting windows; quick 15)")
    parser.add_argument("--every", type=float, help="seconds between samples (10; quick 5)")
    parser.add_argument("--age-units", type=int,
                        help="units of the line's production in the ledger before the agent"
                             " starts: 14400, an hour of the busy line (quick 1000)")
    parser.add_argument("--ledger", action="append", default=[], metavar="KEY=VALUE",
                        help="a key of the config's ledger: section (repeatable)")
    parser.add_argument("--quick", action="store_true", help="short phases: a smoke test")
    parser.add_argument("--json", type=Path, help="also write the figures here (run_all)")
    args = parser.parse_args()
    for name, normal, quick in (("warmup", 15, 5), ("seconds", 120, 15), ("every", 10, 5),
                                ("age_units", 14_400, 1_000)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    try:
        ledger = ledger_keys(args.ledger)
    except ValueError as exc:
        parser.error(str(exc))
    commit = git_commit()
    figs: list[Figure] = []
    for key in args.line or ["busy", "slow"]:
        figs += figures(measure_line(LINES[key], args, ledger), ledger, args, commit)
    print_table(figs)
    write_figures(args.json, figs)


if __name__ == "__main__":
    main()
