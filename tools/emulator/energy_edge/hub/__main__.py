"""`python -m energy_edge.hub`: the emulator alone (same options as `energy-edge hub`)."""

import sys

from energy_edge.hub.cli import main

sys.exit(main())
