"""Entry point of the boiler module container."""

import sys

from boiler_module.module import BoilerModule
from energy_edge_base.runtime import run_module

if __name__ == "__main__":
    sys.exit(run_module(BoilerModule()))
