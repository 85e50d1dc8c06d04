"""Serial barcode scanners: config.py (no I/O), driver.py (pyserial, imported to run)."""

from lineside.drivers.scanner.config import SerialScannerConfig
from lineside.drivers.spec import one_per_device

SPEC = one_per_device("scanner", SerialScannerConfig, "SerialScannerDriver", empty=[])
