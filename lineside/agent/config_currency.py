"""gateway.currency: the currency the journal report posts in (domain/money.py)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lineside.agent.domain.money import Currency

ISO_4217 = re.compile(r"[A-Z]{3}")


class CurrencyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    code: str | None = None  # none: amounts are printed without a currency named
    decimals: int = Field(default=2, ge=0, le=4)

    @field_validator("code")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None and not ISO_4217.fullmatch(value):
            raise ValueError(f"{value!r} is not an ISO 4217 code: three capital letters, e.g. EUR")
        return value

    def currency(self) -> Currency:
        return Currency(self.code, self.decimals)
