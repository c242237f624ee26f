"""Entry point of the solar module container."""

import sys

from energy_edge_base.runtime import run_module
from solar_module.module import SolarModule

if __name__ == "__main__":
    sys.exit(run_module(SolarModule()))
