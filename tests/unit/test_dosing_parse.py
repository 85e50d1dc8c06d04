"""ASCII dosing meter: totals from lines, unit conversion, configuration. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lineside.drivers.base import Reading
from lineside.drivers.dosing.config import DEFAULT_PATTERN, AsciiMeterConfig
from lineside.drivers.dosing.driver import AsciiMeterDriver, TotalParser, convert
from lineside.drivers.serial_lines import Rejection
from lineside.simulators.dosing import PumpScenario

CUSTOM = r"^VOL:(?P<value>[-+\d.,]+)\s*(?P<unit>\w+)?$"

PARSE_CASES: list[tuple[str, str, str, str]] = [
    # (pattern, configured unit, line, expected Decimal as text or an error fragment)
    (DEFAULT_PATTERN, "l", "TOT=123.456 L", "123.456"),
    (DEFAULT_PATTERN, "ml", "TOT=123.456 L", "123456.000"),
    (DEFAULT_PATTERN, "l", "TOT=500 mL", "0.5"),
    (DEFAULT_PATTERN, "l", "TOT=1 ml", "0.001"),
    (DEFAULT_PATTERN, "ml", "TOT=250 mL", "250"),
    (DEFAULT_PATTERN, "ml", "TOT=0.5 l", "500.0"),
    (DEFAULT_PATTERN, "l", "TOT=  42", "42"),  # no unit: already the configured one
    (DEFAULT_PATTERN, "ml", "TOT=42", "42"),
    (DEFAULT_PATTERN, "l", "TOT=-1.5 L", "-1.5"),
    (DEFAULT_PATTERN, "l", "TOT=12.3456789012345678901234567 L", "12.3456789012345678901234567"),
    (DEFAULT_PATTERN, "l", "TOT=1.5 ML", "does not match"),
    (DEFAULT_PATTERN, "l", "TOT=abc L", "does not match"),
    (DEFAULT_PATTERN, "l", "HELLO", "does not match"),
    (DEFAULT_PATTERN, "l", "TOT=1e3 L", "does not match"),
    (DEFAULT_PATTERN, "l", "TOT=" + "9" * 31 + " L", "more than 30 digits"),
    (CUSTOM, "l", "VOL:1,5 L", "1.5"),
    (CUSTOM, "ml", "VOL:2.25 l", "2250.00"),
    (CUSTOM, "l", "VOL:3 gal", "unknown unit 'gal'"),
    (CUSTOM, "l", "VOL:1.2.3", "not a number"),
    (CUSTOM, "l", "VOL:,", "not a number"),
]


@pytest.mark.parametrize(("pattern", "unit", "line", "expected"), PARSE_CASES)
def test_parse(pattern: str, unit: Any, line: str, expected: str) -> None:
    result = TotalParser(pattern, unit).parse(line)
    if isinstance(result, Decimal):
        assert str(result) == expected
    else:
        assert expected in result


def test_the_value_is_searched_when_the_pattern_is_not_anchored() -> None:
    parser = TotalParser(r"(?P<value>\d+\.\d+)", "l")
    assert parser.parse("pump 3 total 12.50 litres") == Decimal("12.50")


@settings(max_examples=300)
@given(st.text())
def test_parse_never_raises(line: str) -> None:
    for pattern in (DEFAULT_PATTERN, CUSTOM):
        assert isinstance(TotalParser(pattern, "l").parse(line), Decimal | str)


@settings(max_examples=300)
@given(st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=0, max_value=10**9))
def test_litres_to_millilitres_and_back_is_exact(value: Decimal) -> None:
    millilitres = convert(value, "l", "ml")
    assert isinstance(millilitres, Decimal)
    assert millilitres == value * 1000
    assert convert(millilitres, "ml", "l") == value
    parsed = TotalParser(DEFAULT_PATTERN, "ml").parse(f"TOT={value:f} L")
    assert parsed == value * 1000


def test_driver_turns_lines_into_readings_and_rejections() -> None:
    config = AsciiMeterConfig(driver="ascii_meter", port="/dev/x", unit="ml", point="total_ml")
    driver = AsciiMeterDriver("doser3", config)
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    assert driver._reading("TOT=1.5 L", ts) == Reading("doser3", "total_ml", Decimal("1500.0"), ts)
    rejected = driver._reading("TOT=?", ts)
    assert isinstance(rejected, Rejection)
    assert rejected.reason == "malformed"
    assert driver._reading("   ", ts) is None


# --- configuration --------------------------------------------------------------------------

BASE: dict[str, Any] = {"driver": "ascii_meter", "port": "/dev/ttyUSB1"}


def test_meter_defaults() -> None:
    config = AsciiMeterConfig(**BASE)
    assert (config.pattern, config.unit, config.point, config.terminator) == (
        DEFAULT_PATTERN, "l", "total", "CRLF",
    )
    assert config.point_names() == {"total"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"pattern": "TOT=(\\d+"}, "does not compile"),
        ({"pattern": "TOT=(\\d+)"}, "value"),
        ({"unit": "gal"}, "'l' or 'ml'"),
        ({"terminator": ""}, "empty"),
        ({"rate": 1}, "Extra inputs"),
    ],
)
def test_bad_meter_settings_are_refused(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AsciiMeterConfig(**(BASE | extra))


def test_pump_scenario() -> None:
    scenario = PumpScenario.model_validate({"rate_l_per_s": "0.05", "interval_ms": 500})
    assert scenario.rate_l_per_s == Decimal("0.05")
    assert (scenario.unit, scenario.decimals, scenario.start_l) == ("L", 3, Decimal(0))


def test_a_pump_without_a_scenario_stands_still() -> None:
    assert PumpScenario.model_validate({}).rate_l_per_s == 0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"rate_l_per_s": -1}, "greater than or equal"),
        ({"rate_l_per_s": 1, "interval_ms": 1}, "greater than or equal"),
        ({"rate_l_per_s": 1, "template": "TOT"}, "must contain"),
        ({"rate_l_per_s": 1, "template": "{value} {flow}"}, "only use"),
        ({"rate_l_per_s": 1, "speed": 3}, "Extra inputs"),
    ],
)
def test_bad_pump_scenarios_are_refused(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PumpScenario.model_validate(section)
