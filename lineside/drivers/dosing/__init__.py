"""Dosing meters with an ASCII totalizer.

config.py (no I/O), driver.py (parsing lines into totals, pyserial, imported to run);
the simulator is lineside.simulators.dosing, a pump per meter.
"""

from lineside.drivers.dosing.config import AsciiMeterConfig
from lineside.drivers.spec import one_per_device

SPEC = one_per_device("dosing", AsciiMeterConfig, "AsciiMeterDriver", empty={})
