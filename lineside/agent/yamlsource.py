"""YAML with line numbers: every key path maps to the line it was written on.

Plain PyYAML silently keeps the last of two equal keys; here that is an error.
Decimal-looking scalars become Decimal so that 0.85 is exactly 0.85.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


@dataclass
class Source:
    """A parsed YAML document and where each of its key paths came from."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: list[tuple[KeyPath, int, int]] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int:
        """The line of the longest known prefix of path (1 when nothing matches)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1


class _Loader(yaml.SafeLoader):
    pass


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


def parse(text: str) -> Source:
    """Parse one YAML document; raises yaml.YAMLError (with a mark) when it is not YAML."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Source(data={})
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    source = Source(data=data)
    source.lines[()] = node.start_mark.line + 1
    _walk(node, (), source)
    return source


def format_path(path: KeyPath) -> str:
    """('boms', 'B', 'components', 2, 'item') -> 'boms.B.components[2].item'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"
