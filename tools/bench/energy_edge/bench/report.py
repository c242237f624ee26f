"""Results of one peak-shaving benchmark: the monthly table, JSON, the controller's schedule as CSV, a plot.

Monthly peak = the largest 15-minute mean grid import in the calendar month (local time). The ratio of a
run = Σ months (baseline − run) / Σ months (baseline − optimum): 1 is the physical limit of the battery,
0 is no battery at all.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controller_module.core.tariff import Bill
from energy_edge.bench import optimum
from energy_edge.bench.data import SiteSeries
from energy_edge.bench.plant import BatterySpec, Plant, Violations, monthly_peaks_kw

RUNS = ("baseline", "rule", "controller", "optimum")
LP_ONLY = ("bill optimum", "demand optimum")  # billed, without a schedule kept in the result


@dataclass(frozen=True)
class Schedule:
    """One run's battery power per step (+ discharge) as the plant delivered it, and the SOC after each step."""

    battery_kw: np.ndarray
    soc_kwh: np.ndarray
    violations: Violations = field(default_factory=Violations)


@dataclass(frozen=True)
class MonthRow:
    month: str
    baseline_peak_kw: float
    rule_peak_kw: float
    controller_peak_kw: float
    optimum_peak_kw: float


@dataclass
class BenchResult:
    series: SiteSeries
    battery: BatterySpec
    schedules: dict[str, Schedule]  # rule, controller, optimum
    rule_threshold_kw: float
    controller_limit_kw: np.ndarray  # the limit the controller planned at each step
    seconds: dict[str, float]  # wall time per run
    months: list[MonthRow] = field(default_factory=list)
    # under a tariff: the peers' schedules (besides rule, controller, optimum) and every run's bill
    peers: dict[str, Schedule] = field(default_factory=dict)
    tariff_name: str | None = None
    bills: dict[str, Bill] = field(default_factory=dict)  # baseline, every run, "bill optimum", "demand optimum"

    def __post_init__(self) -> None:
        labels, month_of_step = self.series.month_index()
        peaks = {name: monthly_peaks_kw(self.grid_import_kw(name), month_of_step, len(labels)) for name in RUNS}
        self.months = [MonthRow(label, *(float(peaks[name][i]) for name in RUNS)) for i, label in enumerate(labels)]

    def grid_import_kw(self, run: str) -> np.ndarray:
        net = self.series.net_kw
        if run == "baseline":
            return net
        schedule = self.schedules[run] if run in self.schedules else self.peers[run]
        grid: np.ndarray = net - schedule.battery_kw
        return grid

    def peak_ratio(self, run: str) -> float | None:
        """The monthly-peak ratio of any run, the peers' included."""
        labels, month_of_step = self.series.month_index()
        peaks = monthly_peaks_kw(self.grid_import_kw(run), month_of_step, len(labels))
        reachable = sum(m.baseline_peak_kw - m.optimum_peak_kw for m in self.months)
        if reachable <= 1e-6:
            return None
        return (sum(m.baseline_peak_kw for m in self.months) - float(peaks.sum())) / reachable

    def bill_ratio(self, run: str) -> float | None:
        """Share of the bill optimum's saving this run makes; None when the optimum saves nothing."""
        if not self.bills:
            return None
        reachable = self.bills["baseline"].total - self.bills["bill optimum"].total
        if reachable <= 1e-6:
            return None
        return (self.bills["baseline"].total - self.bills[run].total) / reachable

    def demand_ratio(self, run: str) -> float | None:
        """Share of the demand charges' optimum saving (the LP with energy free) this run makes on demand charges:
        what peak shaving is asked to do, without the energy part of the bill (self-consumption, TOU shifting)."""
        if "demand optimum" not in self.bills:
            return None
        reachable = self.bills["baseline"].demand - self.bills["demand optimum"].demand
        if reachable <= 1e-6:
            return None
        return (self.bills["baseline"].demand - self.bills[run].demand) / reachable

    def ratio(self, run: str) -> float | None:
        """None when the optimum shaves nothing (no month has anything to gain)."""
        reachable = sum(m.baseline_peak_kw - m.optimum_peak_kw for m in self.months)
        if reachable <= 1e-6:
            return None
        achieved = sum(m.baseline_peak_kw - getattr(m, f"{run}_peak_kw") for m in self.months)
        return achieved / reachable

    def violations(self) -> int:
        return sum(s.violations.total for s in self.schedules.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.series.name,
            "start": self.series.start.isoformat(),
            "steps": self.series.steps,
            "battery": {"capacity_kwh": self.battery.capacity_kwh, "power_kw": self.battery.power_kw,
                        "soc_min_pct": self.battery.soc_min_pct, "soc_max_pct": self.battery.soc_max_pct,
                        "round_trip_efficiency": self.battery.round_trip_efficiency},
            "months": [{"month": m.month, "baseline_peak_kw": round(m.baseline_peak_kw, 3),
                        "rule_peak_kw": round(m.rule_peak_kw, 3),
                        "controller_peak_kw": round(m.controller_peak_kw, 3),
                        "optimum_peak_kw": round(m.optimum_peak_kw, 3)} for m in self.months],
            "ratio_controller": _round(self.ratio("controller")),
            "ratio_rule": _round(self.ratio("rule")),
            "violations": self.violations(),
            "violations_by_run": {name: s.violations.to_dict() for name, s in self.schedules.items()},
            "rule_threshold_kw": round(self.rule_threshold_kw, 2),
            "seconds": {name: round(s, 2) for name, s in self.seconds.items()},
            **({"tariff": self.tariff_name, "bills": {
                name: {"demand": round(b.demand, 2), "energy": round(b.energy, 2), "export": round(b.export, 2),
                       "total": round(b.total, 2), "bill_ratio": _round(self.bill_ratio(name)),
                       "demand_ratio": _round(self.demand_ratio(name)),
                       "peak_ratio": None if name in LP_ONLY else _round(self.peak_ratio(name)),
                       "demand_by_charge": {k: round(v, 2) for k, v in b.demand_by_charge.items()}}
                for name, b in self.bills.items()},
                "peer_violations": {name: s.violations.to_dict() for name, s in self.peers.items()}}
               if self.bills else {}),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def replay_schedule(battery_kw: np.ndarray, net_kw: np.ndarray, battery: BatterySpec) -> Schedule:
    """Run a schedule through the plant: the SOC it implies and the violations it commits."""
    plant = Plant(battery)
    applied, soc = np.empty_like(battery_kw), np.empty_like(battery_kw)
    for k, (power, net) in enumerate(zip(battery_kw, net_kw, strict=True)):
        applied[k] = plant.apply(float(power), float(net))
        soc[k] = plant.soc_kwh
    return Schedule(applied, soc, plant.violations)


def baseline_and_optimum_peaks(series: SiteSeries, battery: BatterySpec) -> tuple[np.ndarray, np.ndarray]:
    """Monthly peaks without a battery and with the optimum's schedule run through the plant, for the
    benchmark scripts that compare other runs with them (without the controller's replay)."""
    labels, month_of_step = series.month_index()
    net = series.net_kw
    best = optimum.solve(net, month_of_step, len(labels), battery)
    applied = replay_schedule(best.battery_kw, net, battery).battery_kw
    months = len(labels)
    return monthly_peaks_kw(net, month_of_step, months), monthly_peaks_kw(net - applied, month_of_step, months)


def format_table(result: BenchResult) -> str:
    b = result.battery
    lines = [
        f"{result.series.name}: {result.series.steps} steps from {result.series.start:%Y-%m-%d}; battery "
        f"{b.capacity_kwh:g} kWh / {b.power_kw:g} kW, SOC {b.soc_min_pct:g}-{b.soc_max_pct:g} %, "
        f"round trip {b.round_trip_efficiency:.0%}",
        f"{'month':<8} {'baseline':>9} {'rule':>9} {'controller':>11} {'optimum':>9}   monthly peak, kW",
    ]
    for m in result.months:
        lines.append(f"{m.month:<8} {m.baseline_peak_kw:9.1f} {m.rule_peak_kw:9.1f} {m.controller_peak_kw:11.1f} "
                     f"{m.optimum_peak_kw:9.1f}")
    total = [sum(getattr(m, f"{run}_peak_kw") for m in result.months) for run in RUNS]
    lines.append(f"{'sum':<8} {total[0]:9.1f} {total[1]:9.1f} {total[2]:11.1f} {total[3]:9.1f}")
    ratio_c, ratio_r = result.ratio("controller"), result.ratio("rule")
    lines.append(f"ratio controller {_fmt(ratio_c)}, rule {_fmt(ratio_r)} "
                 f"(threshold {result.rule_threshold_kw:.1f} kW, tuned in hindsight); violations {result.violations()} "
                 + ", ".join(f"{name} {s.violations.total}" for name, s in result.schedules.items()))
    lines.append("seconds: " + ", ".join(f"{name} {s:.1f}" for name, s in result.seconds.items()))
    if result.bills:
        lines.append("")
        lines.append(format_bills(result))
    return "\n".join(lines)


def format_bills(result: BenchResult) -> str:
    """The bill of every run under the tariff, beside its monthly-peak ratio."""
    base = result.bills["baseline"].total
    lines = [f"bill under tariff {result.tariff_name!r} (saving = baseline − run; bill ratio = saving / the bill "
             "optimum's)",
             f"{'run':<20} {'demand':>10} {'energy':>10} {'export':>9} {'total':>10} {'saving':>9} "
             f"{'bill ratio':>10} {'demand r.':>10} {'peak ratio':>10} {'viol.':>5}"]
    for name, b in result.bills.items():
        schedule = result.schedules.get(name) or result.peers.get(name)
        violations = "" if schedule is None else str(schedule.violations.total)
        peak = "" if name == "baseline" or name in LP_ONLY else _fmt(result.peak_ratio(name))
        ratio = "" if name == "baseline" else _fmt(result.bill_ratio(name))
        demand = "" if name == "baseline" else _fmt(result.demand_ratio(name))
        lines.append(f"{name:<20} {b.demand:10.0f} {b.energy:10.0f} {b.export:9.0f} {b.total:10.0f} "
                     f"{base - b.total:9.0f} {ratio:>10} {demand:>10} {peak:>10} {violations:>5}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_json(result: BenchResult, path: Path) -> None:
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")


def write_schedule(result: BenchResult, path: Path) -> None:
    """The controller's run step by step (battery_kw + = discharge; soc_kwh after the step)."""
    series, schedule = result.series, result.schedules["controller"]
    grid = result.grid_import_kw("controller")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "load_kw", "pv_kw", "battery_kw", "soc_kwh", "grid_import_kw"])
        for k in range(series.steps):
            writer.writerow([series.time(k).isoformat(), f"{series.load_kw[k]:.4f}", f"{series.pv_kw[k]:.4f}",
                             f"{schedule.battery_kw[k]:.4f}", f"{schedule.soc_kwh[k]:.4f}", f"{grid[k]:.4f}"])


def read_schedule(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = ["load_kw", "pv_kw", "battery_kw", "soc_kwh", "grid_import_kw"]
    out = {c: np.asarray([float(r[c]) for r in rows]) for c in columns}
    out["timestamp"] = np.asarray([r["timestamp"] for r in rows])
    return out


def plot(result: BenchResult, path: Path) -> None:
    """Top: the month of the largest baseline peak, step by step. Bottom: the monthly peaks of the four runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result.series
    labels, month_of_step = series.month_index()
    worst = int(np.argmax([m.baseline_peak_kw for m in result.months]))
    steps = np.flatnonzero(month_of_step == worst)
    hours = np.arange(steps.size) * 0.25 / 24 + 1  # day of month
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 8), gridspec_kw={"height_ratios": [3, 2]})
    top.plot(hours, series.net_kw[steps], color="0.6", lw=0.7, label="no battery (load − PV)")
    top.plot(hours, result.grid_import_kw("rule")[steps], color="tab:orange", lw=0.7, label="rule")
    top.plot(hours, result.grid_import_kw("controller")[steps], color="tab:blue", lw=0.8, label="controller")
    top.plot(hours, result.grid_import_kw("optimum")[steps], color="tab:green", lw=0.7, label="optimum")
    top.plot(hours, result.controller_limit_kw[steps], color="tab:blue", lw=0.8, ls="--",
             label="controller's planned limit")
    for run, color in (("controller", "tab:blue"), ("optimum", "tab:green"), ("rule", "tab:orange")):
        top.axhline(getattr(result.months[worst], f"{run}_peak_kw"), color=color, lw=0.6, ls=":")
    top.set_title(f"{series.name}: {labels[worst]}, the month of the largest peak")
    top.set_xlabel("day of month")
    top.set_ylabel("grid import, kW (15-min mean)")
    top.legend(loc="upper right", fontsize=8, ncols=3)
    x = np.arange(len(result.months))
    for offset, run, color in ((-0.3, "baseline", "0.6"), (-0.1, "rule", "tab:orange"),
                               (0.1, "controller", "tab:blue"), (0.3, "optimum", "tab:green")):
        bottom.bar(x + offset, [getattr(m, f"{run}_peak_kw") for m in result.months], width=0.2, color=color,
                   label=run)
    bottom.set_xticks(x, [m.month for m in result.months], fontsize=8)
    bottom.set_ylabel("monthly peak, kW")
    bottom.set_title(f"monthly peaks; ratio controller {_fmt(result.ratio('controller'))}, "
                     f"rule {_fmt(result.ratio('rule'))}")
    bottom.legend(fontsize=8, ncols=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
