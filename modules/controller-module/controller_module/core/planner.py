"""Peak planning: a forecast of the site's net load from its own history, and the lowest import
threshold the battery can hold over the coming day.

History: the site's load (import without battery and PV, heating included) and its PV output, averaged
per billing quarter. The load is kept per day type (weekday, Saturday, Sunday) and quarter of day, PV per
quarter of day; the forecast scales both by how today is running so far and adds an upper envelope
(k·deviation) so it errs toward higher peaks (see LoadHistory).

Plan: given the forecast for the next `horizon` quarters and the battery's state now, find by
bisection the lowest threshold T such that a battery discharging above T and recharging below T
(from the grid, never pushing import past T) never runs out. The limit the controller aims at is
max(T, the month's peak already set): once a month's peak is billed, aiming lower buys nothing.
The coming day is planned as if it came twice, so the plan leaves the battery able to do it again.
The solver is a plain simulation, so it cannot fail; with no history there is no plan and the
controller falls back to the configured limit or the rule (see controller.py).

Month floor: the lowest threshold a full battery could have held over the last month of actual quarters
(`hindsight_threshold`), in hindsight. Some day of any month is that hard, so spending the battery to hold
a plan far below it early in a month buys nothing and risks an empty battery when that day comes; the
controller never aims below a share of it (see controller.py).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from typing import Any

QUARTERS_PER_DAY = 96
DAY_TYPES = 3  # weekday, Saturday, Sunday


def day_type(day: dt.date) -> int:
    weekday = day.weekday()
    return 0 if weekday < 5 else weekday - 4


def quarter_of_day(t: dt.datetime) -> int:
    return (t.hour * 60 + t.minute) // 15


def _grid() -> list[list[float | None]]:
    return [[None] * QUARTERS_PER_DAY for _ in range(DAY_TYPES)]


def _zeros() -> list[list[float]]:
    return [[0.0] * QUARTERS_PER_DAY for _ in range(DAY_TYPES)]


@dataclass
class LoadHistory:
    """The site's load (without PV and battery) and PV output, learnt per billing quarter, and today's deviation.

    Load: per (day type, quarter of day) an EWMA of the mean and of the squared residual (what today's level
    does not explain); PV: per quarter of day (any day type) an EWMA of the output. The forecast of the net load is
    load mean × today's level + k·σ + short-term load error − PV mean × today's PV level, where:

    - today's level (`load_level`) is today's actual load over the mean so far, pulled toward a prior carried
      from yesterday's level: a whole day runs high or low together (weather, occupancy, a shift), and in
      proportion to the load, so a morning 20 % above the mean foretells an afternoon peak 20 % above it;
    - the short-term error is what the level does not explain (a machine switched on): an EWMA over completed
      quarters, fading by `bias_decay` per quarter ahead;
    - today's PV level works the same way for the sky: PV is learnt apart from the load, because a cloudy
      noon says nothing about the load and would otherwise be read as one.
    """

    alpha: float = 0.25
    k_sigma: float = 0.25
    mean: list[list[float | None]] = field(default_factory=_grid)
    var: list[list[float]] = field(default_factory=_zeros)
    pv_alpha: float = 0.2
    pv_mean: list[float] = field(default_factory=lambda: [0.0] * QUARTERS_PER_DAY)
    quarters_seen: int = 0
    level_prior_weight_q: float = 8.0  # the prior counts as this many quarters of today's mean load
    level_carry: float = 0.5  # share of yesterday's deviation expected again today
    pv_prior_weight_q: float = 2.0  # the sky changes faster than the load: a weaker prior for today's PV level
    bias_alpha: float = 0.3
    bias_decay: float = 0.9
    bias_kw: float = 0.0
    today: str = ""  # ISO date of the quarters summed below
    today_load_kwq: float = 0.0  # Σ actual load over today's completed quarters
    today_mean_kwq: float = 0.0  # Σ the history's mean for the same quarters
    today_pv_kwq: float = 0.0
    today_pv_mean_kwq: float = 0.0
    level_prior: float = 1.0

    def add(self, quarter_start: dt.datetime, load_kw: float, pv_kw: float = 0.0) -> None:
        d, q = day_type(quarter_start.date()), quarter_of_day(quarter_start)
        day = quarter_start.date().isoformat()
        if day != self.today:
            if self.today and self.today_mean_kwq > 0:
                self.level_prior = 1.0 + self.level_carry * (self.load_level() - 1.0)
            self.today, self.today_load_kwq, self.today_mean_kwq = day, 0.0, 0.0
            self.today_pv_kwq = self.today_pv_mean_kwq = 0.0
        old = self.mean[d][q]
        if old is None:
            self.mean[d][q] = load_kw
        else:
            residual = load_kw - old * self.load_level()
            self.bias_kw += self.bias_alpha * (residual - self.bias_kw)
            self.today_load_kwq += load_kw
            self.today_mean_kwq += old
            delta = load_kw - old
            self.mean[d][q] = old + self.alpha * delta
            # the envelope covers the spread today's level does not explain, the part no one foresees
            self.var[d][q] = (1 - self.alpha) * (self.var[d][q] + self.alpha * residual * residual)
        if self.quarters_seen >= QUARTERS_PER_DAY:
            self.today_pv_kwq += pv_kw
            self.today_pv_mean_kwq += self.pv_mean[q]
        self.pv_mean[q] += (pv_kw - self.pv_mean[q]) * (self.pv_alpha if self.quarters_seen >= QUARTERS_PER_DAY
                                                        else 1.0)
        self.quarters_seen += 1

    def load_level(self) -> float:
        """Today's load relative to the history's mean, shrunk toward the prior while few quarters are known."""
        typical = self._typical_kw()
        weight = self.level_prior_weight_q * typical
        if weight + self.today_mean_kwq <= 0:
            return self.level_prior
        return (self.level_prior * weight + self.today_load_kwq) / (weight + self.today_mean_kwq)

    def pv_level(self, prior: float = 1.0, prior_weight_q: float | None = None) -> float:
        """Today's PV relative to the history's mean, shrunk toward `prior` (the level expected before any of
        today's PV is measured: the mean, or a weather forecast's) while few quarters are known."""
        weight = (self.pv_prior_weight_q if prior_weight_q is None else prior_weight_q) * max(self.pv_mean) / 2
        if weight + self.today_pv_mean_kwq <= 0:
            return prior
        return (prior * weight + self.today_pv_kwq) / (weight + self.today_pv_mean_kwq)

    def _typical_kw(self) -> float:
        known = [m for row in self.mean for m in row if m is not None]
        return sum(known) / len(known) if known else 0.0

    def day_levels(self, day: dt.date) -> tuple[float, float]:
        """(load level, PV level) expected for `day`: today's as measured so far, later days part of it."""
        level = self.load_level()
        if day.isoformat() == self.today:  # the day today's sums belong to
            return level, self.pv_level()
        return 1.0 + self.level_carry * (level - 1.0), 1.0

    def forecast_parts(self, start: dt.datetime, quarters: int) -> tuple[list[float], list[float]] | None:
        """(load, PV) for the `quarters` following `start`: the load as an upper envelope with the short-term
        error, PV as expected; None without enough history."""
        loads: list[float] = []
        pvs: list[float] = []
        t = start
        bias = self.bias_kw
        levels: dict[dt.date, tuple[float, float]] = {}
        for _ in range(quarters):
            d, q = day_type(t.date()), quarter_of_day(t)
            mean = self.mean[d][q]
            if mean is None:
                mean = next((m[q] for m in self.mean if m[q] is not None), None)
            if mean is None:
                return None
            if t.date() not in levels:
                levels[t.date()] = self.day_levels(t.date())
            level, pv_level = levels[t.date()]
            loads.append(mean * level + self.k_sigma * math.sqrt(max(self.var[d][q], 0.0)) + bias)
            pvs.append(self.pv_mean[q] * pv_level)
            bias *= self.bias_decay
            t += dt.timedelta(minutes=15)
        return loads, pvs

    def forecast(self, start: dt.datetime, quarters: int) -> list[float] | None:
        """Upper-envelope net load for the `quarters` following `start`; None without enough history."""
        parts = self.forecast_parts(start, quarters)
        if parts is None:
            return None
        return [load - pv for load, pv in zip(*parts, strict=True)]

    def to_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LoadHistory:
        return cls(**{k: v for k, v in record.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class BatteryEnvelope:
    energy_kwh: float  # usable now, above the floor
    capacity_kwh: float  # between floor and ceiling
    max_charge_kw: float
    max_discharge_kw: float
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95


def holds(threshold_kw: float, net_kw: list[float], battery: BatteryEnvelope, step_h: float = 0.25,
          active: list[bool] | None = None) -> bool:
    """Can the battery keep import ≤ threshold over `net_kw`, recharging below it?

    `active` (default: every step) marks the steps in which demand is billed; in the others the threshold
    does not apply and the battery refills at its full rating."""
    energy = battery.energy_kwh
    for k, load in enumerate(net_kw):
        if active is not None and not active[k]:
            energy = min(battery.capacity_kwh, energy + battery.max_charge_kw * step_h * battery.charge_efficiency)
            continue
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


def plan_threshold(net_kw: list[float], battery: BatteryEnvelope, tolerance_kw: float = 0.5, repeats: int = 1,
                   active: list[bool] | None = None) -> float:
    """The lowest threshold the battery can hold over the forecast (bisection; holds() is monotone in T).

    `repeats` > 1 plans as if the forecast came that many times in a row: the battery must end it able to do
    it again, instead of being spent by the horizon's end as if nothing followed. `active` marks the steps in
    which demand is billed (default: all); only those are held under the threshold."""
    net_kw = list(net_kw) * repeats
    mask = None if active is None else list(active) * repeats
    billed = net_kw if mask is None else [x for x, on in zip(net_kw, mask, strict=True) if on]
    if not billed:
        return 0.0
    high = max(billed)
    # never below the lowest load of the horizon (unchanged from before windows); within a short window of
    # billed steps, though, the battery may well hold a level below all of them
    low = max(0.0, high - battery.max_discharge_kw, min(billed) if mask is None else 0.0)
    if holds(low, net_kw, battery, active=mask):
        return low
    while high - low > tolerance_kw:
        middle = (low + high) / 2
        if holds(middle, net_kw, battery, active=mask):
            high = middle
        else:
            low = middle
    return high


def hindsight_threshold(past_net_kw: list[float], battery: BatteryEnvelope, active: list[bool] | None = None
                        ) -> float:
    """The lowest threshold a battery starting full could have held over quarters that have happened (over the
    `active` ones, where demand is billed; default all)."""
    return plan_threshold(past_net_kw, replace(battery, energy_kwh=battery.capacity_kwh), active=active)
