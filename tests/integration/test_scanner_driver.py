"""The serial scanner driver against simulated scanners on real ptys and TCP sockets."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serial_helpers import free_tcp_port, in_thread, running

from lineside.agent.scans import LotReceipt, interpret_scan
from lineside.drivers.scanner.config import SerialScannerConfig
from lineside.drivers.scanner.driver import SerialScannerDriver
from lineside.simulators.endpoint import PtyEndpoint, TcpEndpoint
from lineside.simulators.scanner import ScannerSimulator, simulate_device

GS = "\x1d"
BARCODE = f"]C1010952123454321310LOT42{GS}3103000500"


def scanner_config(port: str, **extra: Any) -> SerialScannerConfig:
    values: dict[str, Any] = {
        "driver": "serial_scanner", "port": port, "work_center": "PRESS-3",
        "reconnect_min_ms": 50, "reconnect_max_ms": 400,
    }
    return SerialScannerConfig(**(values | extra))


@pytest.fixture(params=["pty", "tcp"])
def simulator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScannerSimulator]:
    endpoint = PtyEndpoint(link=tmp_path / "scanner3") if request.param == "pty" else TcpEndpoint()
    with ScannerSimulator(endpoint) as sim:
        yield sim


def test_barcodes_split_across_writes_and_read_timeouts(simulator: ScannerSimulator) -> None:
    with running(SerialScannerDriver("scanner3", scanner_config(simulator.url))) as (events, _):
        events.wait_states("up")
        data = BARCODE.encode()
        simulator.send_bytes(data[:10])
        assert simulator.wait_sent(5)
        time.sleep(0.35)  # several of the driver's 0.1 s read timeouts pass mid-barcode
        assert events.scans() == []
        simulator.send_bytes(data[10:] + b"\r")
        assert events.wait_scans(1) == [BARCODE]
        for byte in (b"ORD-4711\r\n"):  # one byte per write, CRLF on a CR config
            simulator.send_bytes(bytes([byte]))
        assert events.wait_scans(2) == [BARCODE, "ORD-4711"]
        assert events.states() == ["up"]


def test_scans_carry_the_device_name_and_a_utc_time(simulator: ScannerSimulator) -> None:
    with running(SerialScannerDriver("scanner3", scanner_config(simulator.url))) as (events, _):
        events.wait_states("up")
        simulator.send(BARCODE)
        events.wait_scans(1)
    scan = next(e for e in events.all() if getattr(e, "data", None) == BARCODE)
    assert scan.device == "scanner3"
    assert scan.ts.tzinfo is not None


def test_a_megabyte_of_junk_with_barcodes_interleaved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lineside.drivers.scanner")
    rng = random.Random(20261125)
    barcodes = [f"]C10109521234543213{GS}10LOT{i:04d}{GS}3103{i + 1:06d}" for i in range(200)]
    junk = rng.randbytes(1_000_000)
    cuts = sorted(rng.sample(range(len(junk)), len(barcodes)))
    stream = bytearray()
    previous = 0
    for cut, code in zip(cuts, barcodes, strict=True):
        # the terminator before each barcode makes it a fresh line whatever the junk was
        stream += junk[previous:cut] + b"\r" + code.encode() + b"\r"
        previous = cut
    stream += junk[previous:] + b"\r"

    with ScannerSimulator(PtyEndpoint(link=tmp_path / "scanner3")) as sim:
        config = scanner_config(sim.url, max_length=128)
        with running(SerialScannerDriver("scanner3", config)) as (events, _):
            events.wait_states("up")
            for start in range(0, len(stream), 8192):
                sim.send_bytes(bytes(stream[start : start + 8192]))
            sim.send("END-OF-TEST", fresh_line=True)
            events.wait_for(lambda e: "END-OF-TEST" in e.scans(), "the last scan", timeout=40)
            assert events.states() == ["up"]  # garbage is not a disconnect
    found = [s for s in events.scans() if s in set(barcodes)]
    assert found == barcodes  # every one, in order, none twice
    # rate-limited: a handful of lines for thousands of rejected ones, the counts all there
    assert 2 <= len(caplog.records) < 100
    assert "more lines" in caplog.messages[-1]


@pytest.mark.parametrize("kind", ["pty", "tcp"])
def test_unplug_and_replug(kind: str, tmp_path: Path) -> None:
    endpoint = PtyEndpoint(link=tmp_path / "scanner3") if kind == "pty" else TcpEndpoint()
    sim = ScannerSimulator(endpoint)
    with sim, running(SerialScannerDriver("scanner3", scanner_config(sim.url))) as (events, _):
        events.wait_states("up")
        sim.send("BEFORE")
        events.wait_scans(1)
        sim.unplug()
        events.wait_states("up", "down")
        # several reopen attempts fail while unplugged: still one down
        time.sleep(0.5)
        assert events.states() == ["up", "down"]
        sim.replug()
        events.wait_states("up", "down", "up")
        sim.send("AFTER")
        assert events.wait_scans(2) == ["BEFORE", "AFTER"]


def test_a_missing_port_is_down_once_and_stop_interrupts_the_backoff(tmp_path: Path) -> None:
    config = scanner_config(str(tmp_path / "nothing-here"), reconnect_min_ms=60_000,
                            reconnect_max_ms=60_000)
    started = time.monotonic()
    with running(SerialScannerDriver("scanner3", config)) as (events, _):
        events.wait_states("down")
    assert time.monotonic() - started < 5  # not the 60 s backoff
    (status,) = events.all()
    assert "nothing-here" in getattr(status, "reason", "")


def test_pyserial_urls_work() -> None:
    with running(SerialScannerDriver("scanner3", scanner_config("loop://"))) as (events, _):
        events.wait_states("up")


def test_simulate_device_plays_a_scenario_over_tcp() -> None:
    port = free_tcp_port()
    config = scanner_config(f"socket://127.0.0.1:{port}")
    section = [
        {"at_s": 0, "barcode": BARCODE},
        {"at_s": 0.1, "junk_bytes": 300, "seed": 1},
        {"at_s": 0.2, "barcode": "ORD-4711"},
    ]
    with (
        in_thread(simulate_device, "scanner3", config, section),
        running(SerialScannerDriver("scanner3", config)) as (events, _),
    ):
        events.wait_for(lambda e: "ORD-4711" in e.scans(), "the order scan")
    scans = events.scans()
    assert scans.index(BARCODE) < scans.index("ORD-4711")
    meaning = interpret_scan(
        BARCODE, gtin_to_item={"09521234543213": "STEEL-2MM"}, order_prefix="ORD-"
    )
    assert isinstance(meaning, LotReceipt)


def test_two_scanners_run_side_by_side(tmp_path: Path) -> None:
    sims = [ScannerSimulator(PtyEndpoint(link=tmp_path / f"s{i}")).start() for i in range(2)]
    try:
        drivers = [SerialScannerDriver(f"s{i}", scanner_config(s.url)) for i, s in enumerate(sims)]
        with running(drivers[0]) as (first, _), running(drivers[1]) as (second, _):
            first.wait_states("up")
            second.wait_states("up")
            sims[0].send("A")
            sims[1].send("B")
            assert first.wait_scans(1) == ["A"]
            assert second.wait_scans(1) == ["B"]
    finally:
        for sim in sims:
            sim.close()
