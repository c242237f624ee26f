"""Entry point of the microgrid-controller module container."""

import sys

from microgrid_controller_module.module import PccModule
from energy_edge_base.runtime import run_module

if __name__ == "__main__":
    sys.exit(run_module(PccModule()))
