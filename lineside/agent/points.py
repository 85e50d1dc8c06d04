"""What a device point means: which work center's counter, or which meter, and how wide it is."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lineside.agent.config import LinesideConfig


@dataclass(frozen=True, slots=True)
class CounterPoint:
    point: str
    work_center: str
    role: str  # "good", "scrap", "scrap:REASON" or "stage:NAME"
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
    """Where a point's value wraps, in the units it reads, as its device says (Modbus:
    2^width x scale); None for a point that does not wrap, or that no device has."""
    device, _, point = ref.partition(".")
    cfg = config.devices.get(device)
    return None if cfg is None else cfg.counter_modulus(point)


def point_map(config: LinesideConfig) -> PointMap:
    counters: dict[str, CounterPoint] = {}
    for code, wc in config.work_centers.items():
        roles = [(role, ref) for _, role, ref in wc.counters.roles()]
        roles += [(f"stage:{name}", ref) for name, ref in wc.stages.items()]
        for role, ref in roles:
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
