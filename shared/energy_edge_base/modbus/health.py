"""A device's health, kept in one place: fed by the outcomes of its exchanges and polls, read by everyone else.

Two facts, each with one writer:

- the **link** (did the last exchange reach the device; consecutive transport failures; when the next attempt
  is allowed): written by the poller's exchanges and by the discovery that precedes it;
- the **data** (does the device have usable values; if not, the fault text people read): written by the poll
  loop, from the poll's outcome (a Modbus exception reply, frozen or invalid values make a device offline
  although its link is up).

`DeviceHealth.poll_outcome` is the state machine the module's events come from: it says whether a poll
outcome is news (the device went offline, its fault changed kind, or it came back).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from energy_edge_base.modbus.poller import BackoffPolicy

Change = Literal["offline", "online", "recovered"]


@dataclass(frozen=True)
class HealthChange:
    """A poll outcome that is news: `offline` (went offline or its fault changed kind), `recovered` (back
    online after a fault), `online` (online for the first time, nothing to recover from)."""

    change: Change
    fault: str | None  # the new fault (offline) or the one recovered from (recovered)


class DeviceHealth:
    """Online state, fault text, failure count and reconnect timing of one device."""

    def __init__(self, backoff: BackoffPolicy | None = None, *, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        from energy_edge_base.modbus.poller import BackoffPolicy  # the policy lives beside the poller

        self.backoff = backoff or BackoffPolicy()
        self.clock = clock
        self.rng = rng or random.Random()
        # link
        self.link_up = False
        self.last_error: BaseException | None = None  # kept after recovery as context
        self.consecutive_failures = 0
        self.retry_at_s = -math.inf
        # data
        self.online = False
        self.fault: str | None = None

    # ------------------------------------------------------------ link

    def backoff_remaining_s(self) -> float:
        """Seconds until the next attempt is allowed (0.0 when not backing off)."""
        return max(0.0, self.retry_at_s - self.clock())

    def link_reached(self) -> bool:
        """An exchange reached the device (exception replies included); True when the link just came up."""
        self.consecutive_failures = 0
        self.retry_at_s = -math.inf
        came_up = not self.link_up
        self.link_up = True
        return came_up

    def link_failed(self, error: BaseException, *, jitter: bool = True) -> tuple[float, bool]:
        """A transport failure: count it and back off; returns (delay in s, True when the link just went down)."""
        self.last_error = error
        self.consecutive_failures += 1
        delay_s = self.backoff.delay_s(self.consecutive_failures, self.rng if jitter else None)
        self.retry_at_s = self.clock() + delay_s
        went_down = self.link_up
        self.link_up = False
        return delay_s, went_down

    def link_closed(self) -> bool:
        """The connection was closed on purpose; True when the link was up."""
        was_up, self.link_up = self.link_up, False
        return was_up

    def discovered(self) -> None:
        """Discovery reached the device: no backoff for the poller that follows."""
        self.consecutive_failures = 0
        self.retry_at_s = -math.inf

    # ------------------------------------------------------------ data

    def poll_outcome(self, fault: str | None) -> HealthChange | None:
        """Record a poll's outcome (None: usable values) and say whether it is news."""
        was_online, had_fault = self.online, self.fault
        self.online, self.fault = fault is None, fault
        if self.online and not was_online:
            return HealthChange("recovered" if had_fault is not None else "online", had_fault)
        if not self.online and (was_online or fault_kind(had_fault) != fault_kind(fault)):
            return HealthChange("offline", fault)
        return None

    def values_refused(self, fault: str) -> None:
        """Values read but refused afterwards (the contract): offline with `fault`, not reported as news."""
        self.online, self.fault = False, fault


def fault_kind(fault: str | None) -> str | None:
    """The kind of a fault text (before its colon): a new kind is news, a new retry count is not."""
    return fault.split(":", 1)[0] if fault else None
