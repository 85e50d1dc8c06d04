"""The settings every line-based serial device shares, validated without I/O or pyserial.

The config imports this module; ``serial_lines`` (which opens ports with pyserial) only
the drivers do. Terminators: ``CR``, ``LF`` and ``CRLF`` all end a line on either CR or
LF; anything else is a custom terminator written with Python escapes, e.g. ``"\\x03"``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from lineside.drivers.base import DriverModel

GS = "\x1d"
STANDARD_TERMINATORS: dict[str, bytes] = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}
MAX_TERMINATOR_BYTES = 8


def terminator_bytes(spec: str) -> bytes:
    """The bytes a terminator setting stands for; raises ValueError if it is not valid."""
    if spec in STANDARD_TERMINATORS:
        return STANDARD_TERMINATORS[spec]
    try:
        decoded = spec.encode("latin-1", "backslashreplace").decode("unicode_escape")
        raw = decoded.encode("latin-1")
    except (UnicodeError, ValueError) as exc:
        raise ValueError(f"terminator {spec!r} is not a valid escaped string: {exc}") from None
    if not raw:
        raise ValueError("terminator must not be empty; use CR, LF, CRLF or e.g. '\\x03'")
    if len(raw) > MAX_TERMINATOR_BYTES:
        raise ValueError(f"terminator {spec!r} is longer than {MAX_TERMINATOR_BYTES} bytes")
    if GS.encode() in raw:
        raise ValueError("terminator must not contain GS (0x1D): scanners send it inside data")
    return raw


def is_standard_terminator(spec: str) -> bool:
    return spec in STANDARD_TERMINATORS


class SerialLineSettings(DriverModel):
    """What every line-based serial device needs: the port, framing and line rules."""

    port: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    terminator: str = "CR"
    max_length: int = Field(default=512, ge=8, le=65536)
    reconnect_min_ms: int = Field(default=500, ge=10, le=60_000)
    reconnect_max_ms: int = Field(default=30_000, ge=10, le=600_000)

    @field_validator("terminator")
    @classmethod
    def _terminator(cls, value: str) -> str:
        upper = value.upper()
        if upper in STANDARD_TERMINATORS:
            return upper
        terminator_bytes(value)
        return value

    @model_validator(mode="after")
    def _reconnect(self) -> SerialLineSettings:
        if self.reconnect_min_ms > self.reconnect_max_ms:
            raise ValueError("reconnect_min_ms must not exceed reconnect_max_ms")
        return self
