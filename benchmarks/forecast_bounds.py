"""How much of the peak-shaving gap is the forecast: the controller's core with parts of its forecast replaced
by the truth (benchmark only; the product never sees the future).

Modes, each a year per scenario through the same replay as `energy-edge bench peak-shaving`:

- `model`: the planner's own forecast (the benchmark's controller run);
- `true`: load and PV of the coming quarters exactly as they will be (the planning's own limit);
- `true-load` / `true-pv`: one part true, the other the model's;
- `day-level`: each day's true load total and PV total known from its midnight (the levels of
  `LoadHistory.day_levels`), while the shape within the day, random extra loads and passing clouds stay
  the model's: the best a day-ahead forecast of occupancy and weather could do;
- `today`: as `day-level`, but only today's levels are true (later days stay the model's);
- `today-load` / `today-pv`: only today's level of one part is true (later days and the other part stay the
  model's): which half of a day-ahead forecast is worth more;
- `events`: the scenario's random extra loads known in advance (a perfect load calendar): the history learns
  the load without them and the forecast adds the coming ones; everything else stays the model's.
- `today-pv-fc10` / `-fc20` / `-fc30`: a day-ahead weather forecast of each day's PV level with a realistic
  error: the true level times a lognormal factor, σ 10 %, 20 % or 30 % (drawn per day, the same in every run
  of a seed). Later days take it as it is; today it replaces the model's prior (level 1) and the PV measured
  so far corrects it as the day goes on, as a product would use such a forecast.

    .venv/bin/python benchmarks/forecast_bounds.py                        # held-out runs, all modes, ~30 min
    .venv/bin/python benchmarks/forecast_bounds.py --modes day-level --only farm-l0

Prints the ratio per run and mode (same definition as the benchmark: Σ(baseline − run) / Σ(baseline − optimum)).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

from controller_module.core.planner import LimitPlanner, LoadHistory, day_type
from energy_edge.bench import replay
from energy_edge.bench.data import (
    QUARTERS_PER_DAY,
    SCENARIOS,
    TUNING_RUNS,
    SiteSeries,
    bdew_profile_kw,
    benchmark_runs,
    build_scenario,
    noisy_load,
)
from energy_edge.bench.plant import BatterySpec, monthly_peaks_kw
from energy_edge.bench.report import baseline_and_optimum_peaks

MODES = ("model", "true", "true-load", "true-pv", "day-level", "today", "today-load", "today-pv", "events",
         "today-pv-fc10", "today-pv-fc20", "today-pv-fc30")
PV_FORECAST_SIGMA = {"today-pv-fc10": 0.10, "today-pv-fc20": 0.20, "today-pv-fc30": 0.30}
PV_FORECAST_PRIOR_Q = 8  # the forecast weighs as 8 quarters of measured PV (the model's prior of 1: 2)


def extra_loads_kw(name: str, seed: int, series: SiteSeries) -> np.ndarray:
    """The scenario's random extra loads alone: its load minus the same noise drawn without them (the events
    are drawn after the day and quarter factors, so the factors come out the same)."""
    spec = SCENARIOS[name]
    quiet = noisy_load(bdew_profile_kw(spec.slp, spec.annual_kwh, spec.year), seed,
                       replace(spec.noise, events_per_day=0.0))[: series.load_kw.size]
    events: np.ndarray = series.load_kw - quiet
    return events


@contextlib.contextmanager
def reveal(mode: str, series: SiteSeries, events_kw: np.ndarray | None = None, seed: int = 0) -> Iterator[None]:
    """Within the block, the planner's forecast knows what `mode` reveals of `series`."""
    sigma = PV_FORECAST_SIGMA.get(mode, 0.0)
    days = series.load_kw.size // QUARTERS_PER_DAY + 1
    # the day-ahead forecast's error factor per day: lognormal with mean 1
    pv_forecast_error = np.exp(np.random.default_rng(1000 + seed).normal(0.0, sigma, days) - sigma ** 2 / 2)
    load, pv = series.load_kw, series.pv_kw
    first_day = series.start.date()
    model_parts = LoadHistory.forecast_parts
    model_levels = LoadHistory.day_levels
    model_learn = LimitPlanner.learn
    events = np.zeros(load.size) if events_kw is None else events_kw

    def step_of(t: dt.datetime) -> int:
        return int((t - series.start).total_seconds() // 900)

    def forecast_parts(self: LoadHistory, start: dt.datetime, quarters: int
                       ) -> tuple[list[float], list[float]] | None:
        parts = model_parts(self, start, quarters)
        if parts is None:
            return None
        loads, pvs = parts
        k0 = step_of(start)
        for i in range(quarters):
            if 0 <= k0 + i < load.size:
                if mode in ("true", "true-load"):
                    loads[i] = float(load[k0 + i])
                if mode in ("true", "true-pv"):
                    pvs[i] = float(pv[k0 + i])
                if mode == "events":
                    loads[i] += float(events[k0 + i])
        return loads, pvs

    def learn_without_events(self: LimitPlanner, now: dt.datetime, load_kw: float, pv_kw: float) -> None:
        k = step_of(now)
        model_learn(self, now, load_kw - (float(events[k]) if 0 <= k < load.size else 0.0), pv_kw)

    def day_levels(self: LoadHistory, day: dt.date) -> tuple[float, float]:
        k0 = (day - first_day).days * QUARTERS_PER_DAY
        means = self.mean[day_type(day)]
        if k0 < 0 or k0 + QUARTERS_PER_DAY > load.size or any(m is None for m in means):
            return model_levels(self, day)
        load_level = float(load[k0:k0 + QUARTERS_PER_DAY].sum()) / max(1e-9, sum(m or 0.0 for m in means))
        pv_mean = sum(self.pv_mean)
        pv_level = float(pv[k0:k0 + QUARTERS_PER_DAY].sum()) / pv_mean if pv_mean > 1e-9 else 1.0
        if mode == "day-level":
            return load_level, pv_level
        if day.isoformat() != self.today:
            return model_levels(self, day)
        model_load, model_pv = model_levels(self, day)
        if mode in PV_FORECAST_SIGMA:
            forecast = pv_level * float(pv_forecast_error[(day - first_day).days])
            if day.isoformat() != self.today:
                return model_levels(self, day)[0], forecast
            # today: the forecast is the prior that the PV measured so far corrects, in place of the model's 1
            return model_levels(self, day)[0], self.pv_level(forecast, PV_FORECAST_PRIOR_Q)
        return (load_level if mode in ("today", "today-load") else model_load,
                pv_level if mode in ("today", "today-pv") else model_pv)

    if mode in ("day-level", "today", "today-load", "today-pv", *PV_FORECAST_SIGMA):
        LoadHistory.day_levels = day_levels  # type: ignore[method-assign]
    elif mode != "model":
        if mode == "events":
            LimitPlanner.learn = learn_without_events  # type: ignore[method-assign]
        LoadHistory.forecast_parts = forecast_parts  # type: ignore[method-assign]
    try:
        yield
    finally:
        LoadHistory.day_levels = model_levels  # type: ignore[method-assign]
        LoadHistory.forecast_parts = model_parts  # type: ignore[method-assign]
        LimitPlanner.learn = model_learn  # type: ignore[method-assign]


def run_modes(job: tuple[str, int, tuple[str, ...]]) -> list[dict[str, Any]]:
    """One scenario year: the baseline and the optimum once, then the controller in each mode."""
    name, seed, modes = job
    series, battery = build_scenario(name, seed), BatterySpec.of(SCENARIOS[name].battery)
    labels, month_of_step = series.month_index()
    net = series.net_kw
    baseline, optimum_peaks = baseline_and_optimum_peaks(series, battery)
    rows = []
    for mode in modes:
        with reveal(mode, series, extra_loads_kw(name, seed, series) if mode == "events" else None, seed):
            run = replay.run(series, battery)
        controller = monthly_peaks_kw(net - run.battery_kw, month_of_step, len(labels))
        ratio = float((baseline - controller).sum() / (baseline - optimum_peaks).sum())
        rows.append({"scenario": name, "seed": seed, "mode": mode, "ratio": round(ratio, 3),
                     "violations": run.violations.total})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--only", nargs="*", default=list(SCENARIOS), help="scenarios (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    runs = [run for run in benchmark_runs(args.only) if run not in TUNING_RUNS]
    with Pool(args.workers) as pool:
        rows = [row for run in pool.map(run_modes, [(n, s, tuple(args.modes)) for n, s in runs]) for row in run]
    print("| scenario | seed | " + " | ".join(args.modes) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in args.modes) + " |")
    for name, seed in runs:
        cells = [next(r for r in rows if (r["scenario"], r["seed"], r["mode"]) == (name, seed, m)) for m in args.modes]
        print(f"| {name} | {seed} | " + " | ".join(f"{c['ratio']:.3f}" for c in cells) + " |")
    summary = []
    for mode in args.modes:
        ratios = [r["ratio"] for r in rows if r["mode"] == mode]
        summary.append(f"{mode}: min {min(ratios):.3f} mean {float(np.mean(ratios)):.3f}")
    print("held out: " + "; ".join(summary))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
