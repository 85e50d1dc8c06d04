"""The JSON Schemas of every payload in and out (lineside/schemas/*.json) and readable errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]

OUT_SCHEMAS = ("tx", "alert", "status", "stock", "reply")
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


def schema_text(name: str) -> str:
    """The schema file's text, e.g. name 'tx' or 'cmd.receipt'."""
    return resources.files("lineside").joinpath("schemas", f"{name}.json").read_text("utf-8")


def load_schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schema_text(name))
    return data


@dataclass
class Contract:
    """Validators built once per owner (no module-level cache: nothing global)."""

    _validators: dict[str, Any] = field(default_factory=dict)

    def validator(self, name: str) -> Any:
        found = self._validators.get(name)
        if found is None:
            schema = load_schema(name)
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            found = cls(schema)
            self._validators[name] = found
        return found

    def errors(self, name: str, instance: Any) -> list[str]:
        """Every reason instance does not fit schema name, for a person; [] when it fits."""
        found = sorted(self.validator(name).iter_errors(instance), key=_error_order)
        return [describe(e) for e in found]


def _error_order(error: Any) -> tuple[str, str]:
    return (where(error.absolute_path), str(error.validator))


def where(path: Any) -> str:
    """A JSON path as a person writes it: components[0].qty."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def describe(error: Any) -> str:
    """One validation error as 'path: what is wrong', without schema jargon."""
    path = where(error.absolute_path)
    prefix = f"{path}: " if path else ""
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "required" and isinstance(instance, dict):
        missing = [k for k in value if k not in instance]
        return f"{prefix}missing required key {', '.join(repr(k) for k in missing)}"
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in known)
        allowed = ", ".join(sorted(known))
        return f"{prefix}unknown key {', '.join(repr(k) for k in extra)} (allowed: {allowed})"
    if kind == "pattern" and value == DECIMAL_PATTERN:
        return f'{prefix}{instance!r} is not a decimal string such as "12.5"'
    if kind == "pattern" and "x-error" in error.schema:
        return f"{prefix}{instance!r} {error.schema['x-error']}"
    if kind == "type":
        return f"{prefix}must be {_type_words(value, error.schema)}, not {_json_type(instance)}"
    if kind == "enum":
        return f"{prefix}{instance!r} is not one of {', '.join(repr(v) for v in value)}"
    if kind in ("maxLength", "minLength", "maxItems", "minItems", "maximum", "minimum"):
        return f"{prefix}{_bound(kind, value)}"
    return f"{prefix}{error.message}"


def _type_words(value: Any, schema: dict[str, Any]) -> str:
    if schema.get("pattern") == DECIMAL_PATTERN:
        return 'a decimal string such as "12.5" (quoted, so that it stays exact)'
    names: list[str] = value if isinstance(value, list) else [value]
    words: dict[str, str] = {
        "string": "a string",
        "object": "an object",
        "array": "a list",
        "null": "null",
        "integer": "a whole number",
        "number": "a number",
        "boolean": "true or false",
    }
    return " or ".join(words.get(n, n) for n in names)


def _json_type(instance: Any) -> str:
    if instance is None:
        return "null"
    if isinstance(instance, bool):
        return "true/false"
    if isinstance(instance, int | float):
        return f"the number {instance}"
    if isinstance(instance, str):
        return f"the string {instance!r}"
    if isinstance(instance, list):
        return "a list"
    return "an object"


def _bound(kind: str, value: Any) -> str:
    return {
        "maxLength": f"longer than {value} characters",
        "minLength": "empty" if value == 1 else f"shorter than {value} characters",
        "maxItems": f"more than {value} entries",
        "minItems": "empty" if value == 1 else f"fewer than {value} entries",
        "maximum": f"more than {value}",
        "minimum": f"less than {value}",
    }[kind]
