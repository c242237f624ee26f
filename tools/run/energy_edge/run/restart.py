"""edgeAgent's restart rules as the local run applies them, to processes and containers alike.

A module's `restartPolicy` says whether an exit restarts it (`always`; `on-failure` and `on-unhealthy` only
after a non-zero exit; `never`); restarts back off from BACKOFF_MIN_S doubling to BACKOFF_MAX_S, and a
module that ran well for longer than twice the cap starts the backoff over.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0
RESTART_POLICIES = ("never", "on-failure", "on-unhealthy", "always")


@dataclass
class RestartBackoff:
    """One module's restart decisions: whether an exit restarts it, and the wait before it does."""

    policy: str  # one of RESTART_POLICIES
    next_delay_s: float = BACKOFF_MIN_S

    def restarts_after(self, exit_code: int) -> bool:
        """True when an exit with this code restarts the module."""
        return self.policy == "always" or (self.policy in ("on-failure", "on-unhealthy") and exit_code != 0)

    def delay_s(self, ran_s: float) -> float:
        """The wait before this restart, for a module that ran `ran_s` seconds; the next wait doubles."""
        if ran_s > 2 * BACKOFF_MAX_S:
            self.next_delay_s = BACKOFF_MIN_S  # it ran well for a while: the backoff starts over
        delay_s = self.next_delay_s
        self.next_delay_s = min(delay_s * 2, BACKOFF_MAX_S)
        return delay_s
