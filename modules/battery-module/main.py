"""Entry point of the battery module container."""

import sys

from battery_module.module import BatteryModule
from energy_edge_base.runtime import run_module

if __name__ == "__main__":
    sys.exit(run_module(BatteryModule()))
