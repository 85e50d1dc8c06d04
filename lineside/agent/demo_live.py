"""`make demo`: simulators, a local broker, the agent and a central subscriber, live.

Nothing to install but Python: the broker is mosquitto when present, else amqtt
in-process. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from lineside.agent import reports
from lineside.agent.alerts import alert_fields
from lineside.agent.broker import LocalBroker, free_port
from lineside.agent.config import LoadedConfig, load_text
from lineside.agent.ledger.queries import consumed
from lineside.agent.runtime import Agent
from lineside.agent.sync.payloads import Topics
from lineside.agent.sync.tail import TailChecker
from lineside.data import data_text
from lineside.simulators.run import start_all

DEMO_PORTS = {
    "18830": "broker",
    "15020": "plc",
    "15021": "doser",
    "15022": "scanner",
    "19750": "health",
}


class CentralSubscriber:
    """What an ERP would see: de-duplicated transactions, seq checks, alerts."""

    def __init__(self, loaded: LoadedConfig) -> None:
        cfg = loaded.config
        self.topics = Topics(cfg.mqtt.topic_prefix, cfg.gateway.site, cfg.gateway.id)
        self.checker = TailChecker(self.topics)
        self.messages = 0
        self.transactions = 0
        self.last_seq: int | None = None
        self.alerts: deque[str] = deque(maxlen=8)
        self.recent: deque[str] = deque(maxlen=8)
        self.online: bool | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"demo-central-{uuid.uuid4().hex[:6]}"
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p=None: c.subscribe(
            f"{self.topics.base}/#", qos=1
        )
        self.host, self.port = cfg.mqtt.host, cfg.mqtt.port

    def start(self) -> None:
        self.client.connect(self.host, self.port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages += 1
        event = self.checker.feed(message.topic, bytes(message.payload))
        if event.type == "tx":
            self.last_seq = event.seq
            self.transactions += len(event.new)
            for tx in event.new[-3:]:
                self.recent.append(
                    f"seq {event.seq} {tx['kind']} {tx['item']} {tx['qty']}"
                    f" {tx['uom']}" + (f" lot {tx['lot']}" if tx["lot"] else "")
                )
        elif event.type == "alert" and isinstance(event.data, dict):
            rest = alert_fields(event.data, omit=("kind", "ts"))
            self.alerts.append(f"{event.data.get('kind')}: {rest}")
        elif event.type == "status" and isinstance(event.data, dict):
            self.online = bool(event.data.get("online"))


DEMO_LEDGER = {"commit_interval_s": Decimal(1), "post_interval_s": Decimal(2)}


def _config(tmp: Path) -> LoadedConfig:
    text = data_text("demo.yaml").replace("data_dir: ../var/demo", f"data_dir: {tmp}")
    for old in DEMO_PORTS:
        text = text.replace(old, str(free_port()))
    path = tmp / "demo.yaml"
    path.write_text(text)
    loaded = load_text(text, path)
    # Someone watching wants to see each posting come; a gateway's default window (30 s)
    # is for its SD card, and what a window posts is the same either way.
    ledger = loaded.config.ledger.model_copy(update=DEMO_LEDGER)
    return replace(loaded, config=loaded.config.model_copy(update={"ledger": ledger}))


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Table:
    table = Table(title=title, title_justify="left", expand=True)
    for col in columns:
        table.add_column(col, justify="right" if col in ("qty", "value", "posted") else "left")
    for row in rows:
        table.add_row(*(str(c) if c is not None else "-" for c in row))
    return table


def _view(agent: Agent, central: CentralSubscriber, broker: LocalBroker, started: float) -> Group:
    assert agent.ledger is not None
    conn, master = agent.ledger.conn, agent.ledger.master
    devices = [
        (
            name,
            "up" if s.up else "DOWN" if s.up is False else "?",
            " ".join(f"{k}={v}" for k, v in sorted(s.last_values.items())),
        )
        for name, s in sorted(agent.devices.items())
    ]
    stock = [(r["item"], r["lot"], r["qty"], r["uom"]) for r in reports.stock(conn, master)]
    used = consumed(conn)
    consumption = [
        (item, str(qty), master.items[item].uom if item in master.items else "")
        for item, qty in sorted(used.items())
    ]
    status = agent.refresh_gauges()
    header = (
        f"lineside demo · {time.monotonic() - started:5.0f} s · broker {broker.kind} "
        f"port {broker.port} · Ctrl-C stops"
    )
    outbox = (
        f"backlog {status['backlog']} · next seq {status['next_seq']} · "
        f"last ack {status['last_ack_ts'] or '-'} · held {status['held']}"
    )
    sub = (
        f"central subscriber: {central.messages} messages, {central.transactions} "
        f"transactions, last seq {central.last_seq}, gaps {central.checker.gaps}, "
        f"gateway {'online' if central.online else 'offline' if central.online is False else '?'}"
    )
    return Group(
        Panel(header, style="bold"),
        _table("Devices", ("device", "state", "last values"), devices),
        _table("Line-side stock", ("item", "lot", "qty", "uom"), stock),
        _table("Consumed (backflush, scrap, measured)", ("item", "posted", "uom"), consumption),
        Panel(outbox, title="Outbox"),
        Panel("\n".join(central.alerts) or "(none yet)", title="Alerts received"),
        Panel(sub + "\n" + "\n".join(central.recent), title="Central subscriber"),
    )


def run_live(seconds: float | None = None) -> int:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="lineside-demo-") as tmp:
        loaded = _config(Path(tmp))
        logging.basicConfig(
            filename=str(Path(tmp) / "lineside.log"),
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        broker = LocalBroker(loaded.config.mqtt.port)
        broker.start()
        stop = threading.Event()
        scenario = yaml.safe_load(data_text("demo-scenario.yaml"))
        start_all(loaded.config, scenario, stop)
        agent = Agent(loaded)
        agent.start()
        central = CentralSubscriber(loaded)
        central.start()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        started = time.monotonic()
        try:
            _show(console, agent, central, broker, started, seconds)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            console.print("stopping: agent, simulators, broker ...")
            agent.stop()
            stop.set()
            central.stop()
            broker.stop()
        console.print(
            f"demo done: {central.transactions} transactions reached the central "
            f"subscriber, seq gaps {central.checker.gaps}"
        )
    return 0


def _show(
    console: Console,
    agent: Agent,
    central: CentralSubscriber,
    broker: LocalBroker,
    started: float,
    seconds: float | None,
) -> None:
    deadline = None if seconds is None else started + seconds
    if not console.is_terminal:  # CI, a pipe: print a summary now and then
        while deadline is None or time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.1, (deadline or 1e18) - time.monotonic())))
            console.print(_view(agent, central, broker, started))
        return
    with Live(
        _view(agent, central, broker, started), console=console, refresh_per_second=2, screen=False
    ) as live:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
            live.update(_view(agent, central, broker, started))


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


__all__ = ["run_live"]
