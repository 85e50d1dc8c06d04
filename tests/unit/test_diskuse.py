"""Write accounting: the write and growth rates over a recent window, and the status line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lineside.agent import diskuse
from lineside.agent.diskuse import WriteAccount, outlook, process_written_bytes, render_outlook


def test_written_bytes_come_from_the_processs_own_io_counters(tmp_path: Path) -> None:
    io = tmp_path / "io"
    io.write_text("rchar: 10\nwchar: 20\nread_bytes: 4096\nwrite_bytes: 81920\n")
    assert process_written_bytes(io) == 81920
    assert process_written_bytes(tmp_path / "missing") is None
    assert (process_written_bytes() or 0) >= 0  # the real /proc/self/io on Linux


def test_rates_are_over_the_window_only() -> None:
    account = WriteAccount(window_s=100)
    assert account.rates()["written_bytes_per_s"] is None
    account.sample(0, 0, 1000)
    account.sample(50, 5_000_000, 1000)  # a burst long ago
    for at in range(150, 251, 10):
        account.sample(at, 5_000_000 + (at - 150) * 100, 1000 + (at - 150) * 2)
    assert account.rates() == {
        "written_bytes_per_s": 100.0,
        "ledger_growth_bytes_per_s": 2.0,
        "over_s": 100,
    }


def test_days_until_full_at_the_current_growth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diskuse, "free_bytes", lambda _: 8_640_000_000)
    rates = {"written_bytes_per_s": 2500.0, "ledger_growth_bytes_per_s": 1000.0, "over_s": 3600}
    disk = outlook(rates, 12_300_000, tmp_path)
    assert disk["days_until_full"] == 100.0
    assert render_outlook(disk) == (
        f"disk: ledger 12.3 MB, 8.6 GB free on {tmp_path}; writing 2.5 kB/s,"
        " ledger growing 1.0 kB/s (over 3600 s): full in 100 days"
    )
    flat = outlook({**rates, "ledger_growth_bytes_per_s": 0.0}, 12_300_000, tmp_path)
    assert flat["days_until_full"] is None
    assert render_outlook(flat).endswith("writing 2.5 kB/s, ledger not growing (over 3600 s)")
    unknown = outlook(None, 12_300_000, tmp_path)
    assert unknown["written_bytes_per_s"] is None and unknown["days_until_full"] is None
    assert render_outlook(unknown).endswith(
        "; write rate unknown (the daemon does not answer or just started)"
    )
