"""`lineside tail`: watch the gateway's topics as a central system would, and check them.

It de-duplicates transactions by id, checks that P/tx seqs are gapless, and reports
gaps and repeats (and whether a repeat has the same bytes, as it must).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, TextIO

import paho.mqtt.client as mqtt

from lineside.agent.alerts import alert_fields
from lineside.agent.config import LoadedConfig
from lineside.agent.sync.client import (
    SyncSetupError,
    explain,
    explain_refusal,
    new_client,
    settings_from,
    start_connect,
)
from lineside.agent.sync.contract import Contract
from lineside.agent.sync.payloads import Topics

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
MAX_IDS = 1_000_000  # transaction ids remembered for de-duplication
MAX_SEQ_DIGESTS = 100_000


@dataclass
class TailEvent:
    """One received message, classified: what a consumer would do with it."""

    topic: str
    type: str  # tx, alert, status, reply, invalid
    data: Any = None
    seq: int | None = None
    check: str = "ok"  # ok, first, gap, repeat, repeat-different, invalid
    missing: tuple[int, int] | None = None
    new: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"topic": self.topic, "type": self.type, "check": self.check}
        if self.type == "tx":
            out.update(seq=self.seq, transactions=self.new, duplicates=self.duplicates)
            if self.missing is not None:
                out["missing"] = list(self.missing)
            if self.error is not None:
                out["error"] = self.error
        elif self.error is not None:
            out["error"] = self.error
        else:
            out["payload"] = self.data
        return out


class TailChecker:
    """Consumer-side checks: de-duplication by transaction id, seq continuity per gateway."""

    def __init__(self, topics: Topics, max_ids: int = MAX_IDS) -> None:
        self.topics = topics
        self.max_ids = max_ids
        self.gaps = 0
        self.repeats = 0
        self.messages = 0
        self.transactions = 0
        self.duplicates = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_seq: dict[str, int] = {}
        self._digests: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._contract = Contract()

    def feed(self, topic: str, payload: bytes) -> TailEvent:
        self.messages += 1
        kind = self._kind(topic)
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return TailEvent(topic, "invalid", check="invalid", error=f"not JSON: {exc}")
        if kind != "tx":
            return TailEvent(topic, kind, data)
        errors = self._contract.errors("tx", data)
        if errors:  # not what the gateway sends: shown, never counted or de-duplicated
            seq = data.get("seq") if isinstance(data, dict) else None
            shown = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if errors[3:] else "")
            return TailEvent(
                topic,
                "tx",
                data,
                seq=seq if isinstance(seq, int) else None,
                check="invalid",
                error=f"does not fit the tx schema: {shown}",
            )
        return self._tx(topic, data, payload)

    def _kind(self, topic: str) -> str:
        t = self.topics
        if topic == t.tx:
            return "tx"
        if topic == t.alerts:
            return "alert"
        if topic == t.status:
            return "status"
        if topic.startswith(t.base + "/reply/"):
            return "reply"
        return "other"

    def _tx(self, topic: str, data: dict[str, Any], payload: bytes) -> TailEvent:
        gateway, seq = str(data.get("gateway")), int(data["seq"])
        event = TailEvent(topic, "tx", seq=seq)
        digest = hashlib.sha256(payload).digest()
        last = self._last_seq.get(gateway)
        if last is None:
            event.check = "first"
        elif seq == last + 1:
            event.check = "ok"
        elif seq > last + 1:
            event.check, event.missing = "gap", (last + 1, seq - 1)
            self.gaps += 1
        else:
            before = self._digests.get((gateway, seq))
            same = before is None or before == digest
            event.check = "repeat" if same else "repeat-different"
            self.repeats += 1
        self._last_seq[gateway] = max(seq, last or 0)
        self._remember_digest((gateway, seq), digest)
        for tx in data.get("transactions") or []:
            tx_id = str(tx.get("id")) if isinstance(tx, dict) else ""
            if tx_id in self._seen:
                event.duplicates += 1
                continue
            self._remember_id(tx_id)
            event.new.append(tx)
        self.transactions += len(event.new)
        self.duplicates += event.duplicates
        return event

    def summary(self) -> str:
        return (
            f"{self.messages} messages, {self.transactions} new transactions,"
            f" {self.duplicates} duplicates dropped, {self.gaps} gaps, {self.repeats}"
            " repeated seqs"
        )

    def _remember_id(self, tx_id: str) -> None:
        self._seen[tx_id] = None
        if len(self._seen) > self.max_ids:
            self._seen.popitem(last=False)

    def _remember_digest(self, key: tuple[str, int], digest: bytes) -> None:
        self._digests.setdefault(key, digest)
        if len(self._digests) > MAX_SEQ_DIGESTS:
            self._digests.popitem(last=False)


def human(event: TailEvent) -> str:
    """One event as lines for a person."""
    if event.type == "tx":
        return _human_tx(event)
    if event.error is not None:
        return f"INVALID {event.topic}: {event.error}"
    data = event.data if isinstance(event.data, dict) else {"payload": event.data}
    if event.type == "alert":
        rest = alert_fields(data, omit=("kind", "ts"))
        return f"ALERT {data.get('kind')} {data.get('ts')} {rest}".rstrip()
    if event.type == "status":
        state = "online" if data.get("online") else "OFFLINE"
        return f"status {state} version={data.get('version')} ts={data.get('ts')}"
    if event.type == "reply":
        name = event.topic.rsplit("/reply/", 1)[-1]
        outcome = "ok" if data.get("ok") else f"refused: {data.get('error')}"
        return f"reply {name} {data.get('request_id')} {outcome}"
    return f"{event.topic} {json.dumps(data)}"


def _human_tx(event: TailEvent) -> str:
    head = f"tx seq={event.seq} {len(event.new)} new"
    if event.duplicates:
        head += f", {event.duplicates} already seen"
    lines = []
    if event.check == "gap" and event.missing is not None:
        lo, hi = event.missing
        lines.append(f"GAP: seq {lo}..{hi} missing" if hi > lo else f"GAP: seq {lo} missing")
    elif event.check == "repeat":
        lines.append(f"REPEAT: seq {event.seq} received again (identical content)")
    elif event.check == "repeat-different":
        lines.append(f"REPEAT: seq {event.seq} received again with DIFFERENT content")
    elif event.check == "invalid":
        return f"INVALID {event.topic} seq={event.seq}: {event.error}"
    lines.append(head)
    for tx in event.new:
        lot = f" lot={tx.get('lot')}" if tx.get("lot") else ""
        order = f" order={tx.get('order')}" if tx.get("order") else ""
        lines.append(
            f"  {tx.get('ts')} {tx.get('kind'):<10} {tx.get('item')} {tx.get('qty')}"
            f" {tx.get('uom')} @{tx.get('location')}{lot}{order} id={tx.get('id')}"
        )
    return "\n".join(lines)


def tail_main(
    config: LoadedConfig,
    as_json: bool,
    count: int | None,
    timeout_s: float | None,
    *,
    out: TextIO | None = None,
) -> int:
    """Subscribe to P/tx, P/alerts, P/status and P/reply/#; print and check what arrives.

    Stops once count new transactions (duplicates not counted) have arrived, after
    timeout_s seconds, or on Ctrl-C. Returns 0, 1 when the broker cannot be reached or
    the link is lost, 2 when the MQTT settings cannot be used.
    """
    stream = out or sys.stdout
    cfg = config.config
    topics = Topics(cfg.mqtt.topic_prefix, cfg.gateway.site, cfg.gateway.id)
    try:
        # Never the gateway's own id: that would take the agent's session over.
        settings = settings_from(config, f"lineside-tail-{cfg.gateway.id}-{uuid.uuid4().hex[:8]}")
    except SyncSetupError as exc:
        print(f"lineside tail: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    checker = TailChecker(topics)
    received = 0  # new transactions

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        event = checker.feed(message.topic, bytes(message.payload))
        received += len(event.new)
        text = json.dumps(event.to_json(), ensure_ascii=False) if as_json else human(event)
        print(text, file=stream, flush=True)

    client = new_client(settings, persistent=False)
    client.on_message = on_message
    error = _connect(client, settings, topics)
    if error is not None:
        print(f"lineside tail: {error}", file=sys.stderr)
        return EXIT_FAILED
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while count is None or received < count:
            if deadline is not None and time.monotonic() >= deadline:
                break
            if client.loop(0.1) != mqtt.MQTT_ERR_SUCCESS:
                print("lineside tail: lost the connection to the broker", file=sys.stderr)
                return EXIT_FAILED
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        # stderr, so that stdout stays JSON-only with --json
        print(f"lineside tail: {checker.summary()}", file=sys.stderr)
    return EXIT_OK


def _connect(client: mqtt.Client, settings: Any, topics: Topics) -> str | None:
    state: dict[str, Any] = {}
    client.on_connect = lambda c, u, f, reason, p: state.update(connack=reason)
    try:
        start_connect(client, settings, persistent=False)
    except (OSError, ValueError) as exc:
        return explain(exc, settings)
    deadline = time.monotonic() + 15
    while "connack" not in state:
        rc = client.loop(0.1)
        if "connack" in state:
            break
        if rc != mqtt.MQTT_ERR_SUCCESS or time.monotonic() > deadline:
            return explain("the broker closed the connection", settings)
    if state["connack"].is_failure:
        return explain_refusal(state["connack"], settings)
    for topic in (topics.tx, topics.alerts, topics.status, topics.reply_filter):
        client.subscribe(topic, qos=1)
    return None
