"""The fixed-threshold rule, as OpenEMS's peak-shaving controller does it.

Two settings: the peak-shaving threshold T and the recharge threshold R ≤ T (kW of grid import).

- import above T: discharge by the excess (at most the rating, down to the SOC floor);
- import below R: charge by R − import (at most the rating, up to the SOC ceiling);
- in between: idle.

Here R = T: recharging right up to the threshold refills the battery fastest without ever setting a higher
peak, which is the best R for a peak-only objective. "Tuned in hindsight" = the single T for the whole
span that gives the smallest sum of monthly peaks, found by a grid search over the span itself (so the
rule has seen the future once, to be tuned; it then runs blind). The search runs every candidate at once:
one pass over the steps with a vector of thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from energy_edge.bench.data import STEP_H
from energy_edge.bench.plant import BatterySpec

COARSE_STEP_KW = 1.0
FINE_STEP_KW = 0.1


@dataclass(frozen=True)
class RuleRun:
    threshold_kw: float
    battery_kw: np.ndarray  # + discharge, within rating, SOC window and net load by construction


def simulate(net_kw: np.ndarray, thresholds_kw: np.ndarray, recharge_kw: np.ndarray, battery: BatterySpec
             ) -> np.ndarray:
    """Battery power (+ discharge), shape (steps, candidates), for each (T, R) pair run on the same data.

    T and R are one value per candidate, shape (candidates,), or one per step and candidate,
    shape (steps, candidates), for thresholds that change over the span (a threshold per month)."""
    candidates = thresholds_kw.shape[-1]
    thresholds = np.broadcast_to(thresholds_kw, (net_kw.size, candidates))
    recharges = np.broadcast_to(recharge_kw, (net_kw.size, candidates))
    eta = battery.efficiency_one_way
    soc = np.full(candidates, battery.initial_kwh)
    out = np.empty((net_kw.size, candidates))
    for t, (net, threshold, recharge) in enumerate(zip(net_kw, thresholds, recharges, strict=True)):
        # what the SOC window allows this step, at the efficiency of each direction
        max_discharge = np.minimum(battery.power_kw, (soc - battery.min_kwh) * eta / STEP_H)
        max_charge = np.minimum(battery.power_kw, (battery.max_kwh - soc) / (eta * STEP_H))
        discharge = np.clip(net - threshold, 0.0, max_discharge)
        charge = np.clip(recharge - net, 0.0, max_charge)
        power = discharge - charge
        soc = soc - discharge / eta * STEP_H + charge * eta * STEP_H
        out[t] = power
    return out


def sum_of_monthly_peaks(net_kw: np.ndarray, battery_kw: np.ndarray, month_of_step: np.ndarray, months: int
                         ) -> np.ndarray:
    grid = np.maximum(net_kw[:, None] - battery_kw, 0.0)
    peaks = np.zeros((months, battery_kw.shape[1]))
    for m in range(months):
        rows = grid[month_of_step == m]
        if rows.size:
            peaks[m] = rows.max(axis=0)
    total: np.ndarray = peaks.sum(axis=0)
    return total


def run(net_kw: np.ndarray, threshold_kw: float, battery: BatterySpec) -> RuleRun:
    schedule = simulate(net_kw, np.array([threshold_kw]), np.array([threshold_kw]), battery)[:, 0]
    return RuleRun(threshold_kw, schedule)


def tune(net_kw: np.ndarray, month_of_step: np.ndarray, months: int, battery: BatterySpec) -> RuleRun:
    """The single threshold with the smallest sum of monthly peaks: a 1 kW grid, then 0.1 kW around the best."""
    top = float(max(net_kw.max(), 0.0))

    def best(candidates: np.ndarray) -> float:
        schedules = simulate(net_kw, candidates, candidates, battery)
        totals = sum_of_monthly_peaks(net_kw, schedules, month_of_step, months)
        # ties: the highest threshold (the least battery use)
        index = int(np.flatnonzero(totals <= totals.min() + 1e-9)[-1])
        return float(candidates[index])

    coarse = best(np.arange(0.0, top + COARSE_STEP_KW, COARSE_STEP_KW))
    fine = best(np.arange(max(0.0, coarse - COARSE_STEP_KW), coarse + COARSE_STEP_KW + 1e-9, FINE_STEP_KW))
    return run(net_kw, fine, battery)
