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
controller falls back to the configured limit or the rule (see `LimitPlanner.limit` below).

Month floor: the lowest threshold a full battery could have held over the last month of actual quarters
(`hindsight_threshold`), in hindsight. Some day of any month is that hard, so spending the battery to hold
a plan far below it early in a month buys nothing and risks an empty battery when that day comes; the
controller never aims below a share of it (`MONTH_FLOOR_SHARE`, below).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from controller_module.core.allocation import Unit
from controller_module.core.config import ControllerConfig
from controller_module.core.state import QUARTER_S, BatteryView
from controller_module.core.tariff import DemandCharge, DemandLedger

if TYPE_CHECKING:  # the controller's memory, which the planner reads and writes (controller.py imports this module)
    from controller_module.core.controller import Memory

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
          active: list[bool] | None = None, ceilings_kw: list[float | None] | None = None) -> bool:
    """Can the battery keep import ≤ threshold over `net_kw`, recharging below it?

    `active` (default: every step) marks the steps in which demand is billed; in the others the threshold
    does not apply and the battery refills at its full rating. `ceilings_kw` (default: none) is another demand
    charge's limit per step (None where it does not count): import is held under it too, and outside `active`
    the battery refills only below it."""
    energy = battery.energy_kwh
    for k, load in enumerate(net_kw):
        limit_kw = threshold_kw
        ceiling_kw = None if ceilings_kw is None else ceilings_kw[k]
        if active is not None and not active[k]:
            if ceiling_kw is None:
                energy = min(battery.capacity_kwh, energy + battery.max_charge_kw * step_h * battery.charge_efficiency)
                continue
            limit_kw = ceiling_kw
        elif ceiling_kw is not None:
            limit_kw = min(limit_kw, ceiling_kw)
        excess = load - limit_kw
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
                   active: list[bool] | None = None, ceilings_kw: list[float | None] | None = None) -> float:
    """The lowest threshold the battery can hold over the forecast (bisection; holds() is monotone in T).

    `repeats` > 1 plans as if the forecast came that many times in a row: the battery must end it able to do
    it again, instead of being spent by the horizon's end as if nothing followed. `active` marks the steps in
    which demand is billed (default: all); only those are held under the threshold. `ceilings_kw`: another
    charge's limit per step, as in holds()."""
    net_kw = list(net_kw) * repeats
    mask = None if active is None else list(active) * repeats
    ceilings = None if ceilings_kw is None else list(ceilings_kw) * repeats
    billed = net_kw if mask is None else [x for x, on in zip(net_kw, mask, strict=True) if on]
    if not billed:
        return 0.0
    high = max(billed)
    # never below the lowest load of the horizon (unchanged from before windows); within a short window of
    # billed steps, though, the battery may well hold a level below all of them
    low = max(0.0, high - battery.max_discharge_kw, min(billed) if mask is None else 0.0)
    if holds(low, net_kw, battery, active=mask, ceilings_kw=ceilings):
        return low
    while high - low > tolerance_kw:
        middle = (low + high) / 2
        if holds(middle, net_kw, battery, active=mask, ceilings_kw=ceilings):
            high = middle
        else:
            low = middle
    return high


def hindsight_threshold(past_net_kw: list[float], battery: BatteryEnvelope, active: list[bool] | None = None
                        ) -> float:
    """The lowest threshold a battery starting full could have held over quarters that have happened (over the
    `active` ones, where demand is billed; default all)."""
    return plan_threshold(past_net_kw, replace(battery, energy_kwh=battery.capacity_kwh), active=active)


# how far the charge that counts in most quarters may be planned above its own plan, in shares of the batteries'
# charge rating, so that the others refill faster between their windows
JOINT_RAISES = (0.25, 0.5, 1.0)


def plan_charges(net_kw: list[float], battery: BatteryEnvelope, counts: list[list[bool] | None],
                 prices_per_kw_year: list[float], billed_kw: list[float], repeats: int = 1,
                 tolerance_kw: float = 0.5) -> list[float]:
    """The thresholds of demand charges that count at different times (`counts`: per charge, the quarters in
    which it counts; None: all), planned together for the lowest demand bill.

    Each charge's own plan assumes the battery refills at its full rating outside that charge's windows; but
    there the charge that counts in most quarters (the all-hours peak) still caps import, and so the refill. The
    narrower charges are planned under that cap, and the broad charge is planned higher where the refill that
    buys for them is worth more than it costs (a §19 window peak at 120 a kW against an all-hours peak at 10)."""
    alone = [plan_threshold(net_kw, battery, tolerance_kw, repeats, active) for active in counts]
    counted = [len(net_kw) if active is None else sum(active) for active in counts]
    broad = counted.index(max(counted))
    narrow = [i for i, active in enumerate(counts) if i != broad and active is not None]
    broad_counts = counts[broad]
    if not narrow:
        return alone

    def under(level_kw: float) -> list[float]:
        ceilings = [level_kw if broad_counts is None or broad_counts[k] else None for k in range(len(net_kw))]
        return [plan_threshold(net_kw, battery, tolerance_kw, repeats, counts[i], ceilings) for i in narrow]

    def cost(level_kw: float, plans: list[float]) -> float:
        return prices_per_kw_year[broad] * max(level_kw, billed_kw[broad]) + sum(
            prices_per_kw_year[i] * max(kw, billed_kw[i]) for i, kw in zip(narrow, plans, strict=True))

    base_kw = max(alone[broad], billed_kw[broad])  # below what is billed, a higher plan costs nothing
    best_kw, best_plans = base_kw, under(base_kw)
    if all(kw <= alone[i] + tolerance_kw for i, kw in zip(narrow, best_plans, strict=True)):
        return alone  # the cap never slowed the refill
    best_cost = cost(best_kw, best_plans)
    narrow_least = sum(prices_per_kw_year[i] * max(alone[i], billed_kw[i]) for i in narrow)
    for share in JOINT_RAISES:
        level_kw = base_kw + share * battery.max_charge_kw
        if prices_per_kw_year[broad] * level_kw + narrow_least >= best_cost:
            break  # even the narrow charges' own plans would not pay for it
        plans = under(level_kw)
        if cost(level_kw, plans) < best_cost:
            best_kw, best_plans, best_cost = level_kw, plans, cost(level_kw, plans)
    joint = list(alone)
    joint[broad] = best_kw
    for i, kw in zip(narrow, best_plans, strict=True):
        joint[i] = kw
    return joint


# ------------------------------------------------------------ the limit the controller guards

PLAN_EVERY = dt.timedelta(minutes=15)
PLAN_HORIZON_QUARTERS = 96
# the coming day planned as if it came twice: a one-pass plan spends the battery by the horizon's end, and on
# a month's first days (no peak set yet) aimed at 20 kW where 42 were needed, then met a cloudy morning empty
PLAN_REPEATS = 2
# never plan below this share of the month floor: 0.7-0.8 measured alike, 0.9 and 1.0 held too high a limit
# whenever the load falls from one month to the next (benchmarks/README.md, change 7)
MONTH_FLOOR_SHARE = 0.8
MONTH_FLOOR_MIN_DAYS = 7  # fewer days of quarters say too little about a month's hardest day
COLD_START_MIN_HOURS = 2.0  # without history, the energy is spread over the hours left today, at least these


def _quarter_start(now: dt.datetime) -> dt.datetime:
    return dt.datetime.fromtimestamp(now.timestamp() - now.timestamp() % QUARTER_S, now.tzinfo)


class LimitPlanner:
    """Plans the import limit for the controller: learns the history, plans the threshold, keeps the month floor
    and the tariff's billed demand. Reads and writes the controller's `Memory`, reads its configuration."""

    def __init__(self, config: ControllerConfig, memory: Memory) -> None:
        self.config = config
        self.memory = memory

    def learn(self, now: dt.datetime, load_kw: float, pv_kw: float) -> None:
        """Feed the history with completed quarters of load (without battery and PV) and of PV output."""
        mem = self.memory
        # compare the last completed quarter, not the list's length: the tracker keeps only a month of them,
        # so once full its length no longer grows (the history stopped learning after 31 days)
        before = mem.load_quarter.completed[-1][0] if mem.load_quarter.completed else None
        mem.load_quarter.add(now, load_kw)
        mem.pv_quarter.add(now, pv_kw)
        if mem.load_quarter.completed and mem.load_quarter.completed[-1][0] != before:
            start_s, load_avg = mem.load_quarter.completed[-1]
            pv_avg = mem.pv_quarter.completed[-1][1]  # both trackers take the same instants: same quarters
            mem.history.add(dt.datetime.fromtimestamp(start_s, now.tzinfo), load_avg, pv_avg)

    def limit(self, now: dt.datetime, g_now: float, batteries: list[BatteryView], units: list[Unit]
               ) -> tuple[float | None, str]:
        cfg, mem = self.config, self.memory
        if cfg.import_limit_kw is not None:
            return cfg.import_limit_kw, "twin"
        billed_kw = self._billed_kw(now)
        if self._charges_differ():
            by_charge = self._limit_by_charge(now, g_now, batteries, units)
            if by_charge is not None:
                return by_charge
        planning = self._due_forecast(now, g_now, units)
        if planning is not None:
            start, forecast = planning
            mem.planned_threshold_kw = plan_threshold(forecast, self._envelope(batteries, units),
                                                      repeats=PLAN_REPEATS,
                                                      active=self.billed_quarters(start, len(forecast)))
        if billed_kw is None:
            return None, "outside tariff windows"  # nothing is billed now: no limit, the battery refills freely
        if mem.planned_threshold_kw is not None:
            floor_kw = MONTH_FLOOR_SHARE * self._month_floor(now, batteries, units)
            limit_kw = max(mem.planned_threshold_kw, billed_kw)
            return (limit_kw, "planned") if limit_kw >= floor_kw else (floor_kw, "month floor")
        # no history yet: the rule (OpenEMS style) with a fixed threshold, never below what is billed already;
        # recharging happens below it within the headroom, as in every mode
        if cfg.rule_threshold_kw is not None:
            return max(cfg.rule_threshold_kw, billed_kw), "rule"
        # (with a tariff other than the default, also while nothing is billed yet: a window's first quarter of
        # the year is in the day, and refilling without a limit there billed 210 kW where 189 were the load)
        if billed_kw > 0 or (units and not cfg.tariff.is_monthly_all_hours):
            # hold the billed peak, but shave no faster than the batteries can keep up until midnight: a peak
            # set overnight, held through the morning's ramp, emptied the battery by noon on the first day
            if not units:
                return billed_kw, "rule"
            return max(billed_kw, g_now - self._cold_start_kw(now, batteries, units)), "rule"
        return None, "none"

    # ------------------------------------------------------------ the tariff (core/tariff.py)

    def _billed_kw(self, now: dt.datetime) -> float | None:
        """The import up to which nothing more is billed now: the tariff's billed demand so far (the month's
        peak for the default tariff, as the quarter tracker keeps it); None when no demand charge counts now."""
        mem, tariff = self.memory, self.config.tariff
        if tariff.is_monthly_all_hours:
            return mem.quarters.month_peak_kw
        if mem.ledger is None or mem.ledger.tariff != tariff:
            mem.ledger = DemandLedger.from_record(tariff, mem.ledger_record)
            mem.ledger_quarter_s = mem.quarters.completed[-1][0] if mem.quarters.completed else None
        for start_s, mean_kw in mem.quarters.completed[-8:]:  # the quarters completed since the last cycle
            if mem.ledger_quarter_s is None or start_s > mem.ledger_quarter_s:
                mem.ledger.add_quarter(dt.datetime.fromtimestamp(start_s, now.tzinfo), mean_kw, QUARTER_S)
                mem.ledger_quarter_s = start_s
        # the quarter under way counts already: a new period starts with nothing billed
        return mem.ledger.free_kw(now)

    def _charges_differ(self) -> bool:
        """Do the tariff's demand charges count at different times (on-peak beside all-hours, §19 windows)?"""
        charges = self.config.tariff.demand_charges
        return len({c.windows for c in charges}) > 1

    def _due_forecast(self, now: dt.datetime, g_now: float, units: list[Unit]
                      ) -> tuple[dt.datetime, list[float]] | None:
        """(start of this quarter, the forecast from it) when a plan is due (every PLAN_EVERY), else None; the
        forecast's first quarter is the present, which is known."""
        mem = self.memory
        if mem.planned_at is not None and now - mem.planned_at < PLAN_EVERY:
            return None
        mem.planned_at = now
        start = _quarter_start(now)
        forecast = mem.history.forecast(start, PLAN_HORIZON_QUARTERS)
        if forecast is None or not units:
            return None
        forecast[0] = g_now
        mem.forecast_start, mem.forecast_kw = start, forecast  # energy shifting sizes its reserve with it
        return start, forecast

    def _limit_by_charge(self, now: dt.datetime, g_now: float, batteries: list[BatteryView], units: list[Unit]
                         ) -> tuple[float | None, str] | None:
        """The charges planned together over their own quarters (plan_charges), never below what each bills already
        or below its share of the month floor; the limit now is the lowest of the charges counting now: an
        on-peak window is held lower than the all-hours peak. None until there is a plan (then the common
        path's cold start applies)."""
        mem, charges = self.memory, self.config.tariff.demand_charges
        planning = self._due_forecast(now, g_now, units)
        if planning is not None:
            start, forecast = planning
            times = [start + dt.timedelta(seconds=k * QUARTER_S) for k in range(len(forecast))]
            envelope = self._envelope(batteries, units)
            ledger = mem.ledger
            mem.charge_thresholds_kw = plan_charges(
                forecast, envelope, [[c.counts_at(t) for t in times] if c.windows else None for c in charges],
                [c.price_per_kw_year for c in charges],
                [0.0 if ledger is None else ledger.billed_kw(i, now) for i in range(len(charges))],
                repeats=PLAN_REPEATS)
        if mem.charge_thresholds_kw is None or mem.ledger is None:
            return None
        floors = self._charge_floors(now, batteries, units)
        best: tuple[float, str] | None = None
        for i, charge in enumerate(charges):
            if not charge.counts_at(now):
                continue
            planned_kw = max(mem.charge_thresholds_kw[i], mem.ledger.billed_kw(i, now))
            floor_kw = MONTH_FLOOR_SHARE * floors[i] if i < len(floors) else 0.0
            candidate = (planned_kw, "planned") if planned_kw >= floor_kw else (floor_kw, "month floor")
            if best is None or candidate[0] < best[0]:
                best = candidate
        return (None, "outside tariff windows") if best is None else best

    def _charge_floors(self, now: dt.datetime, batteries: list[BatteryView], units: list[Unit]) -> list[float]:
        """Per charge, the month floor over its own quarters of the last month (once a day)."""
        mem = self.memory
        day = now.date().isoformat()
        if day == mem.charge_floor_day or not units:
            return mem.charge_floors_kw
        mem.charge_floor_day = day
        loads, pvs = mem.load_quarter.completed, mem.pv_quarter.completed
        if len(loads) >= MONTH_FLOOR_MIN_DAYS * QUARTERS_PER_DAY:
            past_net_kw = [load - pv for (_, load), (_, pv) in zip(loads, pvs, strict=True)]
            times = [dt.datetime.fromtimestamp(start_s, now.tzinfo) for start_s, _ in loads]
            envelope = self._envelope(batteries, units)
            mem.charge_floors_kw = [
                hindsight_threshold(past_net_kw, envelope, active=[c.counts_at(t) for t in times] if c.windows
                                    else None)
                for c in self.config.tariff.demand_charges]
        return mem.charge_floors_kw

    def billed_quarters(self, start: dt.datetime, quarters: int) -> list[bool] | None:
        """Which of the quarters from `start` on bill demand (None: all of them, as without time windows)."""
        return self._billed_at([start + dt.timedelta(seconds=k * QUARTER_S) for k in range(quarters)])

    def _billed_at(self, times: list[dt.datetime]) -> list[bool] | None:
        tariff = self.config.tariff
        if all(not c.windows for c in tariff.demand_charges):
            return None
        return [tariff.demand_counts_at(t) for t in times]

    def _envelope(self, batteries: list[BatteryView], units: list[Unit]) -> BatteryEnvelope:
        """The site's batteries as one, for day-long plans: the ratings (the taper near floor and ceiling is a
        matter of minutes) and the energy within the configured SOC window."""
        cfg = self.config
        return BatteryEnvelope(
            energy_kwh=sum(max(0.0, u.soc_pct - cfg.min_soc_pct) / 100 * u.capacity_kwh for u in units),
            capacity_kwh=sum((cfg.max_soc_pct - cfg.min_soc_pct) / 100 * u.capacity_kwh for u in units),
            max_charge_kw=sum(b.max_charge_kw for b in batteries),
            max_discharge_kw=sum(b.max_discharge_kw for b in batteries),
        )

    def _cold_start_kw(self, now: dt.datetime, batteries: list[BatteryView], units: list[Unit]) -> float:
        """Without history: the discharge (+) the batteries can keep up over what is left today, or the refill (−)
        they need before a dearer charge's window later today.

        Without windowed charges counting today, the energy is spread evenly until midnight (at least
        COLD_START_MIN_HOURS). Inside the windows of the charge with the fewest quarters left today, it is spread
        over those quarters, the battery refilling at its rating between them (spread to midnight instead, a
        window's first day, billed for the year, kept 177 of 300 kWh while its peak set the year's bill). Before
        such a window, when its charge is dearer than those counting now, the battery refills just in time for it:
        spent there on the cheaper all-hours peak, it met the window half empty."""
        envelope = self._envelope(batteries, units)
        usable_kwh = envelope.energy_kwh * envelope.discharge_efficiency
        to_midnight_kw = min(envelope.max_discharge_kw,
                             usable_kwh / max(COLD_START_MIN_HOURS, 24 - now.hour - now.minute / 60))
        window = self._window_left_today(now)
        if window is None:
            return to_midnight_kw
        quarters, charge = window
        if quarters[0]:
            # the largest even discharge over the window quarters that the energy, refilled between them, lasts:
            # the lowest threshold held over a load of that discharge in them
            most_kw = min(envelope.max_discharge_kw, usable_kwh / COLD_START_MIN_HOURS)
            return most_kw - plan_threshold([most_kw if billed else 0.0 for billed in quarters], envelope,
                                            tolerance_kw=0.005, active=quarters)
        counting_now = [c.price_per_kw_year for c in self.config.tariff.demand_charges if c.counts_at(now)]
        if counting_now and charge.price_per_kw_year <= max(counting_now):
            return to_midnight_kw
        hours_before_h = quarters.index(True) * QUARTER_S / 3600 - (now - _quarter_start(now)).total_seconds() / 3600
        missing_kwh = (envelope.capacity_kwh - envelope.energy_kwh) / envelope.charge_efficiency
        return -min(envelope.max_charge_kw, missing_kwh / max(hours_before_h, QUARTER_S / 3600))

    def _window_left_today(self, now: dt.datetime) -> tuple[list[bool], DemandCharge] | None:
        """For the windowed charge with the fewest quarters left today (the present one included, if any has one):
        which of today's quarters from the present on it counts in, and the charge."""
        quarter = dt.timedelta(seconds=QUARTER_S)
        start = _quarter_start(now)
        times = [start + k * quarter for k in range(QUARTERS_PER_DAY) if (start + k * quarter).date() == now.date()]
        best: tuple[list[bool], DemandCharge] | None = None
        for charge in self.config.tariff.demand_charges:
            if not charge.windows:
                continue
            quarters = [charge.counts_at(t) for t in times]
            if any(quarters) and (best is None or sum(quarters) < sum(best[0])):
                best = (quarters, charge)
        return best

    def _month_floor(self, now: dt.datetime, batteries: list[BatteryView], units: list[Unit]) -> float:
        """The hindsight threshold of the last month of actual quarters, recomputed once a day."""
        mem = self.memory
        day = now.date().isoformat()
        if day == mem.month_floor_day or not units:
            return mem.month_floor_kw
        mem.month_floor_day = day
        loads, pvs = mem.load_quarter.completed, mem.pv_quarter.completed  # the same quarters, a month of them
        if len(loads) >= MONTH_FLOOR_MIN_DAYS * QUARTERS_PER_DAY:
            past_net_kw = [load - pv for (_, load), (_, pv) in zip(loads, pvs, strict=True)]
            active = self._billed_at([dt.datetime.fromtimestamp(start_s, now.tzinfo) for start_s, _ in loads])
            mem.month_floor_kw = hindsight_threshold(past_net_kw, self._envelope(batteries, units), active=active)
        return mem.month_floor_kw
