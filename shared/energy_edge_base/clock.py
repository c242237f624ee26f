"""Site time: the wall clock on a real site, simulated time against an accelerated simulator.

The local run gives every module `ENERGY_EDGE_SIM_CLOCK=<origin ISO 8601>|<wall epoch at origin>|<simulated s
per real s>`, so billing quarters and days follow the simulated site rather than the machine's clock.
"""

from __future__ import annotations

import datetime as dt
import os
import time


class SiteClock:
    def __init__(self, spec: str | None = None) -> None:
        self.origin: dt.datetime | None = None
        self.wall0, self.accel = 0.0, 1.0
        if spec:
            origin, wall0, accel = spec.split("|")
            self.origin = dt.datetime.fromisoformat(origin)
            self.wall0, self.accel = float(wall0), float(accel)

    @classmethod
    def from_environment(cls) -> SiteClock:
        return cls(os.environ.get("ENERGY_EDGE_SIM_CLOCK") or None)

    def now(self) -> dt.datetime:
        if self.origin is None:
            return dt.datetime.now(dt.timezone.utc)
        return self.origin + dt.timedelta(seconds=(time.time() - self.wall0) * self.accel)
