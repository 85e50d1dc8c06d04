"""Alerts as text for people and logs: the one place an alert's fields become words."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


def alert_fields(alert: Mapping[str, Any], omit: Collection[str] = ()) -> str:
    """`key=value` pairs in the alert's own order, without the keys in omit."""
    return " ".join(f"{k}={v}" for k, v in alert.items() if k not in omit)


def held_text(alert: Mapping[str, Any]) -> str:
    """A `held` alert as a sentence that says where to look next."""
    what = f"{alert['units']} {alert['role']} units of {alert.get('item') or '?'}"
    return (
        f"held: {what} at {alert['work_center']} wait ({alert['reason']});"
        f" see lineside held list (id {alert['held_id']})"
    )
