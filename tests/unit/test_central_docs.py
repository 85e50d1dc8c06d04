"""Every key of lineside central's config is documented in docs/central.md and set, with a
comment, in config/central.example.yaml (as tests/unit/test_docs.py does for the agent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lineside.central.config import CentralConfig, load
from tests.unit.test_docs import config_parts, keys_set, section

REPO = Path(__file__).resolve().parents[2]
CENTRAL_MD = REPO / "docs" / "central.md"
EXAMPLE = REPO / "config" / "central.example.yaml"
PARTS = config_parts(CentralConfig)


def test_every_section_has_a_heading() -> None:
    docs = CENTRAL_MD.read_text(encoding="utf-8")
    for name in CentralConfig.model_fields:
        assert section(docs, f"`{name}`") is not None, f"no heading for {name}"


@pytest.mark.parametrize("part", sorted(PARTS))
def test_keys_are_documented(part: str) -> None:
    body = section(CENTRAL_MD.read_text(encoding="utf-8"), part)
    assert body is not None, f"docs/central.md needs a heading with {part}"
    _, keys = PARTS[part]
    missing = sorted(k for k in keys if f"`{k}`" not in body)
    assert not missing, f"docs/central.md, {part}: keys {missing} are not documented"


def test_the_example_sets_and_explains_every_key() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    found = keys_set(data, CentralConfig)
    missing = {p: sorted(k - found.get(p, set())) for p, (_, k) in PARTS.items()
               if k - found.get(p, set())}
    assert not missing and set(data) == set(CentralConfig.model_fields), missing
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    bare = [line for n, line in enumerate(lines) if line.strip() and not line.strip()
            .startswith("#") and (n == 0 or not lines[n - 1].strip().startswith("#"))]
    assert not bare, bare
    load(EXAMPLE)  # and it is valid


def test_every_metric_is_documented() -> None:
    from lineside.central.metrics import CentralMetrics

    docs = CENTRAL_MD.read_text(encoding="utf-8")
    for metric in CentralMetrics().registry.collect():
        name = metric.name + ("_total" if metric.type == "counter" else "")
        assert f"`{name}" in docs, name
