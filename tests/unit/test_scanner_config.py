"""Scanner configuration and the scanner simulator's scenario section: validation, no I/O."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lineside.drivers.scanner.config import SerialScannerConfig
from lineside.drivers.scanner.driver import SerialScannerDriver
from lineside.simulators.endpoint import PtyEndpoint, endpoint_for_port
from lineside.simulators.scanner import ScannerScenario, ScannerStep

BASE: dict[str, Any] = {"driver": "serial_scanner", "port": "/dev/ttyUSB0", "work_center": "WC"}


def test_defaults_are_those_of_the_contract() -> None:
    config = SerialScannerConfig(**BASE)
    assert (config.baudrate, config.parity, config.terminator, config.max_length) == (
        9600, "N", "CR", 512,
    )
    assert config.point_names() == set()


@pytest.mark.parametrize(
    ("terminator", "stored"),
    [("CR", "CR"), ("crlf", "CRLF"), ("LF", "LF"), ("\\x03", "\\x03"), ("#", "#")],
)
def test_terminators_accepted(terminator: str, stored: str) -> None:
    assert SerialScannerConfig(**BASE, terminator=terminator).terminator == stored


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"terminator": ""}, "empty"),
        ({"terminator": "\\x1d"}, "GS"),
        ({"terminator": "\\x"}, "not a valid"),
        ({"reconnect_min_ms": 5000, "reconnect_max_ms": 1000}, "reconnect_min_ms"),
        ({"max_length": 4}, "greater than or equal"),
        ({"baudrate": 100}, "greater than or equal"),
        ({"bytesize": 6}, "7 or 8"),
        ({"port": ""}, "at least 1"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_settings_are_refused(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SerialScannerConfig(**(BASE | extra))


def test_building_a_driver_opens_nothing() -> None:
    config = SerialScannerConfig(**(BASE | {"port": "/nonexistent/x"}))
    driver = SerialScannerDriver("scanner3", config)
    assert driver.name == "scanner3"


def test_scenario_steps() -> None:
    scenario = ScannerScenario.model_validate(
        [
            {"at_s": 5, "barcode": "]C1010952123454321310LOT42\u001d3103000500"},
            {"at_s": 6, "junk_bytes": 200, "seed": 3},
            {"at_s": 7.5, "unplug_s": 2},
        ]
    )
    assert [s.at_s for s in scenario.root] == [Decimal(5), Decimal(6), Decimal("7.5")]
    assert scenario.root[0].barcode is not None and "\x1d" in scenario.root[0].barcode


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"at_s": 1}, "exactly one"),
        ({"at_s": 1, "barcode": "X", "junk_bytes": 5}, "exactly one"),
        ({"at_s": 1, "barcode": "X", "seed": 1}, "seed only"),
        ({"at_s": -1, "barcode": "X"}, "greater than or equal"),
        ({"at_s": 1, "barcode": ""}, "at least 1"),
        ({"at_s": 1, "barcode": "X", "repeat": True}, "Extra inputs"),
    ],
)
def test_bad_scenario_steps_are_refused(step: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ScannerStep.model_validate(step)


def test_endpoint_for_port_picks_tcp_or_pty_without_opening_anything() -> None:
    tcp = endpoint_for_port("socket://127.0.0.1:4001")
    assert tcp.url == "socket://127.0.0.1:4001"
    pty = endpoint_for_port("/tmp/lineside/scanner3")
    assert pty.url == "/tmp/lineside/scanner3"
    with pytest.raises(ValueError, match="socket://HOST:PORT"):
        endpoint_for_port("socket://nohost")
    with pytest.raises(ValueError, match="cannot simulate"):
        endpoint_for_port("loop://")


def test_the_pty_simulator_never_replaces_a_real_device(tmp_path: Path) -> None:
    real = tmp_path / "ttyUSB0"
    real.write_text("a device")
    with pytest.raises(ValueError, match="not replacing"):
        PtyEndpoint(link=real).plug()
    by_id = tmp_path / "usb-Honeywell-if00"
    by_id.symlink_to(real)
    with pytest.raises(ValueError, match="not replacing"):
        PtyEndpoint(link=by_id).plug()
    assert real.read_text() == "a device"
    assert by_id.resolve() == real
