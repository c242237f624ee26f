"""The restart rules the local run shares between processes and containers (run/restart.py), as tables."""

from __future__ import annotations

import pytest

from energy_edge.run.restart import RestartBackoff

RESTARTS = [  # policy, exit code, restarted
    ("always", 0, True), ("always", 1, True),
    ("on-failure", 0, False), ("on-failure", 3, True),
    ("on-unhealthy", 0, False), ("on-unhealthy", -9, True),
    ("never", 0, False), ("never", 1, False),
]


@pytest.mark.parametrize(("policy", "exit_code", "restarted"), RESTARTS)
def test_which_exits_restart(policy: str, exit_code: int, restarted: bool) -> None:
    assert RestartBackoff(policy).restarts_after(exit_code) is restarted


DELAYS = {  # seconds each run lasted before it exited -> the waits before each restart
    "crash loop doubles to the cap": ([0.1] * 9, [1, 2, 4, 8, 16, 32, 60, 60, 60]),
    "a long good run starts over": ([0.1, 0.1, 0.1, 121.0, 0.1], [1, 2, 4, 1, 2]),
    "a run of exactly twice the cap does not": ([0.1, 0.1, 120.0], [1, 2, 4]),
}


@pytest.mark.parametrize(("ran_s", "waits_s"), DELAYS.values(), ids=DELAYS.keys())
def test_restart_waits(ran_s: list[float], waits_s: list[float]) -> None:
    backoff = RestartBackoff("always")
    assert [backoff.delay_s(r) for r in ran_s] == waits_s
