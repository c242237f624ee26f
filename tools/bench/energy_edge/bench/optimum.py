"""The perfect-foresight optimum: a linear program (HiGHS) that knows the whole span in advance.

    minimise   Σ_m peak_m  +  ε · Σ_t (charge_t + discharge_t)
    subject to soc_t = soc_{t−1} + (η · charge_t − discharge_t / η) · Δt        (η = sqrt(round trip))
               net_t + charge_t − discharge_t ≤ peak_{m(t)}                     (m(t): month of step t)
               soc_min ≤ soc_t ≤ soc_max,  0 ≤ charge_t ≤ P,
               0 ≤ discharge_t ≤ min(P, max(net_t, 0))                          (no battery export)
               peak_m ≥ 0,  soc_{−1} = the initial state of charge

One LP over the whole span: the months are coupled only through the state of charge, so this is the same
as twelve monthly LPs chained at their boundaries, and it is solved in one go. ε (1e-6 per kWh moved) only
breaks ties toward fewer cycles; it is too small to change a peak. The final state of charge is free.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from energy_edge.bench.data import STEP_H
from energy_edge.bench.plant import BatterySpec

THROUGHPUT_COST = 1e-6  # per kW and step: breaks ties, never trades against a peak


class OptimumError(RuntimeError):
    """HiGHS did not find an optimal solution."""


@dataclass(frozen=True)
class Optimum:
    battery_kw: np.ndarray  # + discharge
    soc_kwh: np.ndarray  # at the end of each step
    peaks_kw: np.ndarray  # per month, as the LP sees them


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """HiGHS prints its banner from C++ on construction, past any `output_flag`; keep it off the table."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def solve(net_kw: np.ndarray, month_of_step: np.ndarray, months: int, battery: BatterySpec) -> Optimum:
    import highspy

    n = int(net_kw.size)
    eta = battery.efficiency_one_way
    inf = highspy.kHighsInf
    # columns: charge[0:n], discharge[n:2n], soc[2n:3n], peak[3n:3n+months]
    charge_col, discharge_col, soc_col, peak_col = 0, n, 2 * n, 3 * n
    cost = np.concatenate([np.full(2 * n, THROUGHPUT_COST), np.zeros(n), np.ones(months)])
    lower = np.concatenate([np.zeros(2 * n), np.full(n, battery.min_kwh), np.zeros(months)])
    upper = np.concatenate([
        np.full(n, battery.power_kw),
        np.minimum(battery.power_kw, np.maximum(net_kw, 0.0)),
        np.full(n, battery.max_kwh),
        np.full(months, inf),
    ])

    steps = np.arange(n)
    # SOC rows: soc_t − soc_{t−1} − η·Δt·charge_t + Δt/η·discharge_t = 0   (= initial for t = 0)
    soc_rows_cols = [soc_col + steps, soc_col + steps[1:] - 1, charge_col + steps, discharge_col + steps]
    soc_rows_vals = [np.ones(n), -np.ones(n - 1), np.full(n, -eta * STEP_H), np.full(n, STEP_H / eta)]
    soc_rows_idx = [steps, steps[1:], steps, steps]
    soc_rhs = np.zeros(n)
    soc_rhs[0] = battery.initial_kwh
    # peak rows: charge_t − discharge_t − peak_m ≤ −net_t
    peak_rows_cols = [charge_col + steps, discharge_col + steps, peak_col + month_of_step]
    peak_rows_vals = [np.ones(n), -np.ones(n), -np.ones(n)]
    peak_rows_idx = [n + steps, n + steps, n + steps]

    rows = np.concatenate(soc_rows_idx + peak_rows_idx)
    cols = np.concatenate(soc_rows_cols + peak_rows_cols)
    vals = np.concatenate(soc_rows_vals + peak_rows_vals)
    order = np.lexsort((cols, rows))  # CSR: by row, then column
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(2 * n))
    row_lower = np.concatenate([soc_rhs, np.full(n, -inf)])
    row_upper = np.concatenate([soc_rhs, -net_kw])

    with _quiet_stdout():
        model = highspy.Highs()
    model.setOptionValue("output_flag", False)
    model.setOptionValue("threads", 1)
    model.addVars(3 * n + months, lower, upper)
    model.changeColsCost(3 * n + months, np.arange(3 * n + months, dtype=np.int32), cost)
    model.addRows(2 * n, row_lower, row_upper, vals.size, starts.astype(np.int32), cols.astype(np.int32), vals)
    model.run()
    if model.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise OptimumError(f"HiGHS: {model.modelStatusToString(model.getModelStatus())}")
    x = np.asarray(model.getSolution().col_value)
    battery_kw = x[discharge_col:discharge_col + n] - x[charge_col:charge_col + n]
    return Optimum(battery_kw, x[soc_col:soc_col + n].copy(), x[peak_col:peak_col + months].copy())
