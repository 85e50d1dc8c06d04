"""An answer must match its request: frames that are not the answer are never values.

RTU: a scripted device on a socat pty pair sends frames of another unit, another
function, another byte count or a broken CRC before the real answer; and libmodbus
answers late when two requests have the same shape (same unit, function and count), the
case only waiting out the line can tell apart. TCP: a raw socket server answers with
another transaction id, unit, function or count.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import serial
from pymodbus.framer import FramerRTU

from lineside.drivers.modbus.client import ModbusRtuDriver, ModbusTcpDriver, build_rtu_buses
from tests.integration.libmodbus import PtyPair, rtu_server
from tests.integration.modbus_helpers import FAST_BACKOFF, Recorder, rtu_config, running, tcp_config

COUNTER = {"good": {"address": 0, "type": "uint32"}}


def crc(frame: bytes) -> bytes:
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


def answer(unit: int, function: int, registers: list[int]) -> bytes:
    data = b"".join(r.to_bytes(2, "big") for r in registers)
    return crc(bytes([unit, function, len(data)]) + data)


RIGHT = answer(7, 3, [0, 4242])
NOT_THE_ANSWER = {
    "another unit": answer(9, 3, [0, 666]),
    "another function": answer(7, 4, [0, 666]),
    "another count": answer(7, 3, [0, 666, 0]),
    "a broken CRC": RIGHT[:-1] + bytes([RIGHT[-1] ^ 0xFF]),
}


@contextmanager
def scripted_device(pair: PtyPair, first: bytes) -> Iterator[list[bytes]]:
    """Answers the first request with first, every later one with RIGHT; yields requests."""
    requests: list[bytes] = []
    stop = threading.Event()
    port = serial.Serial(str(pair.device), timeout=0.05)

    def serve() -> None:
        while not stop.is_set():
            request = port.read(8)
            if len(request) < 8:
                continue
            requests.append(request)
            port.write(first if len(requests) == 1 else RIGHT)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield requests
    finally:
        stop.set()
        thread.join(5)
        port.close()


@pytest.mark.parametrize("wrong", sorted(NOT_THE_ANSWER))
def test_an_rtu_frame_that_is_not_the_answer_is_discarded(
    wrong: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lineside.drivers.modbus")
    pair = PtyPair(tmp_path)
    recorder = Recorder()
    try:
        config = rtu_config(str(pair.lineside), 7, COUNTER, timeout_ms=200)
        bus = build_rtu_buses({"plc": config})[str(pair.lineside)]
        driver = ModbusRtuDriver("plc", config, bus, backoff=FAST_BACKOFF)
        with scripted_device(pair, NOT_THE_ANSWER[wrong]) as requests, running(driver, recorder):
            recorder.wait_readings(3)
        bus.close()
    finally:
        pair.stop()
    assert {r.value for r in recorder.readings()} == {4242}
    assert recorder.statuses() == []
    assert requests[0] == requests[1]  # the same request again, once the line was quiet
    warnings = [r.getMessage() for r in caplog.records]
    assert any("unit 7: read holding 0+2: got a frame" in w for w in warnings), warnings


@pytest.mark.parametrize("late_ms", [150, 250])
def test_late_rtu_answers_to_requests_of_the_same_shape_are_never_swapped(
    late_ms: int, libmodbus_server_bin: Path, tmp_path: Path
) -> None:
    """Two blocks of one unit, both holding registers, both 2 long: their answers differ in
    nothing but the values. Every 4th answer comes after timeout_ms 100: within the
    waiting out (150 ms), or after it (250 ms, taken for the retry's answer, whose own
    answer then follows)."""
    points = {
        "low": {"address": 0, "type": "uint32"},
        "high": {"address": 4, "type": "uint32"},
    }
    recorder = Recorder()
    with rtu_server(libmodbus_server_bin, tmp_path, unit=3) as (server, port):
        server.command("set32 holding 0 1000")
        server.command("set32 holding 4 900000")
        server.command("delay 5")
        server.command(f"late {late_ms} 4")
        config = rtu_config(port, 3, points, timeout_ms=100)
        bus = build_rtu_buses({"plc": config})[port]
        with running(ModbusRtuDriver("plc", config, bus, backoff=FAST_BACKOFF), recorder):
            recorder.wait_readings(40, timeout=30)
        bus.close()
        late = int(server.command("answers")) // 4
    assert late >= 5
    assert {(r.point, r.value) for r in recorder.readings()} == {("low", 1000), ("high", 900000)}


# -- TCP ---------------------------------------------------------------------------------

Reply = Callable[[int, int, bytes], bytes]  # transaction id, unit, request PDU -> bytes


def mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def registers_pdu(function: int, registers: list[int]) -> bytes:
    data = b"".join(r.to_bytes(2, "big") for r in registers)
    return bytes([function, len(data)]) + data


WRONG_TCP: dict[str, Reply] = {
    "another transaction id": lambda t, u, p: mbap(t + 1, u, registers_pdu(3, [0, 666])),
    "another unit": lambda t, u, p: mbap(t, u + 1, registers_pdu(3, [0, 666])),
    "another function": lambda t, u, p: mbap(t, u, registers_pdu(4, [0, 666])),
    "another count": lambda t, u, p: mbap(t, u, registers_pdu(3, [0, 666, 0])),
}


@contextmanager
def raw_tcp_server(reply: Reply) -> Iterator[int]:
    """A Modbus TCP server of a few lines: every request gets reply's bytes."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while not stop.is_set():
                try:
                    head = conn.recv(7)
                    if len(head) < 7:
                        return
                    tid, _, length, unit = struct.unpack(">HHHB", head)
                    conn.sendall(reply(tid, unit, conn.recv(length - 1)))
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.5)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("wrong", sorted(WRONG_TCP))
def test_a_tcp_answer_that_is_not_the_answer_is_never_a_value(wrong: str) -> None:
    recorder = Recorder()
    settings: dict[str, Any] = {"unit": 5, "timeout_ms": 150}
    with raw_tcp_server(WRONG_TCP[wrong]) as port:
        driver = ModbusTcpDriver("plc", tcp_config(port, COUNTER, **settings), backoff=FAST_BACKOFF)
        with running(driver, recorder):
            recorder.wait_for(lambda r: len(r.statuses()) == 1, "device_down")
    assert recorder.readings() == []
    assert recorder.statuses()[0].state == "down"
