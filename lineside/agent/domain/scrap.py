"""Scrap reasons: which reason a scrap posting carries, and whether a code may be one.

A scrapped unit is reported under the role "scrap:CODE", or the plain role "scrap" for
the reason UNSPECIFIED (scrap without a reason, as every scrap was before reasons: held
events and alerts keep the role they always had). The role is what keeps two reasons
apart all the way to the journal: each scrap counter is its own point and role, so one
posting never mixes two reasons.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

UNSPECIFIED = "unspecified"
MAX_REASON_LENGTH = 32
# Letters, digits and _ . - , starting with a letter or digit: a code for a report's
# column and a PLC programmer's tag, never free text (that is what the catalogue's
# description is for).
REASON = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_REASON = re.compile(REASON[:-1] + r"\Z")


def scrap_role(reason: str) -> str:
    return "scrap" if reason == UNSPECIFIED else f"scrap:{reason}"


def reason_of(role: str) -> str | None:
    """The scrap reason of a role; None for a role that is not scrap (good, a stage)."""
    if role == "scrap":
        return UNSPECIFIED
    return role.removeprefix("scrap:") if role.startswith("scrap:") else None


def reason_problem(code: str, catalogue: Mapping[str, str]) -> str | None:
    """Why code cannot be a scrap reason, or None when it can.

    Without a catalogue any well-formed code is a reason; with one, only its codes (and
    UNSPECIFIED, which scrap reported without a reason always has).
    """
    if not code or len(code) > MAX_REASON_LENGTH:
        return f"scrap reason {code!r} must be 1 to {MAX_REASON_LENGTH} characters"
    if not _REASON.match(code):
        return (
            f"scrap reason {code!r} may hold only letters, digits, '_', '.' and '-',"
            " and starts with a letter or digit"
        )
    if catalogue and code != UNSPECIFIED and code not in catalogue:
        known = ", ".join(sorted(catalogue))
        return f"unknown scrap reason {code!r} (scrap_reasons: {known})"
    return None
