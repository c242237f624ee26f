"""DeviceHealth as tables: a sequence of poll outcomes (or link outcomes) and what each step is expected to say."""

from __future__ import annotations

import pytest

from energy_edge_base.modbus import BackoffPolicy, DeviceHealth, DeviceUnavailable, HealthChange

UNREACHABLE = "unreachable: 10.0.0.5:502#1: timed out"
UNREACHABLE_AGAIN = "unreachable: 10.0.0.5:502#1: backing off 1.0 s after 2 failure(s)"
REJECTED = "modbus exception: 4 (DEVICE_FAILURE) to FC3 at 40000"
FROZEN = "frozen data: heartbeat unchanged for 3.0 s"

# Each step: (fault of the poll, None for usable values) -> (expected change or None, online after, fault after)
Step = tuple[str | None, HealthChange | None, bool, str | None]

POLL_CASES: dict[str, list[Step]] = {
    "first good poll is online, nothing recovered": [
        (None, HealthChange("online", None), True, None),
        (None, None, True, None),
    ],
    "first poll fails: offline is news": [
        (UNREACHABLE, HealthChange("offline", UNREACHABLE), False, UNREACHABLE),
    ],
    "online then unreachable then back": [
        (None, HealthChange("online", None), True, None),
        (UNREACHABLE, HealthChange("offline", UNREACHABLE), False, UNREACHABLE),
        (None, HealthChange("recovered", UNREACHABLE), True, None),
    ],
    "a new retry text of the same kind is not news": [
        (UNREACHABLE, HealthChange("offline", UNREACHABLE), False, UNREACHABLE),
        (UNREACHABLE_AGAIN, None, False, UNREACHABLE_AGAIN),
    ],
    "a fault of another kind is news again": [
        (UNREACHABLE, HealthChange("offline", UNREACHABLE), False, UNREACHABLE),
        (REJECTED, HealthChange("offline", REJECTED), False, REJECTED),
        (FROZEN, HealthChange("offline", FROZEN), False, FROZEN),
        (None, HealthChange("recovered", FROZEN), True, None),
    ],
}


@pytest.mark.parametrize("steps", POLL_CASES.values(), ids=POLL_CASES.keys())
def test_poll_outcomes(steps: list[Step]) -> None:
    health = DeviceHealth()
    for i, (fault, change, online, fault_after) in enumerate(steps):
        assert health.poll_outcome(fault) == change, f"step {i}"
        assert (health.online, health.fault) == (online, fault_after), f"step {i}"


def test_refused_values_go_offline_quietly_and_the_next_good_poll_recovers() -> None:
    health = DeviceHealth()
    assert health.poll_outcome(None) == HealthChange("online", None)
    health.values_refused("invalid values: NaN")
    assert (health.online, health.fault) == (False, "invalid values: NaN")
    assert health.poll_outcome(None) == HealthChange("recovered", "invalid values: NaN")


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


# Link steps: ("fail" | "reach" | "close", seconds passing before the step)
#   -> (link up after, consecutive failures, backoff remaining in s, the step's return)
LinkStep = tuple[str, float, bool, int, float, object]

LINK_CASES: dict[str, list[LinkStep]] = {
    "failures back off 1, 2, 4 s up to the cap": [
        ("fail", 0.0, False, 1, 1.0, (1.0, False)),
        ("fail", 1.0, False, 2, 2.0, (2.0, False)),
        ("fail", 2.0, False, 3, 4.0, (4.0, False)),
        ("fail", 4.0, False, 4, 5.0, (5.0, False)),
    ],
    "reaching the device clears the backoff; the first reach is the link coming up": [
        ("fail", 0.0, False, 1, 1.0, (1.0, False)),
        ("reach", 1.0, True, 0, 0.0, True),
        ("reach", 1.0, True, 0, 0.0, False),
        ("fail", 0.0, False, 1, 1.0, (1.0, True)),
    ],
    "closing says whether the link was up": [
        ("reach", 0.0, True, 0, 0.0, True),
        ("close", 0.0, False, 0, 0.0, True),
        ("close", 0.0, False, 0, 0.0, False),
    ],
}


@pytest.mark.parametrize("steps", LINK_CASES.values(), ids=LINK_CASES.keys())
def test_link_outcomes(steps: list[LinkStep]) -> None:
    clock = Clock()
    health = DeviceHealth(BackoffPolicy(initial_s=1.0, max_s=5.0, jitter_ratio=0.0), clock=clock)
    for i, (step, elapsed_s, link_up, failures, remaining_s, returned) in enumerate(steps):
        clock.now_s += elapsed_s
        if step == "fail":
            got: object = health.link_failed(DeviceUnavailable("dev", "timed out"))
        elif step == "reach":
            got = health.link_reached()
        else:
            got = health.link_closed()
        assert got == returned, f"step {i}"
        assert (health.link_up, health.consecutive_failures, health.backoff_remaining_s()) == (
            link_up, failures, remaining_s), f"step {i}"


def test_discovery_success_clears_the_backoff_without_bringing_the_link_up() -> None:
    clock = Clock()
    health = DeviceHealth(BackoffPolicy(initial_s=1.0, max_s=5.0), clock=clock)
    health.link_failed(RuntimeError("discovery failed"), jitter=False)
    assert health.backoff_remaining_s() == 1.0
    health.discovered()
    assert (health.backoff_remaining_s(), health.consecutive_failures, health.link_up) == (0.0, 0, False)
