"""Events upstream: faults, recoveries, fail-safes, rejected configurations and restarts.

An `event` message goes on output `events`, which the manifest routes to `$upstream` for the asset modules,
the controller and the telemetry module (the console's stay on the site: its page shows them, and a route
would take the upstream budget past 2 000 a day): it is what an operator sees in IoT Hub without reading edge
logs. Upstream messages cost money (IoT Hub S1: 400 000 a day per unit; this product's budget is about 2 000
per site per day), so each module sends through a token bucket: bursts of `EVENT_BURST`, at most
`EVENTS_PER_DAY` on average. What the bucket holds back is counted (metric
`energy_edge_events_total{outcome="suppressed"}`) and said in the next event that passes, so a flapping
device costs a bounded number of messages and no information is silently lost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

EVENTS_OUTPUT = "events"
BURST_ENV = "ENERGY_EDGE_EVENT_BURST"  # a module's environment may raise the burst (a test site injecting faults)
EVENT_BURST = 10
EVENTS_PER_DAY = 40  # per module; six modules → ≤ 300 a day (with bursts) beside 1 440 summaries and 240 capability
# reports: 1 980 of the site's 2 000 (`energy-edge manifest check` adds them up)


@dataclass
class EventLimiter:
    """Token bucket: `burst` tokens, refilled at `per_day` a day."""

    burst: int = EVENT_BURST
    per_day: float = EVENTS_PER_DAY
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    held_back: int = field(init=False, default=0)
    _last_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)
        self._last_s = self.clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self._last_s) * self.per_day / 86_400)
        self._last_s = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.held_back += 1
        return False

    def take_held_back(self) -> int:
        """How many events were held back since the last one that passed (and reset the count)."""
        count, self.held_back = self.held_back, 0
        return count


def burst_from(env: dict[str, str] | os._Environ[str]) -> int:
    """The burst a module runs with: `ENERGY_EDGE_EVENT_BURST` from its environment, else EVENT_BURST."""
    try:
        return max(1, int(env.get(BURST_ENV, EVENT_BURST)))
    except ValueError:
        return EVENT_BURST
