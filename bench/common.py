"""What the benchmarks share: a line of simulated PLCs, a test mosquitto, the agent as a real
process, /proc sampling, figures and their JSON hand-over to bench/run_all.py.

Every script in bench/ is run as ``.venv/bin/python bench/NAME.py`` from anywhere; this
module is imported as ``common`` (the script's folder is first on sys.path).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from lineside.simulators.plc import PlcSimulator, SimPoint

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024

# -- figures ------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure beside its physical limit from the same run.

    ``ratio`` is value / limit: for rates a fraction of the limit (higher is better), for
    costs (CPU, memory, latency) lineside's overhead factor (lower is better).
    """

    name: str
    value: float
    unit: str
    limit: float | None
    limit_label: str
    target: str
    met: bool | None
    rerun: str
    note: str = ""
    ratio: float | None = None
    relative: bool = True  # False: the limit is shown for comparison, a ratio means nothing

    def __post_init__(self) -> None:
        if self.ratio is None and self.relative and self.limit:
            self.ratio = self.value / self.limit


def write_figures(path: Path | None, figures: Sequence[Figure]) -> None:
    """Hand the figures to bench/run_all.py (which passes --json FILE)."""
    if path is not None:
        path.write_text(json.dumps([asdict(f) for f in figures], indent=1))


def read_figures(path: Path) -> list[Figure]:
    return [Figure(**row) for row in json.loads(path.read_text())]


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def met_text(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "NO")


def ratio_text(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}x"


def table_rows(figures: Sequence[Figure]) -> list[list[str]]:
    head = ["figure", "value", "physical limit (same run)", "ratio", "target", "met?"]
    return [head] + [
        [f.name, f"{fmt(f.value)} {f.unit}", f"{fmt(f.limit)}  {f.limit_label}",
         ratio_text(f.ratio), f.target, met_text(f.met)]
        for f in figures
    ]


def print_table(figures: Sequence[Figure]) -> None:
    rows = table_rows(figures)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 200 values is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * pct // 100)))
    return ordered[int(rank) - 1]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# -- /proc --------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of the process, from /proc/PID/stat."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU time from a /proc stat file (a process's, or a thread's under task/)."""
    text = stat.read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    """A kB figure of /proc/PID/status: VmRSS (resident now), VmHWM (resident peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_mb(pid: int) -> float:
    return status_kb(pid, "VmRSS") / 1024


@dataclass
class CpuMeter:
    """CPU % of one core used by each process over consecutive windows."""

    pids: dict[str, int]
    windows: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, list[float]] = field(default_factory=dict)

    def run(self, seconds: float, window_s: float = 10.0) -> None:
        """Sample every window_s for seconds; CPU% per window, RSS at each window's end."""
        last = self._snapshot()
        end = time.monotonic() + seconds
        while time.monotonic() < end - 0.5:
            time.sleep(min(window_s, max(0.0, end - time.monotonic())))
            now = self._snapshot()
            wall = now["_wall"] - last["_wall"]
            for name, pid in self.pids.items():
                cpu = now[name] - last[name]
                self.windows.setdefault(name, []).append(100 * cpu / wall)
                self.rss.setdefault(name, []).append(rss_mb(pid))
            last = now

    def _snapshot(self) -> dict[str, float]:
        snap = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        snap["_wall"] = time.monotonic()
        return snap

    def cpu(self, name: str) -> float:
        return median(self.windows.get(name, []))

    def peak_rss(self, name: str) -> float:
        return max(self.rss.get(name, [float("nan")]))


# -- the simulated line -------------------------------------------------------------------------

# Ten points per PLC, as a press's PLC exposes them: contiguous holding registers, so the
# driver reads them in one request (as it plans reads) and the bare loop does the same.
POINTS: dict[str, tuple[int, str]] = {
    "good": (100, "uint32"),
    "scrap": (102, "uint16"),
    "speed": (103, "uint16"),
    "state": (104, "uint16"),
    "temp": (105, "int16"),
    "pressure": (106, "float32"),
    "runtime": (108, "uint32"),
    "faults": (110, "uint16"),
    "recipe": (111, "uint16"),
    "energy": (112, "float32"),
}
START_GOOD = 1000
BOM_LINES = 3
TX_PER_UNIT = 1 + BOM_LINES  # the completion and one backflush per BOM line


def good_rate(index: int, plcs: int) -> float:
    """Line speeds spread between 1 and 2 units/s."""
    return 1.0 + index / max(1, plcs - 1)


def sim_points(good_per_s: float, scrap_per_s: float) -> dict[str, SimPoint]:
    values: dict[str, int | float] = {
        "good": START_GOOD, "speed": 1200, "state": 3, "temp": 215, "pressure": 3.5,
        "runtime": 86_400, "recipe": 17, "energy": 1234.5,
    }
    rates = {"good": good_per_s, "scrap": scrap_per_s}
    return {
        name: SimPoint(address, kind, value=values.get(name, 0), rate_per_s=rates.get(name, 0.0))
        for name, (address, kind) in POINTS.items()
    }


class Line:
    """N simulated PLCs, one Modbus TCP server each on a free loopback port, unit 1.

    Counters stand still until run(); good counters then advance at 1-2 units/s, or all at
    good_per_s.
    """

    def __init__(self, plcs: int, scrap_per_s: float = 0.05, good_per_s: float | None = None
                 ) -> None:
        self.rates = [(good_rate(i, plcs) if good_per_s is None else good_per_s, scrap_per_s)
                      for i in range(plcs)]
        self.sims = [
            PlcSimulator({1: sim_points(0.0, 0.0)}, port=0, name=f"plc{i:02d}")
            for i in range(plcs)
        ]

    def start(self) -> None:
        for sim in self.sims:
            sim.start()

    def stop(self) -> None:
        for sim in self.sims:
            sim.stop()

    def run(self) -> None:
        """Counters start moving (they stand still until then, so the agent's first reading,
        a baseline, is START_GOOD and every unit counted after it is production)."""
        for sim, (good, scrap) in zip(self.sims, self.rates, strict=True):
            sim.set_rate(1, "good", good)
            sim.set_rate(1, "scrap", scrap)

    def halt(self) -> None:
        """Every counter stops moving (the line is idle)."""
        for sim in self.sims:
            for point in ("good", "scrap"):
                sim.set_rate(1, point, 0.0)

    def counted(self, point: str = "good") -> int:
        return sum(int(sim.value(1, point)) for sim in self.sims)

    def bare_spec(self) -> list[dict[str, Any]]:
        """What bench/agent.py's bare pymodbus loop reads: the same blocks, the same points."""
        first = min(a for a, _ in POINTS.values())
        end = max(a + (2 if "32" in t else 1) for a, t in POINTS.values())
        return [
            {
                "host": "127.0.0.1", "port": sim.port, "unit": 1, "address": first,
                "count": end - first,
                "points": [[a - first, t] for a, t in POINTS.values()],
            }
            for sim in self.sims
        ]


# -- config ---------------------------------------------------------------------------------------


def config_text(
    data_dir: Path, line: Line, broker_port: int, health_port: int, poll_ms: int = 250
) -> str:
    """A gateway with one work center per PLC, each making FG with a 3-line BOM."""
    devices, centers = [], []
    for i, sim in enumerate(line.sims):
        points = ", ".join(f"{n}: {{address: {a}, type: {t}}}" for n, (a, t) in POINTS.items())
        devices.append(
            f"  plc{i:02d}: {{driver: modbus_tcp, host: 127.0.0.1, port: {sim.port}, unit: 1,"
            f" poll_ms: {poll_ms}, points: {{{points}}}}}"
        )
        centers.append(
            f"  WC{i:02d}: {{location: LINE-{i:02d}, item: FG,"
            f" counters: {{good: plc{i:02d}.good, scrap: plc{i:02d}.scrap}}}}"
        )
    return "\n".join(
        [
            f"gateway: {{id: bench, site: lab, data_dir: {data_dir}}}",
            f"mqtt: {{host: 127.0.0.1, port: {broker_port}}}",
            "items:",
            "  FG: {uom: ea, cost: 12.50, conversion_cost: 2}",
            "  STEEL: {uom: kg, decimals: 3, cost: 1.10}",
            "  BOLT: {uom: ea, cost: 0.05}",
            "  PRIMER: {uom: l, decimals: 3, cost: 9.00}",
            "boms:",
            "  FG:",
            "    components:",
            "      - {item: STEEL, qty: 0.85, scrap_pct: 3}",
            "      - {item: BOLT, qty: 4}",
            "      - {item: PRIMER, qty: 0.01}",
            "work_centers:",
            *centers,
            "devices:",
            *devices,
            f"health: {{listen: '127.0.0.1:{health_port}'}}",
            "log: {level: info}",
            "",
        ]
    )


def stock_up(config: Path, plcs: int, items: Sequence[str] = ("STEEL", "BOLT", "PRIMER")) -> None:
    """Enough of every component at every line, so no backflush goes negative (no alerts)."""
    from lineside.agent.bootstrap import open_ledger
    from lineside.agent.commands import Receive
    from lineside.agent.config import load

    ledger = open_ledger(load(config))
    now = datetime.now(UTC)
    receipts = [
        Receive(key=f"stock-{i}-{item}", ts=now, item=item, qty=Decimal(10_000_000), lot="L1",
                location=f"LINE-{i:02d}")
        for i in range(plcs)
        for item in items
    ]
    try:
        ledger.execute_batch(list(receipts))
    finally:
        ledger.conn.close()


# -- processes ----------------------------------------------------------------------------------


def broker_module() -> Any:
    """tests/broker.py: the test suite's mosquitto fixture."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("tests.broker")


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[Any]:
    brokers = broker_module()
    executable = brokers.find_mosquitto()
    if executable is None:
        sys.exit(brokers.INSTALL_HINT)
    broker = brokers.Broker(workdir, executable=executable)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def free_port() -> int:
    return int(broker_module().free_port())


def lineside_command() -> list[str]:
    script = Path(PYTHON).parent / "lineside"
    if script.exists():
        return [str(script)]
    return [PYTHON, "-m", "lineside.agent.cli"]


class Process:
    """A child process that is always stopped: SIGTERM, then SIGKILL after a grace period.

    piped: its output reaches the log through a pipe (this process writes the file), as
    under systemd, where the journal writes it: the child's own write_bytes are then its
    data's alone.
    """

    def __init__(self, argv: Sequence[str], log: Path, piped: bool = False) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE if piped else out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        if piped:
            threading.Thread(target=self._copy_log, daemon=True).start()

    def _copy_log(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("ab") as out:
            for line in self.proc.stdout:
                out.write(line)
                out.flush()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class AgentProcess(Process):
    """`lineside run -c CONFIG` as systemd would run it, with its health endpoint."""

    def __init__(self, config: Path, health_port: int, log: Path, piped: bool = False) -> None:
        super().__init__([*lineside_command(), "run", "-c", str(config)], log, piped)
        self.health_port = health_port

    def health(self) -> dict[str, Any] | None:
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return dict(json.load(reply))
        except urllib.error.HTTPError as exc:  # 503: unhealthy, the body still says why
            return dict(json.loads(exc.read()))
        except (OSError, ValueError):
            return None

    def wait_ready(self, devices: int, timeout_s: float = 60.0) -> None:
        """Until the broker is connected and every device has answered."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"lineside run exited:\n{self.tail()}")
            body = self.health()
            if body and body["broker"]["connected"]:
                up = [d for d in body["devices"].values() if d["up"] and d["last_values"]]
                if len(up) >= devices:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"lineside run not ready after {timeout_s:.0f} s:\n{self.tail()}")


def bare_poller(line: Line, poll_ms: int, tmp: Path) -> Process:
    """bench/agent.py's bare pymodbus loop polling the line as the agent does (the limit)."""
    spec = tmp / "bare.json"
    spec.write_text(json.dumps(line.bare_spec()))
    argv = [PYTHON, str(BENCH / "agent.py"), "bare", str(spec), str(poll_ms)]
    return Process(argv, tmp / "bare.log")


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"lineside-{prefix}-") as name:
        yield Path(name)


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def say(text: str) -> None:
    print(text, flush=True)
