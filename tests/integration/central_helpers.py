"""lineside central as a process for the tests: its config, start, metrics, and P/tx
messages as a gateway would publish them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg

from tests.broker import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]


def central_config(
    directory: Path, port: int, dsn: str, client_id: str, **replay: Any
) -> tuple[Path, int]:
    """A config for one consumer process; returns its path and its metrics port."""
    health = free_port()
    settings = {"grace_s": 1, "retry_s": 3, "scan_s": 0.2, **replay}
    lines = [
        "mqtt:",
        "  host: 127.0.0.1",
        f"  port: {port}",
        f"  client_id: {client_id}",
        "  session_expiry_s: 300",
        "postgres:",
        f'  dsn: "{dsn}"',
        "group: test-central",
        "replay: {" + ", ".join(f"{k}: {v}" for k, v in settings.items()) + "}",
        f'health: {{listen: "127.0.0.1:{health}"}}',
        "log: {level: info}",
    ]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{client_id}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, health


class CentralProcess:
    """`lineside central run -c FILE` as a child process, its log in a file."""

    def __init__(self, config: Path, health_port: int) -> None:
        self.config = config
        self.health_port = health_port
        self.log = config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CentralProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lineside.agent.cli", "central", "run", "-c",
                 str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        wait_until(lambda: self.metrics_text() is not None, 30, "lineside central's metrics")
        return self

    def metrics_text(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"lineside central exited {self.proc.returncode}:\n{self.tail()}")
        try:
            url = f"http://127.0.0.1:{self.health_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            return None

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include labels (0 when absent)."""
        text = self.metrics_text() or ""
        total = 0.0
        for line in text.splitlines():
            found = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
            if found is None:
                continue
            tags = dict(re.findall(r'(\w+)="([^"]*)"', found[1] or ""))
            if all(tags.get(k) == v for k, v in labels.items()):
                total += float(found[2])
        return total

    def connected(self) -> bool:
        return self.metric("lineside_central_broker_connected") == 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def tx_payload(gateway: str, seq: int, count: int = 3) -> tuple[bytes, list[str]]:
    """A P/tx message with count fresh transactions; returns it and their ids."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    txs = [
        {"id": i, "ts": "2026-01-05T06:00:01.000Z", "kind": "backflush", "item": "STEEL-2MM",
         "location": "LINE-3", "qty": "-0.875", "uom": "kg", "lot": None, "order": None,
         "work_center": "PRESS-3", "cost": "-1.09375", "cause": f"seq {seq}"}
        for i in ids
    ]  # fmt: skip
    body = {"gateway": gateway, "seq": seq, "transactions": txs}
    return json.dumps(body, separators=(",", ":")).encode(), ids


def landed_ids(dsn: str, gateway: str | None = None) -> list[str]:
    with psycopg.connect(dsn) as conn:
        if gateway is None:
            rows = conn.execute("SELECT id FROM lineside_transactions").fetchall()
        else:
            rows = conn.execute(
                "SELECT id FROM lineside_transactions WHERE gateway = %s", (gateway,)
            ).fetchall()
    return [str(r[0]) for r in rows]
