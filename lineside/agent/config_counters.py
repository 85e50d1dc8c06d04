"""A work center's counters in the config: the good counter and its scrap counters, one a reason."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from lineside.agent.domain.scrap import MAX_REASON_LENGTH, REASON, UNSPECIFIED, scrap_role

ReasonCode = Annotated[str, Field(pattern=REASON, max_length=MAX_REASON_LENGTH)]
# scrap_reasons: the catalogue, code -> what it means for a person.
ScrapReasons = dict[ReasonCode, Annotated[str, Field(max_length=200)]]


def _per_reason(value: Any) -> Any:
    """`scrap: POINT` is the one scrap counter, of the reason unspecified."""
    return value if value is None or isinstance(value, dict) else {UNSPECIFIED: value}


class CountersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    good: str | None = None
    # One point (scrap of the reason "unspecified"), or a point per reason: {JAM: plc.jam}
    scrap: Annotated[dict[ReasonCode, str] | None, BeforeValidator(_per_reason)] = None

    def roles(self) -> list[tuple[tuple[str, ...], str, str]]:
        """(key path under counters, role, point) of every counter configured."""
        out: list[tuple[tuple[str, ...], str, str]] = []
        if self.good is not None:
            out.append((("good",), "good", self.good))
        for reason, ref in (self.scrap or {}).items():
            # the one-point form has no key of its own: its place is scrap's
            tail = ("scrap",) if self.scrap == {UNSPECIFIED: ref} else ("scrap", reason)
            out.append((tail, scrap_role(reason), ref))
        return out
