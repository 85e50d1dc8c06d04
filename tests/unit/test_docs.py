"""Every CLI command and option, and every config key, is documented (as sqlite-utils does).

- docs/cli.md has a heading "`lineside COMMAND [SUBCOMMAND]`" for every command the
  parser knows, and every option of that command appears in its section.
- docs/configuration.md has a heading naming every part of the config (a section such as
  "`mqtt.tls`", or a driver such as "`driver: modbus_rtu`"), and every key of that part
  appears as `key` in its section.
- config/example.yaml sets every key of every part at least once.
"""

from __future__ import annotations

import argparse
import re
import types
import typing
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from lineside.agent.cli import build_parser
from lineside.agent.config import LinesideConfig

REPO = Path(__file__).resolve().parents[2]
CLI_MD = REPO / "docs" / "cli.md"
CONFIG_MD = REPO / "docs" / "configuration.md"
EXAMPLE = REPO / "config" / "example.yaml"
HEADING = re.compile(r"^(#+) (.*)$")


def section(markdown: str, marker: str) -> str | None:
    """The text under the first heading that contains marker, up to the next heading of the
    same or a higher level (so a section includes its subsections)."""
    lines = markdown.splitlines()
    for start, line in enumerate(lines):
        heading = HEADING.match(line)
        if heading and marker in heading[2]:
            level = len(heading[1])
            body = []
            for text in lines[start + 1 :]:
                nxt = HEADING.match(text)
                if nxt and len(nxt[1]) <= level:
                    break
                body.append(text)
            return "\n".join(body)
    return None


# -- the command line -------------------------------------------------------------------


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def options(parser: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.option_strings:
            out += action.option_strings
        else:
            out.append(str(action.metavar or action.dest))
    return out


COMMANDS = [(path, parser) for path, parser in commands(build_parser()) if path]


def test_the_parser_has_commands() -> None:
    assert {path[0] for path, _ in COMMANDS} >= {"check", "stock", "tx", "complete", "report"}


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS])
def test_cli_command_is_documented(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    docs = CLI_MD.read_text(encoding="utf-8")
    name = "lineside " + " ".join(path)
    body = section(docs, f"`{name}`")
    assert body is not None, f"docs/cli.md needs a heading with `{name}`"
    for option in options(parser):
        assert option in body, f"docs/cli.md, section `{name}`: option {option} is missing"


def test_global_options_are_documented() -> None:
    docs = CLI_MD.read_text(encoding="utf-8")
    for option in options(build_parser()):
        assert option in docs
    for word in ("LINESIDE_CONFIG", "--json", "--request-id", "exit"):
        assert word in docs


# -- the config -------------------------------------------------------------------------

PLACEHOLDER = {
    "items": "ITEM",
    "boms": "ITEM",
    "work_centers": "WC",
    "meters": "METER",
    "devices": "DEVICE",
    "points": "POINT",
}


def _models_in(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """The models an annotation holds, each with how: 'one', 'dict' (values) or 'list'."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    if origin is dict:
        return [("dict", m) for _, m in _models_in(typing.get_args(annotation)[1])]
    if origin is list:
        return [("list", m) for _, m in _models_in(typing.get_args(annotation)[0])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("one", annotation)]
    return []


def _driver(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("driver")
    if field is None:
        return None
    (value,) = typing.get_args(field.annotation)
    return str(value)


def _child_path(path: str, field: str, how: str) -> str:
    base = f"{path}.{field}" if path else field
    if how == "dict":
        return f"{base}.{PLACEHOLDER.get(field, 'NAME')}"
    if how == "list":
        return f"{base}[]"
    return base


def marker(path: str, model: type[BaseModel]) -> str:
    """What the heading of a model's section in docs/configuration.md contains."""
    driver = _driver(model)
    return f"`driver: {driver}`" if driver else f"`{path}`"


def config_parts(
    model: type[BaseModel] = LinesideConfig, path: str = ""
) -> dict[str, tuple[type[BaseModel], set[str]]]:
    """Every part of the config: its marker, its model and its keys."""
    parts: dict[str, tuple[type[BaseModel], set[str]]] = {}
    if path:
        parts[marker(path, model)] = (model, set(model.model_fields))
    for name, field in model.model_fields.items():
        for how, sub in _models_in(field.annotation):
            parts.update(config_parts(sub, _child_path(path, name, how)))
    return parts


PARTS = config_parts()


def test_config_parts_are_found() -> None:
    assert "`gateway`" in PARTS and "`mqtt.tls`" in PARTS
    assert "`boms.ITEM.components[]`" in PARTS
    assert "`devices.DEVICE.points.POINT`" in PARTS
    assert {"`driver: modbus_tcp`", "`driver: modbus_rtu`"} <= set(PARTS)
    assert {"`driver: serial_scanner`", "`driver: ascii_meter`"} <= set(PARTS)


def test_every_section_has_a_heading() -> None:
    docs = CONFIG_MD.read_text(encoding="utf-8")
    for name in LinesideConfig.model_fields:
        assert section(docs, f"`{name}`") is not None, f"no heading for section {name}"


@pytest.mark.parametrize("part", sorted(PARTS))
def test_config_keys_are_documented(part: str) -> None:
    docs = CONFIG_MD.read_text(encoding="utf-8")
    body = section(docs, part)
    assert body is not None, f"docs/configuration.md needs a heading with {part}"
    _, keys = PARTS[part]
    missing = sorted(k for k in keys if f"`{k}`" not in body)
    assert not missing, f"docs/configuration.md, {part}: keys {missing} are not documented"


def keys_set(
    data: Any, model: type[BaseModel] = LinesideConfig, path: str = ""
) -> dict[str, set[str]]:
    """For each part, the keys that data (a parsed config) sets somewhere."""
    found: dict[str, set[str]] = {}
    if not isinstance(data, dict):
        return found
    if path:
        found.setdefault(marker(path, model), set()).update(data)
    for name, value in data.items():
        field = model.model_fields.get(name)
        if field is None:
            continue
        for how, sub in _models_in(field.annotation):
            driver = _driver(sub)
            if how == "dict" and isinstance(value, dict):
                entries = list(value.values())
            elif how == "list" and isinstance(value, list):
                entries = value
            else:
                entries = [value]
            for entry in entries:
                if driver and (not isinstance(entry, dict) or entry.get("driver") != driver):
                    continue
                for part, keys in keys_set(entry, sub, _child_path(path, name, how)).items():
                    found.setdefault(part, set()).update(keys)
    return found


def test_example_sets_every_key() -> None:
    found = keys_set(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    missing = {
        part: sorted(keys - found.get(part, set()))
        for part, (_, keys) in PARTS.items()
        if keys - found.get(part, set())
    }
    assert not missing, f"config/example.yaml does not set: {missing}"
    top = set(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    assert top == set(LinesideConfig.model_fields)


def test_example_explains_every_key() -> None:
    """Every key line of the example carries a comment, on the line or just above."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    bare = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#") or "#" in line:
            continue
        before = lines[number - 2].strip() if number > 1 else ""
        if not before.startswith("#"):
            bare.append(f"{number}: {line}")
    assert not bare, "lines of config/example.yaml without a comment:\n" + "\n".join(bare)


# -- bounds of numbers ------------------------------------------------------------------


def _number_type(annotation: Any) -> type | None:
    """int or Decimal when a key holds a number (optional or not), else None."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation in (int, float, Decimal):
        return annotation  # type: ignore[no-any-return]
    return None


def _bounds(info: Any) -> tuple[Any, Any]:
    low = high = None
    for meta in info.metadata:
        low = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else low
        low = getattr(meta, "gt", None) if getattr(meta, "gt", None) is not None else low
        high = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else high
        high = getattr(meta, "lt", None) if getattr(meta, "lt", None) is not None else high
    return low, high


NUMBERS = [
    (part, key, info)
    for part, (model, _) in sorted(PARTS.items())
    for key, info in model.model_fields.items()
    if _number_type(info.annotation) is not None
]


def test_numbers_are_found() -> None:
    keys = {(part, key) for part, key, _ in NUMBERS}
    assert ("`mqtt`", "retention_days") in keys and ("`driver: modbus_rtu`", "unit") in keys


@pytest.mark.parametrize(("part", "key", "info"), NUMBERS, ids=[f"{p}.{k}" for p, k, _ in NUMBERS])
def test_every_number_has_documented_bounds(part: str, key: str, info: Any) -> None:
    """A number without an upper bound once killed a thread (retention_days: 1000000)."""
    low, high = _bounds(info)
    assert low is not None and high is not None, f"{part} {key}: needs a lower and upper bound"
    body = section(CONFIG_MD.read_text(encoding="utf-8"), part)
    assert body is not None
    row = next((r for r in body.splitlines() if r.startswith(f"| `{key}` |")), "")
    digits = re.sub(r"[,_ ]", "", row)
    assert str(high) in digits, f"docs/configuration.md, {part} {key}: say the limit {high}"
