"""YAML with line numbers: every key path maps to the line it was written on.

Plain PyYAML silently keeps the last of two equal keys; here that is an error.
Decimal-looking scalars become Decimal so that 0.85 is exactly 0.85.

PyYAML expands aliases without limit and composes nesting by recursion: a few lines of
aliases (a "billion laughs") would grow into billions of values, and a few thousand
brackets end in a RecursionError. Both are refused here, at the line that does it,
before anything is built from the document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from yaml.error import MarkedYAMLError

KeyPath = tuple[str | int, ...]
MAX_DEPTH = 64  # levels of nesting; a config needs about eight
ALIAS_BUDGET = 100_000  # values that aliases may add to a document, all expansions together


@dataclass
class Source:
    """A parsed YAML document and where each of its key paths came from."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: list[tuple[KeyPath, int, int]] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int:
        return line_of(self.lines, path)


def line_of(lines: Mapping[KeyPath, int], path: KeyPath) -> int:
    """The line of the longest known prefix of path (1 when nothing matches)."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return 1


class Refused(MarkedYAMLError):
    """YAML that is well formed but refused: too deep, or aliases that expand too far."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting while composing and notes where aliases are."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases: list[tuple[yaml.Node, Any]] = []  # the aliased node, where the alias is

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self._next_mark()
            node = super().compose_node(parent, index)
            if node is not None:
                self.aliases.append((node, mark))
            return node
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise Refused(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self._next_mark(),
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def _next_mark(self) -> Any:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        return event.start_mark


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text  # .inf, .nan: validation rejects them with a clear message
    return value if value.is_finite() else text


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _walk(node: yaml.Node, path: KeyPath, source: Source) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                source.duplicates.append((path + (key,), line, seen[key]))
            seen[key] = line
            source.lines[path + (key,)] = line
            _walk(value_node, path + (key,), source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            source.lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), source)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, aliases: list[tuple[yaml.Node, Any]]) -> None:
    """Refuse an alias that refers to itself, and aliases that expand past ALIAS_BUDGET.

    Sizes are counted over the node graph, each node once, so the check itself stays as
    small as the file however large the expansion would be.
    """
    size: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            visiting.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            continue
        if key in size:
            continue
        if key in visiting:  # reached again from inside itself
            mark = next((m for n, m in aliases if n is node), node.start_mark)
            raise Refused(None, None, "an alias refers to the value it is part of", mark)
        visiting.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    added = size[id(root)] - len(size)
    if added > ALIAS_BUDGET:
        _, mark = max(aliases, key=lambda alias: size[id(alias[0])])
        raise Refused(
            None,
            None,
            f"aliases expand the document by {added} values, more than {ALIAS_BUDGET}"
            " (an alias bomb?); write the values out instead",
            mark,
        )


def parse(text: str) -> Source:
    """Parse one YAML document; raises yaml.YAMLError (with a mark) when it is not YAML,
    nests deeper than MAX_DEPTH, expands its aliases past ALIAS_BUDGET or holds a line
    break other than LF or CR LF."""
    _refuse_odd_breaks(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Source(data={})
        if loader.aliases:
            _check_expansion(node, loader.aliases)
        source = Source(data=None)
        source.lines[()] = node.start_mark.line + 1
        # Before constructing: that merges `<<: *anchor` keys into the mapping's own,
        # where a key given beside the merge would look like a duplicate.
        _walk(node, (), source)
        source.data = loader.construct_document(node)
    finally:
        loader.dispose()
    return source


# PyYAML (YAML 1.1) also ends a line at these, editors and `grep -n` do not: every line
# number after one would be off, so the file is refused at the first.
_ODD_BREAKS = re.compile("\r(?!\n)|[\x85\u2028\u2029]")
_BREAK_NAMES = {"\r": "a CR without LF", "\x85": "U+0085 NEL", "\u2028": "U+2028 LINE SEPARATOR",
                "\u2029": "U+2029 PARAGRAPH SEPARATOR"}


def _refuse_odd_breaks(text: str) -> None:
    found = _ODD_BREAKS.search(text)
    if found is None:
        return
    line = text.count("\n", 0, found.start())
    column = found.start() - (text.rfind("\n", 0, found.start()) + 1)
    mark = yaml.Mark("<config>", found.start(), line, column, None, 0)
    raise Refused(
        None,
        None,
        f"holds {_BREAK_NAMES[found.group()]}, which YAML reads as a line break: remove it"
        " (lines end with LF or CR LF)",
        mark,
    )


def format_path(path: KeyPath) -> str:
    """('boms', 'B', 'components', 2, 'item') -> 'boms.B.components[2].item'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"
