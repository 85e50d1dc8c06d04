"""Commands from central systems on P/cmd/{name}: checked, mapped to command objects, answered.

Runs on the sync worker thread, never on the network loop. Every refusal leaves the ledger
untouched: parsing and validation happen before the Ledger is called, and the Ledger applies
a command whole or not at all.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from lineside.agent.commands import (
    CloseOrder,
    Command,
    Complete,
    Count,
    PutBom,
    PutItem,
    Receive,
    Rejected,
    Result,
    Reverse,
    StartOrder,
)
from lineside.agent.inputs import parse_day, parse_quantity
from lineside.agent.sync.contract import Contract
from lineside.agent.sync.payloads import COMMAND_NAMES, Topics, reply

log = logging.getLogger("lineside.sync.commands")

MAX_COMMAND_BYTES = 64 * 1024
# The deepest command (bom.put: object, components list, component) needs 3 levels. Checked
# before parsing: Python's json recurses per level, and 30,000 levels fit in 64 KiB.
MAX_NESTING = 16
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")
# Enough to find the request_id of a payload we will not parse (too big, or broken JSON).
_SNIFF_BYTES = 4096
_REQUEST_ID = re.compile(rb'"request_id"\s*:\s*"((?:[^"\\\r\n]|\\.){1,128})"')


class LedgerProtocol(Protocol):
    """What sync needs from the ledger (lineside.agent.handlers.Ledger)."""

    def execute(self, command: Command) -> Result: ...

    def stock_snapshot(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class Parsed:
    """A command ready to execute, or why not; request_id None when none could be read."""

    name: str
    request_id: str | None
    command: Command | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


def command_key(request_id: str) -> str:
    """The idempotency key: the same request_id is applied once."""
    return f"mqtt:{request_id}"


class CommandParser:
    def __init__(
        self,
        clock: Callable[[], datetime],
        contract: Contract | None = None,
        max_bytes: int = MAX_COMMAND_BYTES,
    ) -> None:
        self.clock = clock
        self.contract = contract or Contract()
        self.max_bytes = max_bytes

    def parse(self, name: str, payload: bytes) -> Parsed:
        if len(payload) > self.max_bytes:
            return Parsed(
                name,
                sniff_request_id(payload),
                error=f"payload of {len(payload)} bytes is over the {self.max_bytes}-byte limit",
            )
        if nesting(payload) > MAX_NESTING:
            return Parsed(
                name,
                sniff_request_id(payload),
                error=f"payload is nested more than {MAX_NESTING} levels deep",
            )
        try:
            data = json.loads(payload.decode("utf-8"), object_pairs_hook=_unique_keys)
        except UnicodeDecodeError:
            return Parsed(name, sniff_request_id(payload), error="payload is not UTF-8 text")
        except json.JSONDecodeError as exc:
            return Parsed(
                name, sniff_request_id(payload), error=f"payload is not valid JSON: {exc}"
            )
        except _DuplicateKey as exc:
            return Parsed(name, sniff_request_id(payload), error=str(exc))
        if not isinstance(data, dict):
            return Parsed(name, None, error="payload must be a JSON object")
        raw_id = data.get("request_id")
        request_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 128 else None
        if name not in COMMAND_NAMES:
            return Parsed(
                name,
                request_id,
                error=f"unknown command {name!r}; expected one of {', '.join(COMMAND_NAMES)}",
            )
        errors = self.contract.errors(f"cmd.{name}", data)
        if errors:
            return Parsed(name, request_id, error="; ".join(errors))
        assert request_id is not None  # the schema requires it
        try:
            command = _BUILDERS[name](data, command_key(request_id), self.clock())
        except ValueError as exc:
            return Parsed(name, request_id, error=str(exc))
        return Parsed(name, request_id, command=command)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are unique: a repeated key is refused, not the last one taken."""
    data = dict(pairs)
    if len(data) != len(pairs):
        keys = [key for key, _ in pairs]
        repeated = next(key for n, key in enumerate(keys) if key in keys[:n])
        raise _DuplicateKey(f"duplicate key {repeated!r} in the payload")
    return data


def nesting(payload: bytes) -> int:
    """How deep lists and objects nest in a JSON text (brackets inside strings not counted)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub(b"", payload)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def sniff_request_id(payload: bytes) -> str | None:
    """The request_id of a payload that cannot be parsed whole, if one is plainly there."""
    found = _REQUEST_ID.search(payload[:_SNIFF_BYTES])
    if found is None:
        return None
    try:
        value = json.loads(b'"' + found.group(1) + b'"')
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def handle(parsed: Parsed, ledger: LedgerProtocol, topics: Topics) -> Outgoing | None:
    """Execute a parsed command; the reply to publish, or None when no request_id was read."""
    if parsed.request_id is None:
        log.warning(
            "command on %s refused, no reply possible (no request_id): %s",
            topics.cmd(parsed.name),
            parsed.error or "missing request_id",
        )
        return None
    ok, error = _outcome(parsed, ledger)
    if ok:
        log.info("command %s %s applied", parsed.name, parsed.request_id)
    else:
        log.warning("command %s %s refused: %s", parsed.name, parsed.request_id, error)
    return Outgoing(topics.reply(parsed.name), reply(parsed.request_id, ok, error))


def _outcome(parsed: Parsed, ledger: LedgerProtocol) -> tuple[bool, str | None]:
    if parsed.command is None:
        return False, parsed.error or "refused"
    try:
        result = ledger.execute(parsed.command)
    except Rejected as exc:
        return False, str(exc)
    except Exception as exc:  # the agent keeps running: answer, log the trace once
        log.exception("command %s %s failed", parsed.name, parsed.request_id)
        return False, f"internal error: {type(exc).__name__}: {exc}"
    used_for = result.detail.get("used_for")
    if used_for is not None:
        name = NAME_OF.get(used_for, used_for)
        return False, f"request_id {parsed.request_id} was used for {name}"
    return result.ok, None if result.ok else (result.error or "refused")


# -- payload -> command ------------------------------------------------------------------
def decimal(value: str, field: str) -> Decimal:
    # The schema checked the pattern; fullmatch also refuses the trailing newline that
    # a JSON Schema '$' lets through, and non-ASCII digits.
    return parse_quantity(value, field)


Builder = Callable[[dict[str, Any], str, datetime], Command]


def _stock_fields(d: dict[str, Any]) -> dict[str, Any]:
    """A receipt and a count say the same: item, qty at a location, maybe a lot."""
    return {
        "item": d["item"],
        "qty": decimal(d["qty"], "qty"),
        "location": d["location"],
        "lot": d.get("lot"),
    }


def _count(d: dict[str, Any], key: str, ts: datetime) -> Command:
    return Count(key=key, ts=ts, **_stock_fields(d))


def _receipt(d: dict[str, Any], key: str, ts: datetime) -> Command:
    """A count's fields, and the lot's expiry date when the label gives one."""
    expiry = d.get("expiry")
    day = None if expiry is None else parse_day(expiry)
    return Receive(key=key, ts=ts, **_stock_fields(d), expiry=day)


def _order_start(d: dict[str, Any], key: str, ts: datetime) -> Command:
    qty = d.get("qty")
    return StartOrder(
        key=key,
        ts=ts,
        order=d["order"],
        work_center=d["work_center"],
        item=d["item"],
        qty=None if qty is None else decimal(qty, "qty"),
    )


def _order_close(d: dict[str, Any], key: str, ts: datetime) -> Command:
    return CloseOrder(key=key, ts=ts, order=d["order"])


def _reverse(d: dict[str, Any], key: str, ts: datetime) -> Command:
    return Reverse(key=key, ts=ts, tx_id=d["tx_id"])


def _production(d: dict[str, Any], key: str, ts: datetime) -> Command:
    return Complete(
        key=key,
        ts=ts,
        cause=f"production command ({d['request_id']})",
        work_center=d["work_center"],
        good=int(d.get("good", 0)),  # the schema lets 2.0 through as a whole number
        scrap=int(d.get("scrap", 0)),
        stage=d.get("stage"),
        reason=d.get("reason"),
    )


_ITEM_KEYS = (
    "uom",
    "decimals",
    "cost",
    "conversion_cost",
    "phantom",
    "gtin",
    "removal",
    "min_shelf_life_days",
)
_DECIMAL_KEYS = ("cost", "conversion_cost", "per", "qty", "scrap_pct", "min_shelf_life_days")


def _item_put(d: dict[str, Any], key: str, ts: datetime) -> Command:
    data = {k: d[k] for k in _ITEM_KEYS if k in d}
    _check_decimals(data, "")
    return PutItem(key=key, ts=ts, item=d["item"], data=data)


def _bom_put(d: dict[str, Any], key: str, ts: datetime) -> Command:
    data: dict[str, Any] = {"components": [dict(c) for c in d["components"]]}
    if "per" in d:
        data["per"] = d["per"]
    _check_decimals(data, "")
    for index, comp in enumerate(data["components"]):
        _check_decimals(comp, f"components[{index}].")
    return PutBom(key=key, ts=ts, item=d["item"], data=data)


def _check_decimals(data: dict[str, Any], prefix: str) -> None:
    for name in _DECIMAL_KEYS:
        if isinstance(data.get(name), str):
            decimal(data[name], prefix + name)


# The command name of each kind of command the ledger remembers (events.kind).
NAME_OF = {
    "Receive": "receipt",
    "Count": "count",
    "StartOrder": "order.start",
    "CloseOrder": "order.close",
    "Reverse": "reverse",
    "PutItem": "item.put",
    "PutBom": "bom.put",
    "Complete": "production",
}

_BUILDERS: dict[str, Builder] = {
    "receipt": _receipt,
    "count": _count,
    "order.start": _order_start,
    "order.close": _order_close,
    "reverse": _reverse,
    "item.put": _item_put,
    "bom.put": _bom_put,
    "production": _production,
}
