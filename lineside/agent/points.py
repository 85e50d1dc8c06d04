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
    modulus: int | Decimal | None  # where it wraps: 2^width x scale; None for a float
    max_delta: int
    max_rate: Decimal | None = None  # units per second the work center can make


@dataclass(frozen=True, slots=True)
class MeterPoint:
    point: str
    meter: str
    item: str
    work_center: str
    max_delta: Decimal
    modulus: Decimal | None = None  # where the totaliser wraps (an integer point)
    max_rate: Decimal | None = None  # the item's units per second at most


@dataclass(frozen=True)
class PointMap:
    counters: dict[str, CounterPoint]
    meters: dict[str, MeterPoint]


def _modulus(config: LinesideConfig, ref: str) -> int | Decimal | None:
    """Where an integer point's value wraps, in the units it reads (2^width x scale);
    None for a float, which does not wrap, or a point no Modbus device has."""
    device, _, point = ref.partition(".")
    points = getattr(config.devices.get(device), "points", None)
    if not isinstance(points, dict) or point not in points:
        return None
    spec = points[point]
    if not spec.type.startswith(("uint", "int")):
        return None
    modulus: int = 2 ** int(spec.counter_width())
    scale = Decimal(spec.scale)
    return modulus if scale == 1 else Decimal(modulus) * scale


def point_map(config: LinesideConfig) -> PointMap:
    counters: dict[str, CounterPoint] = {}
    for code, wc in config.work_centers.items():
        roles = {"good": wc.counters.good, "scrap": wc.counters.scrap}
        roles.update({f"stage:{name}": ref for name, ref in wc.stages.items()})
        for role, ref in roles.items():
            if ref is not None:
                counters[ref] = CounterPoint(
                    ref, code, role, _modulus(config, ref), wc.max_delta, wc.max_rate
                )
    meters = {
        m.point: MeterPoint(
            m.point,
            name,
            m.item,
            m.work_center,
            m.max_delta,
            None if (mod := _modulus(config, m.point)) is None else Decimal(mod),
            m.max_rate,
        )
        for name, m in config.meters.items()
    }
    return PointMap(counters, meters)
