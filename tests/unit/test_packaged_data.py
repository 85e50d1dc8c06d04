"""The files shipped in lineside/data are copies of config/: they must not drift apart."""

from pathlib import Path

import pytest

from lineside.data import data_text

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.name for p in (ROOT / "lineside" / "data").glob("*.yaml"))


def test_the_demo_files_are_shipped() -> None:
    assert SHIPPED == ["demo-scenario.yaml", "demo.yaml"]


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_file_is_a_real_file_equal_to_its_config_twin(name: str) -> None:
    shipped = ROOT / "lineside" / "data" / name
    assert not shipped.is_symlink()
    assert data_text(name) == (ROOT / "config" / name).read_text(encoding="utf-8")
