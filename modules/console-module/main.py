"""Entry point of the console module container."""

import sys

from console_module.module import ConsoleModule
from energy_edge_base.runtime import run_module

if __name__ == "__main__":
    sys.exit(run_module(ConsoleModule()))
