"""The peers a user would otherwise run, on the same data and plant as the controller.

**Rule tuned on the previous month** (what an installer can do): the OpenEMS-style fixed threshold (rule.py),
re-tuned at the start of every month on the month before only (the same grid search as the hindsight rule,
starting from a full battery); the first month uses the threshold tuned on its first week.

**MPC with a capacity charge**, the way EMHASS plans (a rolling-horizon LP):
- every 15-minute step, an LP over the next 24 h (96 steps) minimises the tariff's bill over the horizon:
  each demand charge's price × its billed demand (one variable for the period under way, whose floor is what
  is billed already, the period's peak so far; one for the next period if the horizon reaches into it, whose
  floor is its minimum or ratchet), the TOU energy cost minus the export credit, and minus a terminal value
  on the SOC left at the horizon's end: per kWh, `terminal_weight` × the dearest demand price / the battery's
  duration (capacity / power: a kWh kept takes that share of a kW off a later peak), and at least the horizon's
  mean import price. The weight trades today's peak against tomorrow's: on the tuning runs 0.05 and 0.1 gave the
  same monthly-peak ratio (0.532), 0.25 0.500, 0.5 0.452 (benchmarks/README.md);
- demand is held per step (a 15-minute mean under the billed level holds any longer interval's mean under it);
- the first step is the present (its net load is measured); later steps are forecasts from history only:
  load from the same time yesterday (`yesterday`), the same weekday last week (`last-week`) or the mean of the
  last four same weekdays (`mean-4-weeks`); PV from the same time yesterday, or the true PV (`perfect_pv`, as
  a perfect weather forecast would give it);
- only the first step's decision is applied (through the plant), then it is solved again. The LP is built once
  and changed in place (bounds, costs), so HiGHS starts from the last basis.
Its settings (forecast, terminal weight) are chosen on the tuning runs (data.TUNING_RUNS) only, under the
default tariff (benchmarks/mpc_tuning.py): the mean of the last four same weekdays (0.532 against 0.476 for
last week and 0.459 for yesterday), terminal weight 0.1.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from controller_module.core.tariff import DemandLedger
from energy_edge.bench import rule
from energy_edge.bench.data import QUARTERS_PER_DAY, STEP_H, SiteSeries
from energy_edge.bench.optimum import OptimumError, _quiet_stdout
from energy_edge.bench.plant import BatterySpec, Plant, Violations
from energy_edge.bench.tariffs import TariffSteps

HORIZON = QUARTERS_PER_DAY
WEEK = 7 * QUARTERS_PER_DAY
LOAD_FORECASTS = ("yesterday", "last-week", "mean-4-weeks")


@dataclass(frozen=True)
class PeerRun:
    battery_kw: np.ndarray
    soc_kwh: np.ndarray
    violations: Violations
    thresholds_kw: np.ndarray | None = None


def previous_month_rule(series: SiteSeries, battery: BatterySpec) -> PeerRun:
    labels, month_of_step = series.month_index()
    net = series.net_kw
    thresholds = np.empty(series.steps)
    for m in range(len(labels)):
        if m == 0:
            span = net[: 7 * QUARTERS_PER_DAY]
            tuned = rule.tune(span, np.zeros(span.size, dtype=np.int64), 1, battery).threshold_kw
        else:
            span = net[month_of_step == m - 1]
            tuned = rule.tune(span, np.zeros(span.size, dtype=np.int64), 1, battery).threshold_kw
        thresholds[month_of_step == m] = tuned
    per_step = thresholds[:, None]
    schedule = rule.simulate(net, per_step, per_step, battery)[:, 0]
    plant = Plant(battery)
    applied, soc = np.empty_like(schedule), np.empty_like(schedule)
    for k, power in enumerate(schedule):
        applied[k] = plant.apply(float(power), float(net[k]))
        soc[k] = plant.soc_kwh
    return PeerRun(applied, soc, plant.violations, thresholds)


def load_forecast(load_kw: np.ndarray, k: int, horizon: int, method: str) -> np.ndarray:
    """Load for steps k+1 .. k+horizon−1 from steps before k only (the present k is measured apart)."""
    targets = np.arange(k + 1, k + horizon)
    if method == "perfect":  # a bound, not a peer: the true load (the last step repeated past the data's end)
        perfect: np.ndarray = load_kw[np.minimum(targets, load_kw.size - 1)]
        return perfect
    if method == "yesterday":
        lags = [QUARTERS_PER_DAY]
    elif method == "last-week":
        lags = [WEEK]
    elif method == "mean-4-weeks":
        lags = [WEEK, 2 * WEEK, 3 * WEEK, 4 * WEEK]
    else:
        raise ValueError(f"unknown load forecast {method!r}; one of {', '.join(LOAD_FORECASTS)}")
    out = np.zeros(targets.size)
    count = np.zeros(targets.size)
    for lag in lags:
        source = targets - lag
        # a lag that reaches into the future (a horizon longer than the lag) or before the data is skipped
        ok = (source >= 0) & (source < k)
        out[ok] += load_kw[source[ok]]
        count[ok] += 1
    # without such history (the first days): the same time yesterday if known, else the present
    missing = count == 0
    if missing.any():
        back = targets[missing] - QUARTERS_PER_DAY
        known = (back >= 0) & (back < k)
        fill = np.full(back.size, load_kw[k])
        fill[known] = load_kw[back[known]]
        out[missing] = fill
        count[missing] = 1
    forecast: np.ndarray = out / count
    return forecast


@dataclass(frozen=True)
class MpcSettings:
    load_forecast: str = "mean-4-weeks"
    perfect_pv: bool = False
    terminal_weight: float = 0.1  # chosen on the tuning runs (benchmarks/README.md)
    horizon: int = HORIZON


def mpc(series: SiteSeries, steps: TariffSteps, battery: BatterySpec, settings: MpcSettings) -> PeerRun:
    import highspy

    tariff = steps.tariff
    n, h = series.steps, settings.horizon
    charges = tariff.demand_charges
    eta = battery.efficiency_one_way
    inf = highspy.kHighsInf
    load, pv, net = series.load_kw, series.pv_kw, series.net_kw
    # columns: charge, discharge, soc, import, export (h each), then per charge: this period, next period
    ch, dis, soc, imp, exp, peak = 0, h, 2 * h, 3 * h, 4 * h, 5 * h
    n_cols = 5 * h + 2 * len(charges)
    j = np.arange(h)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []

    def entries(row: np.ndarray, col: np.ndarray, val: float | np.ndarray) -> None:
        rows.append(row)
        cols.append(col)
        vals.append(np.broadcast_to(np.asarray(val, dtype=float), row.shape))

    # rows 0..h−1: balance  imp − exp − ch + dis = net
    entries(j, imp + j, 1.0)
    entries(j, exp + j, -1.0)
    entries(j, ch + j, -1.0)
    entries(j, dis + j, 1.0)
    # rows h..2h−1: SOC  soc_j − soc_{j−1} − η Δt ch + Δt/η dis = (soc0 for j = 0)
    entries(h + j, soc + j, 1.0)
    entries(h + j[1:], soc + j[1:] - 1, -1.0)
    entries(h + j, ch + j, -eta * STEP_H)
    entries(h + j, dis + j, STEP_H / eta)
    # per charge c and slot s (0 this period, 1 next): imp_j − peak_{c,s} ≤ 0, switched off by a +inf bound
    demand_row0 = 2 * h
    for c in range(len(charges)):
        for slot in range(2):
            base = demand_row0 + (2 * c + slot) * h
            entries(base + j, imp + j, 1.0)
            entries(base + j, np.full(h, peak + 2 * c + slot), -1.0)
    n_rows = demand_row0 + 2 * len(charges) * h
    r, cc, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    order = np.lexsort((cc, r))
    r, cc, v = r[order], cc[order], v[order]
    starts = np.searchsorted(r, np.arange(n_rows))
    with _quiet_stdout():
        model = highspy.Highs()
    model.setOptionValue("output_flag", False)
    model.setOptionValue("threads", 1)
    lower = np.concatenate([np.zeros(2 * h), np.full(h, battery.min_kwh), np.zeros(2 * h), np.zeros(2 * len(charges))])
    upper = np.concatenate([np.full(2 * h, battery.power_kw), np.full(h, battery.max_kwh), np.full(2 * h, inf),
                            np.full(2 * len(charges), inf)])
    model.addVars(n_cols, lower, upper)
    model.addRows(n_rows, np.full(n_rows, -inf), np.zeros(n_rows), v.size, starts.astype(np.int32),
                  cc.astype(np.int32), v)
    all_cols = np.arange(n_cols, dtype=np.int32)
    all_rows = np.arange(n_rows, dtype=np.int32)
    dis_cols = (dis + j).astype(np.int32)
    peak_cols = (peak + np.arange(2 * len(charges))).astype(np.int32)

    # the tariff on the steps, padded past the end for the last horizons
    times_extra = [series.time(k) for k in range(n, n + h)]
    counts = np.concatenate([steps.counts, np.array([[c.counts_at(t) for t in times_extra] for c in charges],
                                                    dtype=bool).reshape(len(charges), h)], axis=1)
    prices = np.concatenate([steps.price_per_kwh, [tariff.energy_price_at(t) for t in times_extra]])
    period = np.concatenate([steps.period, steps.period[:, -1:] + np.array(
        [[c.period_key(t) != c.period_key(series.time(n - 1)) for t in times_extra] for c in charges],
        dtype=np.int64).reshape(len(charges), h)], axis=1)
    # a kWh left at the horizon's end can take 1 / (capacity / power) kW off a later peak: that is its value
    # under the dearest demand charge, times the weight (chosen on the tuning runs)
    duration_h = battery.capacity_kwh / battery.power_kw if battery.power_kw > 0 else 1.0
    demand_kwh_value = max((c.price_per_kw for c in charges), default=0.0) / max(duration_h, 0.25)
    ledger = DemandLedger(tariff)
    plant = Plant(battery)
    applied, soc_out = np.empty(n), np.empty(n)
    interval_steps = steps.steps_per_interval
    interval_kw = 0.0
    for k in range(n):
        span = slice(k, k + h)
        # forecast: the present measured, the rest from history
        net_f = np.empty(h)
        net_f[0] = net[k]
        load_f = load_forecast(load, k, h, settings.load_forecast)
        if settings.perfect_pv:
            pv_f = pv[k + 1:k + h] if k + h <= n else np.concatenate([pv[k + 1:], np.zeros(k + h - n)])
        else:
            back = np.arange(k + 1, k + h) - QUARTERS_PER_DAY
            pv_f = np.where((back >= 0) & (back < k), pv[np.clip(back, 0, n - 1)], 0.0)
        net_f[1:] = load_f - pv_f
        t_now = series.time(k)
        # costs: energy by TOU, export credit, terminal SOC value, demand prices
        price = prices[span]
        cost = np.zeros(n_cols)
        cost[ch:ch + 2 * h] = 1e-6
        # charging later costs a hair more: otherwise every re-solve puts off a refill it is indifferent about,
        # until the last steps, where it must charge fast enough to set a new peak (measured: 77.7 kW where 47 were
        # billed, the SOC untouched for a day and a half)
        cost[ch:ch + h] += 1e-5 * j
        cost[imp:imp + h] = price * STEP_H
        cost[exp:exp + h] = -tariff.export_price_per_kwh * STEP_H
        cost[soc + h - 1] = -max(float(price.mean()), settings.terminal_weight * demand_kwh_value)
        for c, charge in enumerate(charges):
            cost[peak + 2 * c:peak + 2 * c + 2] = charge.price_per_kw
        model.changeColsCost(n_cols, all_cols, cost)
        # bounds: no discharge into export (on the forecast), demand floors = what is billed already
        model.changeColsBounds(h, dis_cols, np.zeros(h), np.minimum(battery.power_kw, np.maximum(net_f, 0.0)))
        floors = np.zeros(2 * len(charges))
        later = t_now + dt.timedelta(days=1)
        for c in range(len(charges)):
            floors[2 * c] = ledger.billed_kw(c, t_now)
            floors[2 * c + 1] = ledger.billed_kw(c, later) if charges[c].period_key(later) != \
                charges[c].period_key(t_now) else 0.0
        model.changeColsBounds(peak_cols.size, peak_cols, floors, np.full(peak_cols.size, inf))
        # rows: balance = forecast, SOC start, demand rows switched by window and period
        row_lower = np.full(n_rows, -inf)
        row_upper = np.zeros(n_rows)
        row_lower[:h] = row_upper[:h] = net_f
        row_lower[h:2 * h] = row_upper[h:2 * h] = 0.0
        row_lower[h] = row_upper[h] = plant.soc_kwh
        for c in range(len(charges)):
            counted = counts[c, span]
            same = period[c, span] == period[c, k]
            base = demand_row0 + 2 * c * h
            row_upper[base:base + h] = np.where(counted & same, 0.0, inf)
            row_upper[base + h:base + 2 * h] = np.where(counted & ~same, 0.0, inf)
        model.changeRowsBounds(n_rows, all_rows, row_lower, row_upper)  # type: ignore[attr-defined]  # not in the stub
        model.run()
        if model.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            # the warm start can end in a numerical dead end (us-tou, commercial 2: status "Unknown" at step 34238);
            # the same LP solved from scratch is fine, so it is retried once without the last basis
            model.clearSolver()
            model.run()
        if model.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise OptimumError(f"MPC step {k}: HiGHS {model.modelStatusToString(model.getModelStatus())}")
        x = model.getSolution().col_value
        power = x[dis] - x[ch]
        applied[k] = plant.apply(power, float(net[k]))
        soc_out[k] = plant.soc_kwh
        # the meter: the step's import books into the tariff's demand interval
        interval_kw += max(0.0, float(net[k]) - applied[k])
        if (k + 1) % interval_steps == 0 or k == n - 1:
            start = series.time(k + 1 - interval_steps)
            ledger.add_interval(start, interval_kw / interval_steps)
            interval_kw = 0.0
    return PeerRun(applied, soc_out, plant.violations)


__all__ = ["LOAD_FORECASTS", "MpcSettings", "PeerRun", "load_forecast", "mpc", "previous_month_rule"]
