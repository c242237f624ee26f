"""Entry point of the controller module container."""

import sys

from controller_module.module import ControllerModule
from energy_edge_base.runtime import run_module

if __name__ == "__main__":
    sys.exit(run_module(ControllerModule()))
