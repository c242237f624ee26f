"""Peak planning: a forecast of the site's net load from its own history, and the lowest import
threshold the battery can hold over the coming day.

History: the net import without the battery (load − PV + heating), averaged per billing quarter
and kept per day type (weekday, Saturday, Sunday) and quarter of day, as an exponentially
weighted mean and an upper envelope (mean + k·deviation) so a forecast errs toward higher peaks.

Plan: given the forecast for the next `horizon` quarters and the battery's state now, find by
bisection the lowest threshold T such that a battery discharging above T and recharging below T
(from the grid, never pushing import past T) never runs out. The limit the controller aims at is
max(T, the month's peak already set): once a month's peak is billed, aiming lower buys nothing.
The solver is a plain simulation, so it cannot fail; with no history there is no plan and the
controller falls back to the configured limit or the rule (see controller.py).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

QUARTERS_PER_DAY = 96
DAY_TYPES = 3  # weekday, Saturday, Sunday


def day_type(day: dt.date) -> int:
    weekday = day.weekday()
    return 0 if weekday < 5 else weekday - 4


def quarter_of_day(t: dt.datetime) -> int:
    return (t.hour * 60 + t.minute) // 15


@dataclass
class LoadHistory:
    """Per (day type, quarter of day): EWMA of the net load and of its squared deviation."""

    alpha: float = 0.25
    k_sigma: float = 0.5  # 1.0 kept the limit above the day's need on most summer days
    mean: list[list[float | None]] = field(
        default_factory=lambda: [[None] * QUARTERS_PER_DAY for _ in range(DAY_TYPES)]
    )
    var: list[list[float]] = field(default_factory=lambda: [[0.0] * QUARTERS_PER_DAY for _ in range(DAY_TYPES)])
    quarters_seen: int = 0
    # Today's error, carried into the next hours: an EWMA of (actual − mean) over completed quarters, added to
    # the forecast and fading by bias_decay per quarter ahead (0.9: half gone in 1.6 h). A cloudy noon or a
    # machine running since morning shows up here hours before the battery runs dry. Tuned on one scenario
    # (commercial, seed 1) of the peak-shaving benchmark; a slower, day-long term made every month worse.
    bias_alpha: float = 0.3
    bias_decay: float = 0.9
    bias_kw: float = 0.0

    def add(self, quarter_start: dt.datetime, net_kw: float) -> None:
        d, q = day_type(quarter_start.date()), quarter_of_day(quarter_start)
        old = self.mean[d][q]
        if old is None:
            self.mean[d][q] = net_kw
        else:
            delta = net_kw - old
            self.bias_kw += self.bias_alpha * (delta - self.bias_kw)
            self.mean[d][q] = old + self.alpha * delta
            self.var[d][q] = (1 - self.alpha) * (self.var[d][q] + self.alpha * delta * delta)
        self.quarters_seen += 1

    def forecast(self, start: dt.datetime, quarters: int) -> list[float] | None:
        """Upper-envelope net load for the `quarters` following `start`; None without enough history."""
        out = []
        t = start
        bias = self.bias_kw
        for _ in range(quarters):
            d, q = day_type(t.date()), quarter_of_day(t)
            mean = self.mean[d][q]
            if mean is None:
                mean = next((m[q] for m in self.mean if m[q] is not None), None)
            if mean is None:
                return None
            out.append(mean + self.k_sigma * math.sqrt(max(self.var[d][q], 0.0)) + bias)
            bias *= self.bias_decay
            t += dt.timedelta(minutes=15)
        return out

    def to_record(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "k_sigma": self.k_sigma, "mean": self.mean, "var": self.var,
                "quarters_seen": self.quarters_seen, "bias_alpha": self.bias_alpha, "bias_decay": self.bias_decay,
                "bias_kw": self.bias_kw}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LoadHistory:
        return cls(**record)


@dataclass(frozen=True)
class BatteryEnvelope:
    energy_kwh: float  # usable now, above the floor
    capacity_kwh: float  # between floor and ceiling
    max_charge_kw: float
    max_discharge_kw: float
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95


def holds(threshold_kw: float, net_kw: list[float], battery: BatteryEnvelope, step_h: float = 0.25) -> bool:
    """Can the battery keep import ≤ threshold over `net_kw`, recharging below it?"""
    energy = battery.energy_kwh
    for load in net_kw:
        excess = load - threshold_kw
        if excess > 0:
            if excess > battery.max_discharge_kw + 1e-9:
                return False
            energy -= excess * step_h / battery.discharge_efficiency
            if energy < -1e-6:
                return False
        else:
            charge = min(-excess, battery.max_charge_kw)
            energy = min(battery.capacity_kwh, energy + charge * step_h * battery.charge_efficiency)
    return True


def plan_threshold(net_kw: list[float], battery: BatteryEnvelope, tolerance_kw: float = 0.5) -> float:
    """The lowest threshold the battery can hold over the forecast (bisection; holds() is monotone in T)."""
    high = max(net_kw)
    low = max(0.0, high - battery.max_discharge_kw, min(net_kw))
    if holds(low, net_kw, battery):
        return low
    while high - low > tolerance_kw:
        middle = (low + high) / 2
        if holds(middle, net_kw, battery):
            high = middle
        else:
            low = middle
    return high
