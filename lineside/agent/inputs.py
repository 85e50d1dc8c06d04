"""What a quantity, a code and a location may be, wherever they come in (config, MQTT, CLI,
scans, meters), and how a decimal is written out. Pure: no I/O.

Quantities are bounded so that Decimal's 28-digit context never rounds what lineside adds
up or multiplies: a quantity or price has at most MAX_DIGITS digits (leading zeros not
counted), at most MAX_FRACTION_DIGITS of them after the decimal point; a balance (a sum)
or a move's value (quantity × cost) then fits in 28 digits exactly.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal

MAX_DIGITS = 14
MAX_FRACTION_DIGITS = 9
MAX_CODE_LENGTH = 128
DIGITS_RULE = (
    f"at most {MAX_DIGITS} digits, at most {MAX_FRACTION_DIGITS} of them after the decimal point"
)
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# Letters of these scripts look alike (Latin A, Cyrillic А, Greek Α): a code mixing them
# is a lookalike of another code, not a code of its own.
_CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


class BadInput(ValueError):
    """A value that can never be used: the same input is refused the same way again."""


def decimal_text(value: Decimal) -> str:
    """The one way a decimal becomes text (ledger, payloads): fixed-point, never an
    exponent, trailing zeros kept ("4.20"), no negative zero."""
    text = format(value, "f")
    if text.startswith("-") and not value.is_zero():
        return text
    return text.removeprefix("-")


def parse_quantity(text: str, field: str = "qty") -> Decimal:
    """A decimal string of ASCII digits ("12.5", "-3"), within the bound."""
    if not _DECIMAL_TEXT.fullmatch(text):
        prefix = f"{field}: " if field else ""
        raise BadInput(f'{prefix}{text!r} is not a decimal string such as "12.5"')
    return check_quantity(Decimal(text), field)


def parse_day(text: str, field: str = "expiry") -> date:
    """A calendar day written YYYY-MM-DD (ISO 8601), and a real one (no 2027-02-30)."""
    prefix = f"{field}: " if field else ""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise BadInput(f"{prefix}{text!r} is not a date such as 2027-01-31")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{prefix}{text!r} is not a day of the calendar") from None


def check_quantity(value: Decimal | int, field: str = "qty") -> Decimal:
    """value as a Decimal without an exponent above zero (1E+5 becomes 100000), or
    BadInput when it is not a finite number within the bound."""
    if isinstance(value, int):
        value = Decimal(value)
    prefix = f"{field}: " if field else ""
    if not value.is_finite():
        raise BadInput(f"{prefix}{value} is not a number")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > MAX_FRACTION_DIGITS or _digits(value) > MAX_DIGITS:
        raise BadInput(f"{prefix}{value} has too many digits ({DIGITS_RULE})")
    return value.quantize(Decimal(1)) if exponent > 0 else value


def _digits(value: Decimal) -> int:
    """Digits as written without an exponent, leading zeros not counted: 0.001 has 3,
    120.50 has 5, 1E+5 has 6."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if not any(digits):
        return max(-exponent, 0)
    stripped = len(digits) - next(i for i, d in enumerate(digits) if d)
    if exponent >= 0:
        return stripped + exponent
    return max(stripped, -exponent)


def check_code(value: str, field: str) -> str:
    """An item code, lot, order or location: printable, NFC, no surrounding spaces, not
    mixing lookalike scripts, at most MAX_CODE_LENGTH characters."""
    if not value:
        raise BadInput(f"{field}: empty")
    if len(value) > MAX_CODE_LENGTH:
        raise BadInput(f"{field}: longer than {MAX_CODE_LENGTH} characters")
    bad = next((c for c in value if not c.isprintable()), None)
    if bad is not None:
        raise BadInput(f"{field}: {value!r} holds the unprintable character {_name(bad)}")
    if value != value.strip():
        raise BadInput(f"{field}: {value!r} starts or ends with a space")
    if unicodedata.normalize("NFC", value) != value:
        raise BadInput(f"{field}: {value!r} is not in Unicode normal form NFC")
    scripts = sorted({s for c in value if (s := _script(c)) is not None})
    if len(scripts) > 1:
        raise BadInput(
            f"{field}: {value!r} mixes {' and '.join(s.title() for s in scripts)} letters"
            " (a lookalike of another code?)"
        )
    return value


def _script(char: str) -> str | None:
    if not char.isalpha():
        return None
    word = unicodedata.name(char, "").split(" ", 1)[0]
    return word if word in _CONFUSABLE_SCRIPTS else None


def _name(char: str) -> str:
    return f"U+{ord(char):04X}" + (
        f" {unicodedata.name(char)}" if unicodedata.name(char, "") else ""
    )


def gtin_check_digit(body: str) -> int:
    """GS1 mod-10: weights 3,1,3,… from the right of the body."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10
