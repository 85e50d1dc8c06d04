"""Device events to commands: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from lineside.agent.commands import CounterReading, MeterReading, Receive, StartOrder
from lineside.agent.interpret import Ignored, ScanPlace, ScanRejected, reading_command, scan_command
from lineside.agent.points import CounterPoint, MeterPoint, PointMap
from lineside.drivers.base import Reading, Scan

TS = datetime(2026, 1, 1, tzinfo=UTC)
POINTS = PointMap(
    counters={"plc3.good": CounterPoint("plc3.good", "PRESS-3", "good", 2**32, 1000)},
    meters={"doser3.total_l": MeterPoint("doser3.total_l", "pump", "PAINT", "PRESS-3",
                                         Decimal(100))},
)
PLACE = ScanPlace("PRESS-3", "LINE-3", "BRKT-100", "ORD-")
GTINS = {"09521234543213": "STEEL-2MM"}
UOMS = {"STEEL-2MM": "kg", "BOLT-M8": "ea"}


def test_counter_and_meter_readings_become_commands() -> None:
    good = reading_command(Reading("plc3", "good", 1200, TS), POINTS)
    assert isinstance(good, CounterReading) and (good.point, good.value) == ("plc3.good", 1200)
    meter = reading_command(Reading("doser3", "total_l", Decimal("12.5"), TS), POINTS)
    assert isinstance(meter, MeterReading) and meter.value == Decimal("12.5")


def test_failed_or_unknown_readings_are_no_delta() -> None:
    failed = Reading("plc3", "good", None, TS, ok=False, error="exception 2")
    assert isinstance(reading_command(failed, POINTS), Ignored)
    assert isinstance(reading_command(Reading("plc3", "temp", 21, TS), POINTS), Ignored)


def test_lot_label_is_a_receipt_at_the_scanners_location() -> None:
    scan = Scan("scanner3", "]C1010952123454321310HEAT-7\x1d3103012500", TS)
    command = scan_command(scan, PLACE, GTINS, UOMS, 1)
    assert isinstance(command, Receive)
    assert (command.item, command.lot, command.qty, command.location) == (
        "STEEL-2MM", "HEAT-7", Decimal("12.500"), "LINE-3")


def test_identical_labels_read_at_once_are_two_receipts() -> None:
    scan = Scan("scanner3", "]C1010952123454321310HEAT-7\x1d3103012500", TS)
    first, second = (scan_command(scan, PLACE, GTINS, UOMS, n) for n in (1, 2))
    assert isinstance(first, Receive) and isinstance(second, Receive)
    assert first.key != second.key


def test_weight_label_for_an_item_counted_in_each_is_refused() -> None:
    command = scan_command(Scan("s", "]C1010952123454321310L1\x1d3103012500", TS), PLACE,
                           {"09521234543213": "BOLT-M8"}, UOMS, 1)
    assert isinstance(command, ScanRejected) and "kg" in command.reason


def test_count_label_for_an_item_stocked_in_kg_is_refused() -> None:
    command = scan_command(Scan("s", "]C1010952123454321310L1\x1d3724", TS), PLACE, GTINS, UOMS, 1)
    assert isinstance(command, ScanRejected)
    assert "count of units (37)" in command.reason and "'kg'" in command.reason


def test_order_code_starts_the_work_centers_item() -> None:
    command = scan_command(Scan("s", "ORD-4711", TS), PLACE, GTINS, UOMS, 1)
    assert isinstance(command, StartOrder)
    assert (command.order, command.item, command.work_center) == ("ORD-4711", "BRKT-100",
                                                                  "PRESS-3")
    no_item = ScanPlace("PRESS-3", "LINE-3", None, "ORD-")
    no_order = scan_command(Scan("s", "ORD-4711", TS), no_item, GTINS, UOMS, 1)
    assert isinstance(no_order, ScanRejected)


def test_bad_check_digit_and_unplaced_scanner_are_refused() -> None:
    bad = scan_command(Scan("s", "]C1010952123454321410L1\x1d3103012500", TS), PLACE, GTINS,
                       UOMS, 1)
    assert isinstance(bad, ScanRejected) and bad.reason
    assert isinstance(scan_command(Scan("s", "x", TS), None, GTINS, UOMS, 1), ScanRejected)


def test_volume_label_in_litres_for_an_item_stocked_in_litres() -> None:
    gtins = {"09521234543237": "PAINT-9005"}
    uoms = {"PAINT-9005": "l"}
    ok = scan_command(Scan("s", "]C1010952123454323710P-12\x1d3152002000", TS), PLACE, gtins,
                      uoms, 1)
    assert isinstance(ok, Receive) and ok.qty == Decimal("20.00")
    in_kg = scan_command(Scan("s", "]C1010952123454323710P-12\x1d3102002000", TS), PLACE,
                         gtins, uoms, 1)
    assert isinstance(in_kg, ScanRejected) and "stocked in 'l'" in in_kg.reason
    litres_for_kg = scan_command(Scan("s", "]C1010952123454321310L1\x1d3152002000", TS), PLACE,
                                 GTINS, UOMS, 1)
    assert isinstance(litres_for_kg, ScanRejected) and "quantity in l" in litres_for_kg.reason
