"""What a held event waits with: the production, jump or meter total that could not post.

Written by the handlers that hold an event and read back by the retry, `held release`
and `lineside held`; stored as JSON in the ledger's held table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Production:
    """Units of an item reported under one role at a work center, against an order or not."""

    work_center: str
    item: str  # "" when the work center had no order and no default item
    role: str
    units: int
    order_no: str | None
    event: str
    cause: str
    with_completion: bool

    @property
    def bucket(self) -> str:
        return f"order:{self.order_no}" if self.order_no else f"wc:{self.work_center}:{self.item}"

    def without_completion(self) -> Production:
        return replace(self, with_completion=False)

    def to_json(self) -> str:
        return json.dumps({"type": "production", **asdict(self)})

    def listed(self) -> dict[str, Any]:
        return {"item": self.item or None, "units": self.units, "role": self.role}


@dataclass(frozen=True, slots=True)
class Implausible:
    """A counter's jump above max_delta: a person says whether it was real."""

    work_center: str
    role: str
    units: int
    event: str

    def to_json(self) -> str:
        return json.dumps({"type": "implausible", **asdict(self)})

    def listed(self) -> dict[str, Any]:
        return {"item": None, "units": self.units, "role": self.role}


@dataclass(frozen=True, slots=True)
class Measured:
    """A meter's jump above max_delta; qty is the decimal text of the jump."""

    work_center: str
    item: str
    qty: str
    event: str

    def to_json(self) -> str:
        return json.dumps({"type": "measured", **asdict(self)})

    def listed(self) -> dict[str, Any]:
        return {"item": self.item or None, "units": self.qty, "role": None}


Held = Production | Implausible | Measured
_TYPES: dict[str, type[Production] | type[Implausible] | type[Measured]] = {
    "production": Production,
    "implausible": Implausible,
    "measured": Measured,
}


def from_json(text: str) -> Held:
    """A held event's payload as to_json wrote it."""
    data: dict[str, Any] = json.loads(text)
    kind = _TYPES.get(str(data.pop("type", "")))
    if kind is None:
        raise ValueError(f"not a held event's payload: {text[:80]}")
    return kind(**data)
