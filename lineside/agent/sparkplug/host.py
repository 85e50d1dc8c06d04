"""Topics, seq, and what a primary host application's STATE message means (pure)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

NAMESPACE = "spBv1.0"


@dataclass(frozen=True)
class Topics:
    group: str
    node: str

    def _node(self, kind: str) -> str:
        return f"{NAMESPACE}/{self.group}/{kind}/{self.node}"

    @property
    def nbirth(self) -> str:
        return self._node("NBIRTH")

    @property
    def ndeath(self) -> str:
        return self._node("NDEATH")

    @property
    def ndata(self) -> str:
        return self._node("NDATA")

    @property
    def ncmd(self) -> str:
        return self._node("NCMD")

    @property
    def dcmd_filter(self) -> str:
        return self._node("DCMD") + "/+"

    def dbirth(self, device: str) -> str:
        return f"{self._node('DBIRTH')}/{device}"

    def ddata(self, device: str) -> str:
        return f"{self._node('DDATA')}/{device}"

    @staticmethod
    def state(host_id: str) -> str:
        return f"{NAMESPACE}/STATE/{host_id}"


class Seq:
    """The node's message number: 0 for an NBIRTH, +1 per message after it, 255 -> 0."""

    def __init__(self) -> None:
        self._next = 0

    def birth(self) -> int:
        self._next = 1
        return 0

    def next(self) -> int:
        value = self._next
        self._next = (value + 1) % 256
        return value


class PrimaryHost:
    """The primary host's STATE as Sparkplug 3.0 says an edge node must judge it.

    An online STATE counts if its timestamp is not older than the last STATE counted; an
    offline one if it is not older than the last online one (an older death belongs to an
    earlier session of the host and is ignored). Before any STATE the host is offline.
    """

    def __init__(self) -> None:
        self.online = False
        self._last_ts: float | None = None
        self._online_ts: float | None = None

    def new_session(self) -> None:
        """A new connection: what the host said before may be out of date (its death may
        have passed while we were away); its retained STATE tells again at once."""
        self.online = False

    def update(self, payload: bytes) -> str | None:
        """'online' or 'offline' when the message counts, None when it is stale.

        Raises ValueError for a payload that is not the 3.0 JSON STATE.
        """
        online, ts = parse_state(payload)
        if online:
            if self._last_ts is not None and ts < self._last_ts:
                return None
            self._last_ts = self._online_ts = ts
            self.online = True
            return "online"
        if self._online_ts is not None and ts < self._online_ts:
            return None
        self._last_ts = ts if self._last_ts is None else max(self._last_ts, ts)
        self.online = False
        return "offline"


def parse_state(payload: bytes) -> tuple[bool, float]:
    """{"online": bool, "timestamp": ms since the epoch (a number)}; ValueError otherwise."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    online, ts = data.get("online"), data.get("timestamp")
    if not isinstance(online, bool):
        raise ValueError("'online' is not true or false")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise ValueError("'timestamp' is not a number of milliseconds")
    return online, float(ts)
