"""Topics and payloads of the MQTT contract (docs/mqtt.md); JSON Schemas in lineside/schemas/."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from lineside.agent.inputs import decimal_text
from lineside.agent.ledger.store import iso

COMMAND_NAMES = (
    "order.start",
    "order.close",
    "receipt",
    "count",
    "item.put",
    "bom.put",
    "reverse",
    "production",
)


class _Leaf:
    """A topic below P, read as an attribute: `Topics(...).tx` is "P/tx"."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __get__(self, topics: Topics, owner: type[Topics] | None = None) -> str:
        return f"{topics.base}/{self.path}"


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic of one gateway: P = {prefix}/{site}/{gateway}."""

    prefix: str
    site: str
    gateway: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.gateway}"

    tx = _Leaf("tx")
    alerts = _Leaf("alerts")
    status = _Leaf("status")
    stock = _Leaf("stock")
    cmd_prefix = _Leaf("cmd/")
    cmd_filter = _Leaf("cmd/#")
    reply_filter = _Leaf("reply/#")

    def cmd(self, name: str) -> str:
        return f"{self.cmd_prefix}{name}"

    def reply(self, name: str) -> str:
        return f"{self.base}/reply/{name}"


def dumps(payload: Any) -> bytes:
    """Compact JSON, as every payload is published."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def status_online(version: str, ts: datetime) -> bytes:
    return dumps({"online": True, "version": version, "ts": iso(ts)})


def status_offline(version: str, ts: datetime) -> bytes:
    """What a clean stop publishes itself."""
    return dumps({"online": False, "version": version, "ts": iso(ts)})


def status_will(version: str) -> bytes:
    """What the broker publishes for us when the link dies: no ts, it was set at connect time."""
    return dumps({"online": False, "version": version})


def stock(gateway: str, ts: datetime, balances: Iterable[dict[str, Any]]) -> bytes:
    rows = [
        {
            "item": b["item"],
            "location": b["location"],
            "lot": b.get("lot") or None,
            "qty": decimal_text(Decimal(b["qty"])),
            "uom": b["uom"],
        }
        for b in balances
    ]
    return dumps({"gateway": gateway, "ts": iso(ts), "balances": rows})


def reply(request_id: str, ok: bool, error: str | None) -> bytes:
    return dumps({"request_id": request_id, "ok": ok, "error": error})
