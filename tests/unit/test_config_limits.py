"""Limits of the config file itself: its size, its nesting, and what its aliases may add."""

from __future__ import annotations

from pathlib import Path

import pytest

from lineside.agent.config import MAX_FILE_BYTES, ConfigInvalid, load
from lineside.agent.yamlsource import ALIAS_BUDGET

MINIMAL = "gateway: {id: press-3, site: plant-a}\n"
SHARED_POINTS = """
devices:
  plc1: &plc
    driver: modbus_tcp
    host: 127.0.0.1
    points: &points
      good:  {address: 100, type: uint32}
      scrap: {address: 102, type: uint16}
  plc2: {driver: modbus_tcp, host: 127.0.0.2, points: *points}
  plc3:
    <<: *plc
    host: 127.0.0.3
"""


def test_aliases_within_the_budget_are_expanded(tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(MINIMAL + SHARED_POINTS)
    devices = load(path).config.devices
    assert devices["plc1"].points == devices["plc2"].points == devices["plc3"].points
    assert devices["plc3"].host == "127.0.0.3"  # type: ignore[union-attr]


def test_aliases_past_the_budget_are_refused_at_the_alias(tmp_path: Path) -> None:
    """Ten references to a list just over a tenth of the budget: over it, by a little."""
    per = ALIAS_BUDGET // 10 + 10
    items = ", ".join(["x"] * per)
    path = tmp_path / "line.yaml"
    path.write_text(MINIMAL + f"big: &big [{items}]\nmany: [{', '.join(['*big'] * 10)}]\n")
    with pytest.raises(ConfigInvalid) as info:
        load(path)
    [error] = info.value.errors
    assert (error.line, error.path) == (3, "(yaml)")
    assert f"more than {ALIAS_BUDGET}" in error.message


def test_a_file_up_to_the_size_limit_is_read_and_one_byte_more_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "line.yaml"
    padding = MAX_FILE_BYTES - len(MINIMAL) - 2
    path.write_text(MINIMAL + "#" + "x" * padding + "\n")
    assert path.stat().st_size == MAX_FILE_BYTES
    assert load(path).config.gateway.id == "press-3"
    path.write_text(MINIMAL + "#" + "x" * (padding + 1) + "\n")
    with pytest.raises(ConfigInvalid) as info:
        load(path)
    [error] = info.value.errors
    assert (error.line, error.path) == (1, "(file)")
    assert "1 MiB" in error.message
