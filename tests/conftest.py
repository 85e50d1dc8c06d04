"""Fixtures shared by every test folder: a line config on disk and its real SQLite ledger."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from lineside.agent.bootstrap import open_ledger
from lineside.agent.config import LoadedConfig, load
from lineside.agent.handlers import Ledger

# Tests never fail on wall-clock time: no per-example deadline, even on a loaded machine.
settings.register_profile(
    "lineside", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("lineside")

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "config" / "demo.yaml"

if os.environ.get("LINESIDE_TEST_SPARKPLUG") == "1":  # the suite with the Sparkplug node on
    from tests.sparkplug_on.sitecustomize import install

    install()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "tests" / "sparkplug_on"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )


class StepClock:
    """A clock that moves one second per call: deterministic timestamps in tests."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def write_config(tmp_path: Path, text: str | None = None, **replace: str) -> Path:
    """The demo config (or text) in tmp_path, with its ledger in tmp_path/var."""
    body = DEMO_CONFIG.read_text() if text is None else text
    body = body.replace("data_dir: ../var/demo", "data_dir: ./var")
    for old, new in replace.items():
        assert old in body, old
        body = body.replace(old, new)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "line.yaml"
    path.write_text(body)
    return path


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def line_config(tmp_path: Path) -> LoadedConfig:
    return load(write_config(tmp_path))


@pytest.fixture
def ledger(line_config: LoadedConfig, clock: StepClock) -> Iterator[Ledger]:
    led = open_ledger(line_config, clock)
    yield led
    led.conn.close()
