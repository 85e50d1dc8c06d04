"""A Sparkplug host application for tests, with its own decoding of Tahu's sparkplug_b.proto.

It does not use the protobuf package (which lineside encodes with): it reads the protobuf
wire format itself, by the field numbers of sparkplug_b.proto, so that a payload lineside
built wrongly cannot be read back "right" by the same library. It also encodes the one
command a host sends here (NCMD Node Control/Rebirth) and the STATE of a primary host.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.broker import Consumer, wait_until

# sparkplug_b.proto, enum DataType
DATATYPES = {
    1: "Int8", 2: "Int16", 3: "Int32", 4: "Int64", 5: "UInt8", 6: "UInt16", 7: "UInt32",
    8: "UInt64", 9: "Float", 10: "Double", 11: "Boolean", 12: "String", 13: "DateTime",
    14: "Text", 15: "UUID", 16: "DataSet", 17: "Bytes", 18: "File", 19: "Template",
}
SIGNED_BITS = {"Int8": 8, "Int16": 16, "Int32": 32, "Int64": 64}
METRIC_STRINGS = {1: "name", 15: "string_value"}
METRIC_VARINTS = {2: "alias", 3: "timestamp", 4: "datatype", 7: "is_null", 10: "int_value",
                  11: "long_value", 14: "boolean_value"}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) of one message, in order."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire} of field {number}")
        out.append((number, wire, value))
    return out


def decode_metric(data: bytes) -> dict[str, Any]:
    metric: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        if number in METRIC_STRINGS:
            metric[METRIC_STRINGS[number]] = raw.decode("utf-8")
        elif number in METRIC_VARINTS:
            metric[METRIC_VARINTS[number]] = raw
        elif number == 12:
            metric["float_value"] = struct.unpack("<f", raw)[0]
        elif number == 13:
            metric["double_value"] = struct.unpack("<d", raw)[0]
    if "datatype" in metric:
        metric["type"] = DATATYPES.get(metric["datatype"], f"?{metric['datatype']}")
    metric["is_null"] = bool(metric.get("is_null", 0))
    values = [k for k in metric if k.endswith("_value")]
    assert len(values) <= 1, f"more than one value in a metric: {metric}"
    metric["value"] = metric[values[0]] if values else None
    if "boolean_value" in metric:
        metric["value"] = bool(metric["value"])
    return metric


def decode_payload(data: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = {"metrics": []}
    for number, _, raw in _fields(data):
        if number == 1:
            payload["timestamp"] = raw
        elif number == 2:
            payload["metrics"].append(decode_metric(raw))
        elif number == 3:
            payload["seq"] = raw
    return payload


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len(number: int, body: bytes) -> bytes:
    return _key(number, 2) + _encode_varint(len(body)) + body


def rebirth_request(ts_ms: int | None = None, value: bool = True) -> bytes:
    """An NCMD payload: Node Control/Rebirth = value (Boolean)."""
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    metric = (
        _len(1, b"Node Control/Rebirth")
        + _key(3, 0) + _encode_varint(ts)
        + _key(4, 0) + _encode_varint(11)
        + _key(14, 0) + _encode_varint(int(value))
    )
    return _key(1, 0) + _encode_varint(ts) + _len(2, metric)


def state_payload(online: bool, ts_ms: int) -> bytes:
    return json.dumps({"online": online, "timestamp": ts_ms}).encode()


@dataclass
class SpbMessage:
    topic: str
    kind: str
    node: str
    device: str | None
    payload: dict[str, Any]
    retained: bool = False
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # by name


class SparkplugHost:
    """Subscribes to spBv1.0/#, decodes everything, resolves aliases as a host would."""

    def __init__(self, port: int, group: str) -> None:
        self.port = port
        self.group = group
        self.consumer = Consumer(port, ["spBv1.0/#"])

    def start(self) -> SparkplugHost:
        self.consumer.start()
        return self

    def stop(self) -> None:
        self.consumer.stop()

    def messages(self, node: str | None = None) -> list[SpbMessage]:
        """Every message of the edge nodes so far, decoded (commands, which hosts send, left
        out); DATA metrics named through their birth's alias."""
        with self.consumer.lock:
            raw = list(self.consumer.messages)
        out: list[SpbMessage] = []
        aliases: dict[tuple[str, int], str] = {}
        for topic, body, retained in raw:
            parts = topic.split("/")
            if parts[0] != "spBv1.0" or parts[1] == "STATE" or parts[1] != self.group:
                continue
            kind, edge = parts[2], parts[3]
            if kind in ("NCMD", "DCMD") or (node is not None and edge != node):
                continue
            msg = SpbMessage(topic, kind, edge, parts[4] if len(parts) > 4 else None,
                             decode_payload(body), retained)
            for metric in msg.payload["metrics"]:
                if kind.endswith("BIRTH") and "alias" in metric:
                    aliases[(edge, metric["alias"])] = metric["name"]
                name = metric.get("name") or aliases.get((edge, metric.get("alias", -1)))
                metric["resolved"] = name
                if name is not None:
                    msg.metrics[name] = metric
            out.append(msg)
        return out

    def of(self, kind: str, node: str | None = None) -> list[SpbMessage]:
        return [m for m in self.messages(node) if m.kind == kind]

    def wait(self, kind: str, count: int = 1, node: str | None = None,
             timeout_s: float = 20) -> list[SpbMessage]:
        wait_until(lambda: len(self.of(kind, node)) >= count, timeout_s,
                   f"{count} {kind} message(s)")
        return self.of(kind, node)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=f"spb-host-pub-{time.monotonic_ns()}")
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        try:
            client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()

    def rebirth(self, node: str) -> None:
        self.publish(f"spBv1.0/{self.group}/NCMD/{node}", rebirth_request())


def bdseq(message: SpbMessage) -> int:
    return int(message.metrics["bdSeq"]["value"])


def typed_value(metric: dict[str, Any]) -> Any:
    """The value as its datatype means it (signed integers from two's complement)."""
    value = metric["value"]
    bits = SIGNED_BITS.get(metric.get("type", ""))
    if bits and value is not None and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value
