"""LINESIDE_TEST_SPARKPLUG=1: every config that lineside loads gets a sparkplug: section.

For running the whole suite with the Sparkplug node on (tests/conftest.py puts this folder
on PYTHONPATH, so agents started as processes get it too):

    LINESIDE_TEST_SPARKPLUG=1 .venv/bin/python -m pytest -q

A config that already has the section, or that is not a mapping, is left as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

SECTION = "\nsparkplug: {group_id: suite, interval_s: 0.1}\n"


def with_sparkplug(text: str) -> str:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if not isinstance(data, dict) or "sparkplug" in data:
        return text
    return text + SECTION


def install() -> None:
    from lineside.agent import config

    original = config.load_text
    if getattr(original, "with_sparkplug", False):
        return

    def load_text(text: str, file: Path) -> config.LoadedConfig:
        return original(with_sparkplug(text), file)

    load_text.with_sparkplug = True  # type: ignore[attr-defined]
    config.load_text = load_text


if os.environ.get("LINESIDE_TEST_SPARKPLUG") == "1":
    install()
