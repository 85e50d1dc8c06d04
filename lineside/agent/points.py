"""What a device point means: which work center's counter, or which meter, and how wide it is."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lineside.agent.config import LinesideConfig


@dataclass(frozen=True, slots=True)
class CounterPoint:
    point: str
    work_center: str
    role: str  # "good", "scrap" or "stage:NAME"
    width_bits: int | None
    max_delta: int


@dataclass(frozen=True, slots=True)
class MeterPoint:
    point: str
    meter: str
    item: str
    work_center: str
    max_delta: Decimal


@dataclass(frozen=True)
class PointMap:
    counters: dict[str, CounterPoint]
    meters: dict[str, MeterPoint]


def _width(config: LinesideConfig, ref: str) -> int | None:
    device, _, point = ref.partition(".")
    points = getattr(config.devices.get(device), "points", None)
    if not isinstance(points, dict) or point not in points:
        return None
    width = points[point].counter_width()
    return int(width) if points[point].type.startswith(("uint", "int")) else None


def point_map(config: LinesideConfig) -> PointMap:
    counters: dict[str, CounterPoint] = {}
    for code, wc in config.work_centers.items():
        roles = {"good": wc.counters.good, "scrap": wc.counters.scrap}
        roles.update({f"stage:{name}": ref for name, ref in wc.stages.items()})
        for role, ref in roles.items():
            if ref is not None:
                counters[ref] = CounterPoint(ref, code, role, _width(config, ref), wc.max_delta)
    meters = {
        m.point: MeterPoint(m.point, name, m.item, m.work_center, m.max_delta)
        for name, m in config.meters.items()
    }
    return PointMap(counters, meters)
