"""Entry point of the telemetry module container."""

import sys

from energy_edge_base.runtime import run_module
from telemetry_module.module import TelemetryModule

if __name__ == "__main__":
    sys.exit(run_module(TelemetryModule()))
