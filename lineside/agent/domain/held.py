"""What a held event waits with: the production, jump or meter total that could not post.

Written by the handlers that hold an event and read back by the retry, `held release`
and `lineside held`; stored as JSON in the ledger's held table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from lineside.agent.domain.scrap import reason_of

# The prefix of a standards bucket of scrapped units; a plain bucket starts with "order:"
# or "wc:", so none is mistaken for one. Ledgers written before kept them in the plain one.
SCRAP_STANDARD = "scrap:"


class _Payload:
    """A held event's payload: its fields, and its type's name under "type"."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def to_json(self) -> str:
        return json.dumps({"type": self.TYPE, **asdict(self)})  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class Production(_Payload):
    """Units of an item reported under one role at a work center, against an order or not."""

    TYPE: ClassVar[str] = "production"
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

    @property
    def standard_bucket(self) -> str:
        """Where the measured standard of these units adds up: scrapped units apart, so
        that the journal costs their share to Scrap Loss."""
        return SCRAP_STANDARD + self.bucket if reason_of(self.role) else self.bucket

    def without_completion(self) -> Production:
        return replace(self, with_completion=False)


@dataclass(frozen=True, slots=True)
class Implausible(_Payload):
    """A counter's jump above max_delta: a person says whether it was real."""

    TYPE: ClassVar[str] = "implausible"
    work_center: str
    role: str
    units: int
    event: str


@dataclass(frozen=True, slots=True)
class Measured(_Payload):
    """A meter's jump above max_delta; qty is the decimal text of the jump."""

    TYPE: ClassVar[str] = "measured"
    work_center: str
    item: str
    qty: str
    event: str


Held = Production | Implausible | Measured
_TYPES: dict[str, type[Production] | type[Implausible] | type[Measured]] = {
    kind.TYPE: kind for kind in (Production, Implausible, Measured)
}


def from_json(text: str) -> Held:
    """A held event's payload as to_json wrote it."""
    data: dict[str, Any] = json.loads(text)
    kind = _TYPES.get(str(data.pop("type", "")))
    if kind is None:
        raise ValueError(f"not a held event's payload: {text[:80]}")
    return kind(**data)


def listed(held: Held) -> dict[str, Any]:
    """What `lineside held list` shows of a payload: its item, units (a meter's quantity)
    and role, None where the payload has none."""
    return {
        "item": getattr(held, "item", "") or None,
        "units": held.qty if isinstance(held, Measured) else held.units,
        "role": getattr(held, "role", None),
    }
