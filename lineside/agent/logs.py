"""One line per event worth a technician's attention: key=value or JSON, to stderr."""

from __future__ import annotations

import json
import logging
import sys
from typing import Literal

_SKIP = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        parts = [
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={json.dumps(message)}",
        ]
        parts += [f"{k}={v}" for k, v in record.__dict__.items() if k not in _SKIP]
        if record.exc_info:
            parts.append(f"error={json.dumps(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in _SKIP})
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure(fmt: Literal["keyvalue", "json"], level: str) -> None:
    """Replace the root handlers: journald adds timestamps, so lines carry none."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The drivers report a device down once and up once; pymodbus would log every failed
    # connect in between, which is the noise a technician must not have to read.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    for noisy in ("paho", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
