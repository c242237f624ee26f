"""`python -m energy_edge.sim`: run the site simulator (same options as `energy-edge sim`)."""

import sys

from energy_edge.sim.main import main

sys.exit(main())
