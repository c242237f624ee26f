"""Entry point of the microgrid-controller module container."""

import sys

from energy_edge_base.runtime import run_module
from microgrid_controller_module.module import PccModule

if __name__ == "__main__":
    sys.exit(run_module(PccModule()))
