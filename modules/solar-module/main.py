"""Entry point of the solar module container."""

import sys

from solar_module.module import SolarModule
from energy_edge_base.runtime import run_module

if __name__ == "__main__":
    sys.exit(run_module(SolarModule()))
