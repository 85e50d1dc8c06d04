"""The scenario section of a simulated Modbus device, checked against its config (pure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.constants import ExcCodes

from lineside.drivers.modbus.config import ModbusRtuConfig, ModbusTcpConfig

VALID_EXCEPTIONS = frozenset(int(code) for code in ExcCodes)


class _ScenarioModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PointScenario(_ScenarioModel):
    """A point's start value and counting rate, in raw register units."""

    value: Decimal = Decimal(0)
    rate_per_s: Decimal = Decimal(0)


EventKind = Literal["set", "reset", "rate", "offline", "silent", "exception"]


class ScenarioEvent(_ScenarioModel):
    """One scripted change, ``at_s`` seconds after the simulator starts."""

    at_s: Decimal = Field(ge=0)
    point: str | None = None
    set_to: Decimal | None = Field(default=None, alias="set")
    reset: bool = False
    rate_per_s: Decimal | None = None
    offline_s: Decimal | None = Field(default=None, gt=0)
    silent_s: Decimal | None = Field(default=None, gt=0)
    exception: int | None = None
    duration_s: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_action(self) -> ScenarioEvent:
        chosen = [
            key
            for key, given in (
                ("set", self.set_to is not None),
                ("reset", self.reset),
                ("rate_per_s", self.rate_per_s is not None),
                ("offline_s", self.offline_s is not None),
                ("silent_s", self.silent_s is not None),
                ("exception", self.exception is not None),
            )
            if given
        ]
        if len(chosen) != 1:
            raise ValueError(
                "an event does exactly one of set, reset, rate_per_s, offline_s, silent_s, "
                "exception; "
                f"got {', '.join(chosen) or 'none'}"
            )
        kind = chosen[0]
        if kind in ("set", "reset", "rate_per_s") and self.point is None:
            raise ValueError(f"{kind} needs a point")
        if kind in ("offline_s", "silent_s") and self.point is not None:
            raise ValueError(f"{kind} concerns the whole device: drop point")
        if kind == "exception":
            if self.exception not in VALID_EXCEPTIONS:
                raise ValueError(
                    f"exception must be a Modbus exception code: {sorted(VALID_EXCEPTIONS)}"
                )
            if self.duration_s is None:
                raise ValueError("exception needs duration_s")
        elif self.duration_s is not None:
            raise ValueError("duration_s belongs to an exception event")
        return self

    def action(self) -> EventKind:
        if self.offline_s is not None:
            return "offline"
        if self.silent_s is not None:
            return "silent"
        if self.exception is not None:
            return "exception"
        if self.rate_per_s is not None:
            return "rate"
        return "reset" if self.reset else "set"


class DeviceScenario(_ScenarioModel):
    """The scenario section of one simulated Modbus device."""

    points: dict[str, PointScenario] = {}
    events: list[ScenarioEvent] = []
    response_delay_ms: Decimal | None = Field(default=None, ge=0, le=10_000)


ModbusDeviceConfig = ModbusTcpConfig | ModbusRtuConfig


def scenario_problems(section: DeviceScenario, config: ModbusDeviceConfig) -> list[str]:
    """What in a scenario section does not fit its device's config (pure)."""
    problems: list[str] = []
    known = config.point_names()
    named = [("points", n) for n in section.points] + [
        (f"events[{i}]", e.point) for i, e in enumerate(section.events) if e.point is not None
    ]
    for where, name in named:
        if name not in known:
            problems.append(
                f"{where}: no point {name!r} on this device (it has {', '.join(sorted(known))})"
            )
    for i, event in enumerate(section.events):
        if event.set_to is not None and event.point in known:
            point_type = config.points[event.point].type
            if point_type not in ("float32", "float64") and event.set_to != int(event.set_to):
                problems.append(f"events[{i}]: set {event.set_to} is not a whole number")
    return problems
