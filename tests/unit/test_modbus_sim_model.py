"""The PLC simulator's pure parts: counters as functions of time, and the scenario format."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from lineside.drivers.modbus.codec import decode_registers
from lineside.drivers.modbus.config import ModbusRtuConfig, ModbusTcpConfig
from lineside.simulators.plc import (
    Counter,
    DeviceScenario,
    ScenarioEvent,
    SetEvent,
    SimPoint,
    build_simulators,
    listen_address,
    scenario_problems,
    wrap_int,
)


def test_integers_wrap_like_the_plc_register() -> None:
    assert wrap_int(65536, "uint16") == 0
    assert wrap_int(65541, "uint16") == 5
    assert wrap_int(-1, "uint32") == 2**32 - 1
    assert wrap_int(32768, "int16") == -32768
    assert wrap_int(2**64 + 3, "uint64") == 3
    assert wrap_int(7, "bool") == 1


def test_a_counter_advances_with_its_rate_and_rolls_over() -> None:
    counter = Counter(SimPoint(0, "uint16", value=65530, rate_per_s=2.0), now=100.0)
    assert counter.value_at(100.0) == 65530
    assert counter.value_at(102.4) == 65534  # whole units only
    assert counter.value_at(103.0) == 0  # 65536 wraps to 0
    assert counter.value_at(104.0) == 2


def test_rate_changes_keep_the_fraction_already_counted() -> None:
    counter = Counter(SimPoint(0, "uint32", rate_per_s=0.5), now=0.0)
    counter.set_rate(0.5, now=1.0)  # half a unit so far, not lost
    assert counter.value_at(2.0) == 1
    counter.set_rate(0.0, now=3.0)
    assert counter.value_at(1000.0) == 1


def test_set_advance_and_reset() -> None:
    counter = Counter(SimPoint(0, "uint32", rate_per_s=1.0), now=0.0)
    counter.set(12345, now=10.0)
    assert counter.value_at(10.0) == 12345
    counter.advance(5, now=12.0)
    assert counter.value_at(12.0) == 12352
    counter.set(0, now=20.0)
    assert counter.value_at(20.5) == 0


def test_a_float_totalizer_is_continuous_and_encoded_with_its_word_order() -> None:
    counter = Counter(
        SimPoint(1, "float32", "input", "little", value=100.0, rate_per_s=0.05), now=0.0
    )
    assert counter.value_at(10.0) == pytest.approx(100.5)
    words = counter.words_at(10.0)
    assert decode_registers(words, "float32", "little") == pytest.approx(100.5, abs=1e-4)


def test_a_signed_counter_and_a_bit() -> None:
    assert Counter(SimPoint(0, "int16", value=-5, rate_per_s=1.0), 0.0).value_at(7.0) == 2
    assert Counter(SimPoint(0, "bool", "coil", value=1), 0.0).words_at(5.0) == [1]


# ----------------------------------------------------------------- scenario model


def test_the_documented_scenario_parses() -> None:
    section = DeviceScenario.model_validate(
        {
            "response_delay_ms": 2,
            "points": {"good": {"value": 0, "rate_per_s": 2}, "scrap": {"rate_per_s": 0.1}},
            "events": [
                {"at_s": 10, "point": "good", "set": 65530},
                {"at_s": 15, "point": "scrap", "reset": True},
                {"at_s": 18, "point": "good", "rate_per_s": 5},
                {"at_s": 20, "offline_s": 10},
                {"at_s": 35, "silent_s": 2},
                {"at_s": 40, "exception": 2, "duration_s": 3},
                {"at_s": 50, "exception": 4, "duration_s": 3, "point": "scrap"},
            ],
        }
    )
    assert [e.action() for e in section.events] == [
        "set",
        "reset",
        "rate",
        "offline",
        "silent",
        "exception",
        "exception",
    ]
    assert isinstance(section.events[0], SetEvent)
    assert section.events[0].set_to == Decimal(65530)
    assert section.points["scrap"].rate_per_s == Decimal("0.1")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"at_s": 1}, "exactly one of .* got none"),
        ({"at_s": 1, "point": "good", "set": 1, "reset": True}, "got set, reset"),
        ({"at_s": 1, "set": 1}, "set needs a point"),
        ({"at_s": 1, "offline_s": 5, "point": "good"}, "drop point"),
        ({"at_s": 1, "silent_s": 5, "point": "good"}, "silent_s concerns the whole device"),
        ({"at_s": 1, "exception": 2}, "exception needs duration_s"),
        ({"at_s": 1, "exception": 9, "duration_s": 1}, "Modbus exception code"),
        ({"at_s": 1, "offline_s": 5, "duration_s": 1}, "duration_s belongs"),
        ({"at_s": -1, "offline_s": 5}, "greater than or equal to 0"),
        ({"at_s": 1, "offline_s": 0}, "greater than 0"),
        ({"at_s": 1, "offline": 5}, "Extra inputs"),
    ],
)
def test_bad_events_are_refused(event: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(ScenarioEvent).validate_python(event)


PLC = ModbusTcpConfig.model_validate(
    {
        "driver": "modbus_tcp",
        "host": "127.0.0.1",
        "port": 5020,
        "points": {"good": {"address": 100, "type": "uint32"}, "scrap": {"address": 102}},
    }
)
DOSER = ModbusRtuConfig.model_validate(
    {
        "driver": "modbus_rtu",
        "port": "socket://127.0.0.1:5021",
        "unit": 7,
        "points": {"total_l": {"address": 1, "type": "float32", "table": "input"}},
    }
)


def test_scenario_names_must_be_points_of_the_device() -> None:
    section = DeviceScenario.model_validate(
        {
            "points": {"goood": {"rate_per_s": 1}},
            "events": [
                {"at_s": 1, "point": "scrap", "set": 1.5},
                {"at_s": 2, "point": "x", "reset": True},
            ],
        }
    )
    assert scenario_problems(section, PLC) == [
        "points: no point 'goood' on this device (it has good, scrap)",
        "events[1]: no point 'x' on this device (it has good, scrap)",
        "events[0]: set 1.5 is not a whole number",
    ]
    assert scenario_problems(DeviceScenario(), PLC) == []


def test_where_a_device_is_simulated() -> None:
    assert listen_address(PLC) == ("127.0.0.1", 5020, "tcp")
    assert listen_address(DOSER) == ("127.0.0.1", 5021, "rtu")
    serial = DOSER.model_copy(update={"port": "/dev/ttyUSB0"})
    with pytest.raises(ValueError, match="only on a socket://host:port"):
        listen_address(serial)


def test_devices_sharing_an_address_share_a_simulator_without_listening_yet() -> None:
    doser4 = DOSER.model_copy(update={"unit": 8})
    built = build_simulators(
        {"plc3": PLC, "doser3": DOSER, "doser4": doser4},
        {"doser3": {"points": {"total_l": {"value": 100.5}}}},
    )
    assert [(sim.framer, sim.port, sorted(sections)) for sim, sections in built] == [
        ("tcp", 5020, [1]),
        ("rtu", 5021, [7, 8]),
    ]
    rtu_sim = built[1][0]
    assert rtu_sim.value(7, "total_l") == 100.5
    assert rtu_sim.value(8, "total_l") == 0.0
    assert not rtu_sim.online


def test_a_unit_used_twice_on_one_address_is_refused() -> None:
    with pytest.raises(ValueError, match="unit 7 is also device doser3"):
        build_simulators({"doser3": DOSER, "doser4": DOSER}, {})
    with pytest.raises(ValueError, match=r"plc3\.points: no point 'nope'"):
        build_simulators({"plc3": PLC}, {"plc3": {"points": {"nope": {}}}})
