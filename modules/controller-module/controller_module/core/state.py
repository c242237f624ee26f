"""Site state: what the controller knows of each asset, and the grid-import averages it is billed on.

`SiteAggregator` takes asset telemetry as it arrives (by route) and produces a `SiteState` per
cycle. Ages are in seconds of the caller's clock; the core never reads a clock itself.
"""

from __future__ import annotations

import collections
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

QUARTER_S = 900.0


@dataclass(frozen=True)
class BatteryView:
    asset_id: str
    online: bool
    power_kw: float  # + discharge
    soc_pct: float | None
    capacity_kwh: float | None
    max_charge_kw: float
    max_discharge_kw: float
    age_s: float = 0.0
    fault: str | None = None  # online but faulted (e.g. refusing commands): left out of allocation, held


@dataclass(frozen=True)
class SolarView:
    asset_id: str
    online: bool
    power_kw: float  # + generation
    rated_kw: float | None
    limit_pct: float | None
    age_s: float = 0.0


@dataclass(frozen=True)
class BoilerView:
    asset_id: str
    online: bool
    power_kw: float  # − heating
    water_temp_c: float | None
    min_temp_c: float | None
    max_temp_c: float | None
    rated_kw: float | None
    age_s: float = 0.0


@dataclass(frozen=True)
class MeterView:
    asset_id: str
    online: bool
    grid_import_kw: float  # + import
    peak_shaving_active: bool | None
    der_active: bool | None
    import_limit_kw: float | None
    age_s: float = 0.0
    fault: str | None = None


@dataclass(frozen=True)
class SiteState:
    now: dt.datetime
    meter: MeterView | None
    batteries: tuple[BatteryView, ...] = ()
    solars: tuple[SolarView, ...] = ()
    boilers: tuple[BoilerView, ...] = ()
    grid_import_avg_15min_kw: float | None = None  # rolling
    quarter_avg_kw: float | None = None  # the current billing quarter so far

    @property
    def battery_power_kw(self) -> float:
        return sum(b.power_kw for b in self.batteries if b.online)

    @property
    def boiler_power_kw(self) -> float:
        return sum(b.power_kw for b in self.boilers if b.online)

    @property
    def pv_power_kw(self) -> float:
        return sum(s.power_kw for s in self.solars if s.online)


class TimeAverage:
    """Time-weighted average of a sampled value over a trailing window (sample and hold)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, t_s: float, value: float) -> None:
        if self._samples and t_s < self._samples[-1][0]:
            self._samples.clear()  # the clock went backwards: start over rather than mix
        self._samples.append((t_s, value))
        while len(self._samples) > 2 and self._samples[1][0] <= t_s - self.window_s:
            self._samples.popleft()

    def average(self, now_s: float) -> float | None:
        if not self._samples:
            return None
        start = max(self._samples[0][0], now_s - self.window_s)
        if now_s <= start:
            return self._samples[-1][1]
        total = 0.0
        points = list(self._samples)
        for (t0, v0), (t1, _) in zip(points, [*points[1:], (now_s, 0.0)], strict=True):
            lo, hi = max(t0, start), min(t1, now_s)
            if hi > lo:
                total += v0 * (hi - lo)
        return total / (now_s - start)


@dataclass
class QuarterTracker:
    """Billing quarters (:00, :15, :30, :45): the running average of the current one, and the month's peak."""

    month: str = ""
    month_peak_kw: float = 0.0
    quarter_start_s: float | None = None
    energy_kws: float = 0.0
    last_t_s: float | None = None
    last_kw: float = 0.0
    completed: list[tuple[float, float]] = field(default_factory=list)  # (quarter start epoch s, avg kW), bounded

    def add(self, now: dt.datetime, grid_import_kw: float) -> None:
        t_s = now.timestamp()
        quarter_start = t_s - (t_s % QUARTER_S)
        month = now.strftime("%Y-%m")
        if self.quarter_start_s is None or self.last_t_s is None:
            self.quarter_start_s, self.last_t_s, self.last_kw, self.energy_kws = quarter_start, t_s, grid_import_kw, 0.0
            self.month = self.month or month
            return
        if quarter_start > self.quarter_start_s:
            # Close the previous quarter with the held value up to its end.
            end = self.quarter_start_s + QUARTER_S
            self.energy_kws += self.last_kw * max(0.0, end - self.last_t_s)
            avg = self.energy_kws / QUARTER_S
            quarter_month = dt.datetime.fromtimestamp(self.quarter_start_s, now.tzinfo).strftime("%Y-%m")
            if quarter_month != self.month:
                self.month, self.month_peak_kw = quarter_month, 0.0
            self.month_peak_kw = max(self.month_peak_kw, avg)
            self.completed.append((self.quarter_start_s, avg))
            del self.completed[:-2976]  # a month of quarters
            self.quarter_start_s, self.energy_kws, self.last_t_s = quarter_start, 0.0, quarter_start
        if month != self.month:
            self.month, self.month_peak_kw = month, 0.0
        self.energy_kws += self.last_kw * max(0.0, t_s - self.last_t_s)
        self.last_t_s, self.last_kw = t_s, grid_import_kw

    def revise(self, grid_import_kw: float) -> None:
        """Replace the value held from the last sample on, e.g. with the import expected after a setpoint the
        controller has just sent. At a 1-second cycle the next reading replaces it anyway; at a cycle as long as
        a quarter, holding the reading taken before the setpoint changed would book the unshaved import."""
        if self.last_t_s is not None:
            self.last_kw = grid_import_kw

    def quarter_average_kw(self) -> float | None:
        if self.quarter_start_s is None or self.last_t_s is None:
            return None
        elapsed = self.last_t_s - self.quarter_start_s
        return self.energy_kws / elapsed if elapsed > 0 else self.last_kw

    def to_record(self) -> dict[str, Any]:
        return {"month": self.month, "month_peak_kw": self.month_peak_kw}

    def restore(self, record: dict[str, Any]) -> None:
        self.month = str(record.get("month", ""))
        self.month_peak_kw = float(record.get("month_peak_kw", 0.0))
