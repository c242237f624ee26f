"""A tariff on the benchmark's data: which steps count for which demand charge, the bill of a run, and the
perfect-foresight optimum of that bill (an LP).

The tariff model and its bill are the controller's own (`controller_module.core.tariff`): the benchmark and the
product cannot disagree on what a tariff means. Here it is laid out per step (numpy) for the LPs.

Bill optimum (HiGHS), with perfect foresight of the whole span:

    minimise   Σ_c price_c · Σ_p billed_{c,p}  +  Σ_t (price_t · import_t − export_price · export_t) · Δt
               + ε · Σ_t (charge_t + discharge_t)
    subject to import_t − export_t = net_t + charge_t − discharge_t,  import_t, export_t ≥ 0
               soc_t = soc_{t−1} + (η · charge_t − discharge_t / η) · Δt
               mean(import over interval i) ≤ demand_{c,p(i)}     for every interval i in which charge c counts
               demand_{c,p} ≥ minimum_c
               billed_{c,p} = demand_{c,p}, or for a ratchet billed_{c,m} ≥ demand_{c,m} and
               billed_{c,m} ≥ share_c · demand_{c,m'} for the N months m' before m (within the span)
               SOC window, power rating, no discharge into export (as in optimum.py)

Export counts as zero import in an interval's mean (meters register import and export apart).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from controller_module.core.tariff import BUILT_IN, Bill, Tariff, bill
from energy_edge.bench.data import STEP_H, STEP_S, DataError, SiteSeries
from energy_edge.bench.optimum import THROUGHPUT_COST, OptimumError, _quiet_stdout
from energy_edge.bench.plant import BatterySpec


def load_tariff(spec: str) -> Tariff:
    """A built-in tariff's name, or a JSON file holding a tariff."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    path = Path(spec)
    if not path.exists():
        raise DataError(f"{spec!r} is neither a built-in tariff ({', '.join(BUILT_IN)}) nor a file")
    try:
        return Tariff.model_validate(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise DataError(f"{path}: not a valid tariff: {problems}") from exc


@dataclass(frozen=True)
class TariffSteps:
    """A tariff laid out on a series' steps."""

    tariff: Tariff
    counts: np.ndarray  # (charges, steps) bool: demand at this step counts for the charge
    period: np.ndarray  # (charges, steps) int: index of the charge's billing period
    period_labels: list[list[str]]  # per charge
    price_per_kwh: np.ndarray  # (steps,) import price
    steps_per_interval: int

    @classmethod
    def of(cls, tariff: Tariff, series: SiteSeries) -> TariffSteps:
        n = series.steps
        times = [series.time(k) for k in range(n)]
        charges = tariff.demand_charges
        counts = np.zeros((len(charges), n), dtype=bool)
        period = np.zeros((len(charges), n), dtype=np.int64)
        labels: list[list[str]] = []
        for c, charge in enumerate(charges):
            seen: list[str] = []
            for k, t in enumerate(times):
                counts[c, k] = charge.counts_at(t)
                key = charge.period_key(t)
                if not seen or seen[-1] != key:
                    seen.append(key)
                period[c, k] = len(seen) - 1
            labels.append(seen)
        prices = np.array([tariff.energy_price_at(t) for t in times])
        per = round(tariff.interval_s / STEP_S)
        if per < 1 or per * STEP_S != tariff.interval_s:
            raise DataError(f"a {tariff.demand_interval_min}-minute interval does not fit 15-minute data")
        return cls(tariff, counts, period, labels, prices, per)


def bill_of(steps: TariffSteps, series: SiteSeries, grid_import_kw: np.ndarray) -> Bill:
    return bill(steps.tariff, series.start, STEP_S, [float(x) for x in grid_import_kw])


@dataclass(frozen=True)
class BillOptimum:
    battery_kw: np.ndarray  # + discharge
    objective: float


class _Lp:
    """Columns and sparse rows, collected as arrays and handed to HiGHS at once."""

    def __init__(self) -> None:
        self.n_cols = 0
        self.cost: list[np.ndarray] = []
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.row_lower: list[np.ndarray] = []
        self.row_upper: list[np.ndarray] = []
        self.n_rows = 0

    def add_cols(self, count: int, cost: np.ndarray | float, lower: np.ndarray | float, upper: np.ndarray | float
                 ) -> int:
        first = self.n_cols
        self.n_cols += count
        self.cost.append(np.broadcast_to(np.asarray(cost, dtype=float), (count,)))
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (count,)))
        self.upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (count,)))
        return first

    def add_rows(self, count: int, lower: np.ndarray | float, upper: np.ndarray | float,
                 entries: list[tuple[np.ndarray, np.ndarray, np.ndarray | float]]) -> None:
        """`entries`: (row offset within these rows, column, value) arrays."""
        for row, col, val in entries:
            self.rows.append(self.n_rows + np.asarray(row))
            self.cols.append(np.asarray(col))
            self.vals.append(np.broadcast_to(np.asarray(val, dtype=float), np.asarray(row).shape))
        self.row_lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (count,)))
        self.row_upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (count,)))
        self.n_rows += count

    def solve(self) -> tuple[np.ndarray, float]:
        import highspy

        rows, cols, vals = (np.concatenate(x) for x in (self.rows, self.cols, self.vals))
        order = np.lexsort((cols, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        starts = np.searchsorted(rows, np.arange(self.n_rows))
        with _quiet_stdout():
            model = highspy.Highs()
        model.setOptionValue("output_flag", False)
        model.setOptionValue("threads", 1)
        model.addVars(self.n_cols, np.concatenate(self.lower), np.concatenate(self.upper))
        model.changeColsCost(self.n_cols, np.arange(self.n_cols, dtype=np.int32), np.concatenate(self.cost))
        model.addRows(self.n_rows, np.concatenate(self.row_lower), np.concatenate(self.row_upper), vals.size,
                      starts.astype(np.int32), cols.astype(np.int32), vals)
        model.run()
        if model.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise OptimumError(f"HiGHS: {model.modelStatusToString(model.getModelStatus())}")
        return np.asarray(model.getSolution().col_value), float(model.getInfo().objective_function_value)


def solve_bill(series: SiteSeries, steps: TariffSteps, battery: BatterySpec) -> BillOptimum:
    """The schedule with the lowest bill under the tariff, knowing the whole span in advance."""
    import highspy

    inf = highspy.kHighsInf
    net = series.net_kw
    n = series.steps
    eta = battery.efficiency_one_way
    tariff = steps.tariff
    lp = _Lp()
    charge = lp.add_cols(n, THROUGHPUT_COST, 0.0, battery.power_kw)
    discharge = lp.add_cols(n, THROUGHPUT_COST, 0.0, np.minimum(battery.power_kw, np.maximum(net, 0.0)))
    soc = lp.add_cols(n, 0.0, battery.min_kwh, battery.max_kwh)
    imp = lp.add_cols(n, steps.price_per_kwh * STEP_H, 0.0, inf)
    exp = lp.add_cols(n, -tariff.export_price_per_kwh * STEP_H, 0.0, inf)
    t = np.arange(n)
    # balance: import − export − charge + discharge = net
    lp.add_rows(n, net, net, [(t, imp + t, 1.0), (t, exp + t, -1.0), (t, charge + t, -1.0), (t, discharge + t, 1.0)])
    # SOC
    soc_rhs = np.zeros(n)
    soc_rhs[0] = battery.initial_kwh
    lp.add_rows(n, soc_rhs, soc_rhs, [(t, soc + t, 1.0), (t[1:], soc + t[1:] - 1, -1.0),
                                      (t, charge + t, -eta * STEP_H), (t, discharge + t, STEP_H / eta)])
    # demand charges
    per = steps.steps_per_interval
    for c, spec in enumerate(tariff.demand_charges):
        periods = len(steps.period_labels[c])
        ratchet = spec.ratchet_months > 0
        demand = lp.add_cols(periods, 0.0 if ratchet else spec.price_per_kw, spec.minimum_kw, inf)
        first = (-series.start.timestamp() % tariff.interval_s) / STEP_S  # steps before the first whole interval
        starts = np.arange(round(first), n - per + 1, per)
        starts = starts[steps.counts[c, starts]]
        if starts.size:
            rows = np.repeat(np.arange(starts.size), per)
            members = (starts[:, None] + np.arange(per)[None, :]).ravel()
            lp.add_rows(starts.size, -inf, 0.0, [
                (rows, imp + members, 1.0 / per),
                (np.arange(starts.size), demand + steps.period[c, starts], -1.0),
            ])
        if ratchet:
            billed = lp.add_cols(periods, spec.price_per_kw, 0.0, inf)
            m = np.arange(periods)
            lp.add_rows(periods, -inf, 0.0, [(m, demand + m, 1.0), (m, billed + m, -1.0)])
            for back in range(1, spec.ratchet_months + 1):
                later = m[m >= back]
                if later.size:
                    rows = np.arange(later.size)
                    lp.add_rows(later.size, -inf, 0.0, [(rows, demand + later - back, spec.ratchet_share),
                                                       (rows, billed + later, -1.0)])
    x, objective = lp.solve()
    return BillOptimum(x[discharge:discharge + n] - x[charge:charge + n], objective)
