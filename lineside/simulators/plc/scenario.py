"""The scenario section of a simulated Modbus device, checked against its config (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)
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
# The key that makes an event the kind it is; an event has exactly one of them.
ACTION_KEYS: dict[str, EventKind] = {
    "set": "set",
    "reset": "reset",
    "rate_per_s": "rate",
    "offline_s": "offline",
    "silent_s": "silent",
    "exception": "exception",
}
DOCS = "docs/simulators.md"
EVENT_KEYS = frozenset({"at_s", "point", "duration_s", *ACTION_KEYS})


class _Event(_ScenarioModel):
    """One scripted change, ``at_s`` seconds after the simulator starts."""

    kind: ClassVar[EventKind]
    at_s: Decimal = Field(ge=0)

    def action(self) -> EventKind:
        return self.kind


class SetEvent(_Event):
    kind = "set"
    point: str
    set_to: Decimal = Field(alias="set")


class ResetEvent(_Event):
    kind = "reset"
    point: str
    reset: bool


class RateEvent(_Event):
    kind = "rate"
    point: str
    rate_per_s: Decimal


class OfflineEvent(_Event):
    kind = "offline"
    offline_s: Decimal = Field(gt=0)


class SilentEvent(_Event):
    kind = "silent"
    silent_s: Decimal = Field(gt=0)


class ExceptionEvent(_Event):
    """Every request (or only those for point) answered with a Modbus exception code."""

    kind = "exception"
    exception: int
    duration_s: Decimal = Field(gt=0)
    point: str | None = None

    @field_validator("exception")
    @classmethod
    def _code(cls, value: int) -> int:
        if value not in VALID_EXCEPTIONS:
            raise ValueError(
                f"exception must be a Modbus exception code: {sorted(VALID_EXCEPTIONS)}"
            )
        return value


def _given(key: str, raw: object) -> bool:
    if key != "reset" or raw is None:
        return raw is not None
    try:
        return TypeAdapter(bool).validate_python(raw)
    except ValidationError:
        return True  # not a yes or no: ResetEvent says so


def _one_action(value: object) -> object:
    """What tells the kinds apart, and the rules between keys that no one kind can state."""
    if not isinstance(value, Mapping):
        raise ValueError("an event is a mapping, e.g. {at_s: 10, point: good, set: 5}")
    chosen = [key for key in ACTION_KEYS if _given(key, value.get(key))]
    if len(chosen) != 1:
        unknown = sorted(str(key) for key in value if key not in EVENT_KEYS)
        if unknown:
            keys = ", ".join(unknown)
            raise ValueError(f"unknown key {keys}: Extra inputs are not permitted (see {DOCS})")
        raise ValueError(
            "an event does exactly one of set, reset, rate_per_s, offline_s, silent_s, "
            f"exception; got {', '.join(chosen) or 'none'}"
        )
    key = chosen[0]
    if key in ("set", "reset", "rate_per_s") and value.get("point") is None:
        raise ValueError(f"{key} needs a point")
    if key in ("offline_s", "silent_s") and value.get("point") is not None:
        raise ValueError(f"{key} concerns the whole device: drop point")
    if key == "exception" and value.get("duration_s") is None:
        raise ValueError("exception needs duration_s")
    if key != "exception" and value.get("duration_s") is not None:
        raise ValueError("duration_s belongs to an exception event")
    return value


def _tag(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return None
    return next(
        (f"{kind} event" for key, kind in ACTION_KEYS.items() if _given(key, value.get(key))),
        None,
    )


ScenarioEvent = Annotated[
    Annotated[SetEvent, Tag("set event")]
    | Annotated[ResetEvent, Tag("reset event")]
    | Annotated[RateEvent, Tag("rate event")]
    | Annotated[OfflineEvent, Tag("offline event")]
    | Annotated[SilentEvent, Tag("silent event")]
    | Annotated[ExceptionEvent, Tag("exception event")],
    Discriminator(_tag),
    BeforeValidator(_one_action),
]
"""One event: a model per kind, chosen by the one action key it has."""
EVENT_TAGS = tuple(f"{kind} event" for kind in ACTION_KEYS.values())


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
        (f"events[{i}]", point)
        for i, e in enumerate(section.events)
        if (point := getattr(e, "point", None)) is not None
    ]
    for where, name in named:
        if name not in known:
            problems.append(
                f"{where}: no point {name!r} on this device (it has {', '.join(sorted(known))})"
            )
    for i, event in enumerate(section.events):
        if isinstance(event, SetEvent) and event.point in known:
            point_type = config.points[event.point].type
            if point_type not in ("float32", "float64") and event.set_to != int(event.set_to):
                problems.append(f"events[{i}]: set {event.set_to} is not a whole number")
    return problems
