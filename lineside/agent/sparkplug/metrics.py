"""Which metrics the node and each work center publish, and their values (pure).

The layout (names, datatypes, aliases) follows from the config alone, so that it is the
same in every birth of a session and across restarts with the same config. Values come
from snapshots (LiveState, LedgerState) and the time, never from I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from lineside.agent.config import LinesideConfig, WorkCenterConfig
from lineside.agent.sparkplug.codec import DataType, Value
from lineside.agent.sparkplug.live import LedgerState, LiveState

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
RUNNING, STOPPED, DEVICE_DOWN = "running", "stopped", "device down"


@dataclass(frozen=True)
class MetricDef:
    name: str
    datatype: DataType
    alias: int


@dataclass(frozen=True)
class Layout:
    node: tuple[MetricDef, ...]
    devices: Mapping[str, tuple[MetricDef, ...]]  # work center code -> its metrics


def layout(cfg: LinesideConfig) -> Layout:
    """Every metric the node will ever report in a session, aliases unique across the node
    (bdSeq and Node Control/Rebirth are added by the session, without alias)."""
    spb = cfg.sparkplug
    stock_items = spb.stock if spb is not None else []
    aliases = itertools.count(1)

    def defs(*named: tuple[str, DataType]) -> tuple[MetricDef, ...]:
        return tuple(MetricDef(name, datatype, next(aliases)) for name, datatype in named)

    locations = sorted({wc.location for wc in cfg.work_centers.values()})
    node = defs(
        ("Properties/Version", DataType.String),
        ("Outbox/Backlog", DataType.UInt64),
        ("Outbox/Oldest Unsent Age", DataType.Double),
        ("Central Broker/Connected", DataType.Boolean),
        ("Ledger/Size", DataType.UInt64),
        *((f"Stock/{loc}/{item}", DataType.Double) for loc in locations for item in stock_items),
    )
    devices = {
        code: defs(
            *((f"Counters/{role}", DataType.Int64) for role, _ in _counters(wc)),
            *((f"Stages/{stage}", DataType.Int64) for stage in wc.stages),
            ("Order", DataType.String),
            ("Item", DataType.String),
            ("Line State", DataType.String),
            ("Held Events", DataType.UInt64),
        )
        for code, wc in cfg.work_centers.items()
    }
    return Layout(node, devices)


def _counters(wc: WorkCenterConfig) -> list[tuple[str, str]]:
    """(metric name under Counters/, point) of each counter: Good, Scrap, or Scrap/REASON
    for each scrap counter of a reason."""
    return [("/".join((tail[0].title(), *tail[1:])), ref) for tail, _, ref in wc.counters.roles()]


def node_values(
    cfg: LinesideConfig, live: LiveState, ledger: LedgerState, now: datetime, version: str
) -> dict[str, Value]:
    age = None
    if ledger.oldest_unsent is not None:
        age = round(max(0.0, (now - ledger.oldest_unsent).total_seconds()), 1)
    values: dict[str, Value] = {
        "Properties/Version": version,
        "Outbox/Backlog": ledger.backlog,
        "Outbox/Oldest Unsent Age": age,
        "Central Broker/Connected": live.broker_connected,
        "Ledger/Size": ledger.ledger_bytes,
    }
    spb = cfg.sparkplug
    for loc in sorted({wc.location for wc in cfg.work_centers.values()}):
        for item in spb.stock if spb is not None else []:
            qty = ledger.stock.get((loc, item))
            values[f"Stock/{loc}/{item}"] = 0.0 if qty is None else float(qty)
    return values


class LineWatch:
    """Running, stopped or device down, per work center: running while its counters moved
    within stopped_after_s. Fed every sample with the time (monotonic seconds)."""

    def __init__(self, stopped_after_s: float) -> None:
        self.stopped_after_s = stopped_after_s
        self._seen: dict[str, tuple[tuple[int | None, ...], float | None]] = {}

    def state(self, wc: str, counts: tuple[int | None, ...], down: bool, now: float) -> str:
        last = self._seen.get(wc)
        moved_at = None if last is None else last[1]
        if last is not None and counts != last[0] and any(c is not None for c in last[0]):
            moved_at = now
        self._seen[wc] = (counts, moved_at)
        if down:
            return DEVICE_DOWN
        running = moved_at is not None and now - moved_at < self.stopped_after_s
        return RUNNING if running else STOPPED


def device_values(
    code: str,
    wc: WorkCenterConfig,
    live: LiveState,
    ledger: LedgerState,
    lines: LineWatch,
    now: float,
) -> dict[str, Value]:
    refs = [ref for _, ref in _counters(wc)] + list(wc.stages.values())
    counts = tuple(count(live.values.get(ref)) for ref in refs)
    down = any(live.devices_up.get(ref.split(".", 1)[0]) is False for ref in refs)
    values: dict[str, Value] = {}
    for (role, _), value in zip(_counters(wc), counts, strict=False):
        values[f"Counters/{role}"] = value
    for stage, value in zip(wc.stages, counts[len(_counters(wc)) :], strict=True):
        values[f"Stages/{stage}"] = value
    order = ledger.orders.get(code)
    values["Order"] = None if order is None else order[0]
    values["Item"] = wc.item if order is None else order[1]
    values["Line State"] = lines.state(code, counts, down, now)
    values["Held Events"] = ledger.held.get(code, 0)
    return values


def count(text: str | None) -> int | None:
    """A counter's last value as the driver gave it, or None (never read, or not a count).

    ASCII digits only: int() would also take other scripts' digits.
    """
    if text is None:
        return None
    digits = text[1:] if text[:1] == "-" else text
    if not digits.isascii() or not digits.isdigit():
        return None
    return int(text)


def changes(before: Mapping[str, Value], now: Mapping[str, Value]) -> dict[str, Value]:
    """Report by exception: the metrics whose value differs from the last one reported."""
    return {
        name: value
        for name, value in now.items()
        if name not in before or before[name] != value or type(before[name]) is not type(value)
    }
