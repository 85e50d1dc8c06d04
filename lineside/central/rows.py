"""A P/tx message as rows of lineside_transactions: pure, no I/O.

The checks are the contract's (required fields, their types, decimal strings, a known
kind, the shape of a time) and what PostgreSQL would otherwise fail a whole batch on (a
NUL in a text); fields a consumer does not know are ignored, as docs/mqtt.md asks. A
time of the right shape that is no time (month 13) is left to PostgreSQL, which refuses
that message alone (writer.py). Every transaction goes through one expression first
(_fast_row); only one that fails it is looked at field by field, for the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

KINDS = frozenset(
    ("backflush", "completion", "scrap", "measured", "receipt", "adjustment", "reversal")
)
# ASCII digits only: Python's \d also takes other scripts' digits.
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")
COLUMNS = (
    "id",
    "site",
    "gateway",
    "seq",
    "ts",
    "kind",
    "item",
    "location",
    "lot",
    "qty",
    "uom",
    "order",
    "work_center",
    "cost",
    "cause",
)
Row = tuple[Any, ...]  # in COLUMNS order


class Rejected(ValueError):
    """A message that cannot be landed as it is: kept in lineside_rejected with this reason."""


@dataclass(frozen=True, slots=True)
class TxMessage:
    site: str
    gateway: str
    seq: int
    digest: bytes  # sha256 of the payload: a repeat must have the same bytes
    rows: tuple[Row, ...]


def gateway_of(topic: str, prefix: str) -> tuple[str, str, str] | None:
    """(site, gateway, kind) of a topic P/kind under prefix; kind 'tx', 'status' or
    'reply/NAME'. None for any other topic."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) == 3 and parts[2] in ("tx", "status"):
        return parts[0], parts[1], parts[2]
    if len(parts) == 4 and parts[2] == "reply":
        return parts[0], parts[1], f"reply/{parts[3]}"
    return None


def parse_tx(site: str, gateway: str, payload: bytes) -> TxMessage:
    """The rows of one P/tx message from gateway at site; raises Rejected saying why not."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected("not a JSON object")
    seq = data.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 2**63:
        raise Rejected("seq: must be a whole number from 1")
    if data.get("gateway") != gateway:
        raise Rejected(f"gateway: {data.get('gateway')!r} on the topic of gateway {gateway!r}")
    txs = data.get("transactions")
    if not isinstance(txs, list) or not txs:
        raise Rejected("transactions: must be a list of at least one transaction")
    clean = b"\\u0000" not in payload
    rows = tuple(
        _fast_row(site, gateway, seq, tx, clean) or _row(site, gateway, seq, tx, index)
        for index, tx in enumerate(txs)
    )
    return TxMessage(site, gateway, seq, hashlib.sha256(payload).digest(), rows)


def _fast_row(site: str, gateway: str, seq: int, tx: Any, clean: bool) -> Row | None:
    """The row of a transaction that is plainly good, in one expression (this runs for
    every transaction); None: let _row look closer, find what is wrong and say so.

    clean: the message holds no escaped NUL (JSON's only way to carry one)."""
    try:
        tx_id, ts, kind, item, location = (
            tx["id"], tx["ts"], tx["kind"], tx["item"], tx["location"]
        )  # fmt: skip
        lot, qty, uom, order, work_center = (
            tx["lot"], tx["qty"], tx["uom"], tx["order"], tx["work_center"]
        )  # fmt: skip
        cost, cause = tx["cost"], tx["cause"]
    except (KeyError, TypeError):
        return None
    good = (
        clean
        and type(tx_id) is str and tx_id != ""
        and type(item) is str and item != ""
        and type(location) is str and location != ""
        and type(uom) is str and uom != ""
        and (lot is None or type(lot) is str)
        and (order is None or type(order) is str)
        and (work_center is None or type(work_center) is str)
        and (cause is None or type(cause) is str)
        and kind in KINDS
        and type(ts) is str and TIME.fullmatch(ts) is not None
        and type(qty) is str and DECIMAL.fullmatch(qty) is not None
        and type(cost) is str and DECIMAL.fullmatch(cost) is not None
    )  # fmt: skip
    if not good or len(qty) > 100 or len(cost) > 100:
        return None
    return (
        tx_id, site, gateway, seq, ts, kind, item, location, lot, qty, uom, order,
        work_center, cost, cause,
    )  # fmt: skip


def _row(site: str, gateway: str, seq: int, tx: Any, index: int) -> Row:
    where = f"transactions[{index}]"
    if not isinstance(tx, dict):
        raise Rejected(f"{where}: not an object")
    kind = tx.get("kind")
    if kind not in KINDS:
        raise Rejected(f"{where}.kind: {kind!r} is not one of {', '.join(sorted(KINDS))}")
    ts = _text(tx, "ts", where)
    # The pattern only: a time that matches it but is none (month 13) is refused by
    # PostgreSQL, and then this message alone is rejected (writer.py).
    if not TIME.fullmatch(ts):
        raise Rejected(f"{where}.ts: {ts!r} is not an ISO 8601 UTC time")
    return (
        _text(tx, "id", where),
        site,
        gateway,
        seq,
        ts,
        kind,
        _text(tx, "item", where),
        _text(tx, "location", where),
        _text(tx, "lot", where, optional=True),
        _decimal(tx, "qty", where),
        _text(tx, "uom", where),
        _text(tx, "order", where, optional=True),
        _text(tx, "work_center", where, optional=True),
        _decimal(tx, "cost", where),
        _text(tx, "cause", where, optional=True),
    )


def _text(tx: dict[str, Any], key: str, where: str, optional: bool = False) -> Any:
    value = tx.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not value and not optional):
        raise Rejected(f"{where}.{key}: must be a non-empty string")
    if "\x00" in value:
        raise Rejected(f"{where}.{key}: holds a NUL (PostgreSQL text cannot)")
    return value


def _decimal(tx: dict[str, Any], key: str, where: str) -> str:
    value = tx.get(key)
    if not isinstance(value, str) or len(value) > 100 or not DECIMAL.fullmatch(value):
        raise Rejected(f'{where}.{key}: {value!r} is not a decimal string such as "12.5"')
    return value
