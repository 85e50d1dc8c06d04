"""docs/mqtt.md and docs/asyncapi.yaml agree with the schemas: every example in the prose
validates against its schema, and the AsyncAPI document names every topic and schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from lineside.agent.sync.contract import Contract
from lineside.agent.sync.payloads import COMMAND_NAMES

REPO = Path(__file__).resolve().parents[2]
MQTT_MD = REPO / "docs" / "mqtt.md"
ASYNCAPI = REPO / "docs" / "asyncapi.yaml"
SCHEMAS = REPO / "lineside" / "schemas"
EXAMPLE = re.compile(r"<!-- example: ([\w.]+) -->\n```json\n(.*?)\n```", re.S)


def examples() -> list[tuple[str, Any]]:
    return [(name, json.loads(body)) for name, body in EXAMPLE.findall(MQTT_MD.read_text())]


def test_every_example_in_the_contract_fits_its_schema() -> None:
    found = examples()
    contract = Contract()
    for name, data in found:
        assert contract.errors(name, data) == [], (name, data)
    names = {name for name, _ in found}
    assert {"tx", "alert", "status", "stock", "reply"} <= names
    assert {f"cmd.{n}" for n in COMMAND_NAMES} | {"cmd.replay", "reply.replay"} <= names


def test_every_schema_file_is_documented_and_described() -> None:
    text = MQTT_MD.read_text()
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        assert schema.get("description"), path.name
        name = path.stem
        assert f"example: {name} -->" in text, f"no example of {name} in docs/mqtt.md"


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_asyncapi_document_covers_every_topic_and_its_refs_resolve() -> None:
    doc = yaml.safe_load(ASYNCAPI.read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"].rsplit("/{gateway}/", 1)[1] for c in doc["channels"].values()}
    assert addresses == {
        "tx", "alerts", "status", "stock", "cmd/{name}", "reply/{name}", "cmd/replay",
        "reply/replay",
    }
    assert doc["components"]["parameters"]["name"]["enum"] == list(COMMAND_NAMES)
    files = set()
    for ref in refs(doc):
        if ref.startswith("#/"):
            node: Any = doc
            for part in ref[2:].split("/"):
                node = node[part]
        else:
            assert (ASYNCAPI.parent / ref).is_file(), ref
            files.add(Path(ref).name)
    assert files == {p.name for p in SCHEMAS.glob("*.json")}
    for name, op in doc["operations"].items():
        assert op["bindings"]["mqtt"]["qos"] == 1, name
        retained = op["channel"]["$ref"].rsplit("/", 1)[1] in ("status", "stock")
        assert op["bindings"]["mqtt"]["retain"] is retained, name
