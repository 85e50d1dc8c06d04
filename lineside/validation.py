"""Pydantic's errors in words for a technician: the one formatter the agent's config,
the central's config and the simulators' scenarios all use.

It knows no model: callers say which union tags to leave out of key paths (pydantic puts
the chosen member's tag into them), where unknown keys are documented, and what a
pattern that did not match means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

KeyPath = tuple[str | int, ...]
UNKNOWN = "unknown key (check the spelling; see {docs})"


def describe(
    err: Mapping[str, Any],
    *,
    tags: Sequence[str] = (),
    docs: str = "docs/configuration.md",
    patterns: Mapping[str, str] | None = None,
) -> tuple[KeyPath, str]:
    """One pydantic error as its key path and a message for a person.

    tags are the names of a discriminated union's members, in the order they are
    offered when a tag is wrong or missing.
    """
    loc: KeyPath = tuple(p for p in err["loc"] if p not in tags)
    kind = err["type"]
    message = str(err["msg"])
    key = str(err.get("ctx", {}).get("discriminator", "")).strip("'")
    if kind == "extra_forbidden":
        message = UNKNOWN.format(docs=docs)
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "union_tag_invalid":
        message = f"unknown {key} {err['input'].get(key)!r}; expected one of {', '.join(tags)}"
        loc = (*loc, key)
    elif kind == "union_tag_not_found":
        # the only union a key may be missing from is the devices': driver picks the model
        message = f"a device needs {key!r}: {', '.join(tags[:-1])} or {tags[-1]}"
    elif kind == "string_pattern_mismatch" and patterns:
        message = patterns.get(str(err.get("ctx", {}).get("pattern")), message)
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return loc, message
