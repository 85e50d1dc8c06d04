"""Cross-checks of the `sparkplug:` section that no single field can make (pure)."""

from __future__ import annotations

import re
from collections.abc import Container
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lineside.agent.config import LinesideConfig
    from lineside.agent.yamlsource import KeyPath

OWN_BROKER_KEYS = ("port", "username", "password_file", "tls")
# Sparkplug ids become topic segments: no MQTT wildcards, no '/'.
DEVICE_ID = re.compile(r"[^+/#\s]{1,64}")


def sparkplug_problems(
    config: LinesideConfig, items: Container[str]
) -> list[tuple[KeyPath, str]]:
    """Keys of its own broker without its host, unknown stock items, and work center codes
    that cannot be Sparkplug device ids."""
    spb = config.sparkplug
    if spb is None:
        return []
    out: list[tuple[KeyPath, str]] = []
    if spb.host is None:
        out += [
            (("sparkplug", key), "set sparkplug.host too, or leave this out to use mqtt's")
            for key in OWN_BROKER_KEYS
            if getattr(spb, key) is not None
        ]
    for index, item in enumerate(spb.stock):
        if item not in items:
            out.append((("sparkplug", "stock", index), f"unknown item {item!r}"))
    for code in config.work_centers:
        if not DEVICE_ID.fullmatch(code):
            out.append(
                (
                    ("work_centers", code),
                    f"{code!r} cannot be a Sparkplug device id (sparkplug: is on): no '+',"
                    " '/', '#' or spaces, at most 64 characters",
                )
            )
    return out


def node_changed(old: LinesideConfig, new: LinesideConfig) -> bool:
    """Whether a reload changes what the node is made from (then it starts a new session)."""

    def part(cfg: LinesideConfig) -> tuple[object, ...]:
        uses_mqtt = cfg.sparkplug is not None and cfg.sparkplug.host is None
        return (cfg.sparkplug, cfg.work_centers, cfg.mqtt if uses_mqtt else None)

    return part(old) != part(new)
