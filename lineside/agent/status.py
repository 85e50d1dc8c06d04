"""`lineside status`: what a technician checks first, from the ledger and the live daemon."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from lineside.agent.config import LoadedConfig
from lineside.agent.diskuse import outlook, render_outlook
from lineside.agent.handlers import Ledger
from lineside.agent.ledger.outbox_status import ledger_bytes, sync_status
from lineside.agent.ledger.queries import (
    active_orders,
    counter_values,
    oldest_kept,
    waiting_held,
)
from lineside.agent.tables import render


def live_health(loaded: LoadedConfig, timeout_s: float = 1.5) -> dict[str, Any] | None:
    """The running daemon's /healthz body, or None when it does not answer."""
    health = loaded.config.health
    if health is None:
        return None
    host, _, port = health.listen.rpartition(":")
    url = f"http://{host or '127.0.0.1'}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except urllib.error.HTTPError as exc:  # 503 still carries the body
        data = json.loads(exc.read() or b"{}")
        return data
    except (OSError, ValueError):
        return None


def gather(loaded: LoadedConfig, ledger: Ledger, now: datetime) -> dict[str, Any]:
    live = live_health(loaded)
    counters = counter_values(ledger.conn)
    devices = []
    for name in loaded.config.devices:
        state = (live or {}).get("devices", {}).get(name, {})
        last = {p.split(".", 1)[1]: v for p, v in counters.items() if p.startswith(name + ".")}
        devices.append(
            {
                "device": name,
                "up": state.get("up"),
                "since": state.get("since"),
                "reason": state.get("reason") or "",
                "last_values": {
                    **{k: v[0] for k, v in last.items()},
                    **state.get("last_values", {}),
                },
            }
        )
    orders = active_orders(ledger.conn)
    held = waiting_held(ledger.conn)
    sync = sync_status(ledger.conn, now)
    return {
        "gateway": loaded.config.gateway.id,
        "daemon": "running" if live is not None else "not answering (or no health: section)",
        "healthy": None if live is None else live.get("ok"),
        "problems": [] if live is None else live.get("problems", []),
        "broker": None if live is None else live.get("broker"),
        "devices": devices,
        "active_orders": orders,
        "held": held,
        "sync": sync,
        "disk": outlook((live or {}).get("disk"), ledger_bytes(ledger.conn), loaded.data_dir),
        "journal_oldest_ts": oldest_kept(ledger.conn),
    }


def render_status(data: dict[str, Any]) -> str:
    sync = data["sync"]
    broker = data["broker"]
    lines = [
        f"gateway {data['gateway']}: daemon {data['daemon']}"
        + ("" if data["healthy"] is None else f", {'healthy' if data['healthy'] else 'UNHEALTHY'}"),
    ]
    lines += [f"  problem: {p}" for p in data["problems"]]
    lines.append(
        "broker: "
        + (
            "unknown"
            if broker is None
            else "connected"
            if broker["connected"]
            else f"NOT connected ({broker['down_s']} s)"
        )
        + f"; outbox backlog {sync['backlog']} (oldest {sync['oldest_unsent_age_s'] or 0:.0f} s)"
        + f"; last sync {sync['last_ack_ts'] or 'never'}; next seq {sync['next_seq']}"
    )
    lines.append(render_outlook(data["disk"]))
    lines.append(f"journal: oldest row kept {data.get('journal_oldest_ts') or 'none'}")
    devices = [
        {
            "device": d["device"],
            "state": "-" if d["up"] is None else "up" if d["up"] else "DOWN",
            "since": d["since"],
            "last": " ".join(f"{k}={v}" for k, v in sorted(d["last_values"].items())),
            "reason": d["reason"],
        }
        for d in data["devices"]
    ]
    lines += ["", "Devices", render(devices, ("device", "state", "since", "last", "reason"))]
    lines += [
        "",
        "Active orders",
        render(data["active_orders"], ("order_no", "work_center", "item", "qty", "started_ts")),
    ]
    lines += [
        "",
        f"Held events ({len(data['held'])})",
        render(data["held"], ("id", "ts", "work_center", "reason")),
    ]
    return "\n".join(lines)
