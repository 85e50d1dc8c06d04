"""The Sparkplug codec: its descriptor is the shipped .proto's, its bytes read right by a
decoder of its own (tests/sparkplug_host.py, no protobuf package), bad bytes refused."""

from __future__ import annotations

import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, text_format

from lineside.agent.sparkplug import codec
from lineside.agent.sparkplug.codec import DataType, Metric
from tests.sparkplug_host import decode_payload, rebirth_request, typed_value

PROTO_DIR = Path(str(files("lineside.agent.sparkplug").joinpath("vendor")))


def test_the_descriptor_is_protocs_of_the_shipped_proto(tmp_path: Path) -> None:
    protoc = shutil.which("protoc")
    assert protoc, "protoc is needed (apt-get install protobuf-compiler; .ci/run installs it)"
    out = tmp_path / "set.pb"
    subprocess.run(
        [protoc, f"--descriptor_set_out={out}", f"-I{PROTO_DIR}", "sparkplug_b.proto"],
        check=True,
        cwd=PROTO_DIR,
    )
    expected = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    shipped = text_format.Parse(
        (PROTO_DIR / codec.DESCRIPTOR_FILE).read_text(), descriptor_pb2.FileDescriptorSet()
    )
    assert shipped == expected, "run `make sparkplug-descriptor`"


def test_the_proto_keeps_its_licence_notice() -> None:
    head = (PROTO_DIR / "sparkplug_b.proto").read_text().splitlines()[:8]
    assert any("SPDX-License-Identifier: EPL-2.0" in line for line in head)
    assert (PROTO_DIR / "LICENSE-EPL-2.0.txt").read_text().startswith(
        "Eclipse Public License - v 2.0"
    )


def test_datatypes_are_the_protos() -> None:
    shipped = text_format.Parse(
        (PROTO_DIR / codec.DESCRIPTOR_FILE).read_text(), descriptor_pb2.FileDescriptorSet()
    )
    (enum,) = [e for f in shipped.file for e in f.enum_type if e.name == "DataType"]
    numbers = {v.name: v.number for v in enum.value}
    assert {t.name: int(t) for t in DataType} == {t.name: numbers[t.name] for t in DataType}


def test_a_birth_reads_back_with_every_value_in_its_field() -> None:
    metrics = [
        Metric("bdSeq", DataType.Int64, 255, 1000),
        Metric("Node Control/Rebirth", DataType.Boolean, False, 1000),
        Metric("Counters/Good", DataType.Int64, -5, 1001, alias=1),
        Metric("Held", DataType.UInt64, 2**40, 1001, alias=2),
        Metric("Count32", DataType.Int32, -1, 1001, alias=3),
        Metric("Age", DataType.Double, 1.25, 1002, alias=4),
        Metric("Order", DataType.String, "ORD-1 ü", 1002, alias=5),
        Metric("Nothing", DataType.String, None, 1002, alias=6),
    ]
    decoded = decode_payload(codec.encode(metrics, 999, 0, birth=True))
    assert decoded["seq"] == 0 and decoded["timestamp"] == 999
    got = {m["name"]: m for m in decoded["metrics"]}
    assert [m["name"] for m in decoded["metrics"]] == [m.name for m in metrics]
    assert got["bdSeq"]["type"] == "Int64" and got["bdSeq"]["long_value"] == 255
    assert "alias" not in got["bdSeq"] and "alias" not in got["Node Control/Rebirth"]
    assert got["Node Control/Rebirth"]["boolean_value"] == 0
    assert typed_value(got["Counters/Good"]) == -5 and got["Counters/Good"]["alias"] == 1
    assert got["Held"]["long_value"] == 2**40 and got["Held"]["type"] == "UInt64"
    assert got["Count32"]["int_value"] == 2**32 - 1 and typed_value(got["Count32"]) == -1
    assert got["Age"]["double_value"] == 1.25 and got["Age"]["type"] == "Double"
    assert got["Order"]["string_value"] == "ORD-1 ü"
    assert got["Nothing"]["is_null"] and got["Nothing"]["value"] is None
    assert all(m["timestamp"] >= 1000 for m in decoded["metrics"])


def test_data_carries_aliases_only_and_no_datatype() -> None:
    metrics = [Metric("Counters/Good", DataType.Int64, 7, 5, alias=9)]
    (metric,) = decode_payload(codec.encode(metrics, 6, 17, birth=False))["metrics"]
    assert metric == {
        "alias": 9, "timestamp": 5, "long_value": 7, "is_null": False, "value": 7,
    }


def test_a_death_has_no_seq() -> None:
    decoded = decode_payload(codec.encode([Metric("bdSeq", DataType.Int64, 3, 1)], 1, None,
                                          birth=True))
    assert "seq" not in decoded


def test_decodes_a_hosts_rebirth_request() -> None:
    (metric,) = codec.decode(rebirth_request(ts_ms=5))
    assert metric == codec.Received("Node Control/Rebirth", None, True)


@pytest.mark.parametrize("data", [b"\xff", b"\x12\x05ab", b"\x0a"])
def test_bytes_that_are_no_payload_are_refused(data: bytes) -> None:
    with pytest.raises(codec.PayloadError, match="not a Sparkplug B payload"):
        codec.decode(data)
