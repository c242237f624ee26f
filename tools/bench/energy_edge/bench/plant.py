"""The site every run shares: a battery behind the grid meter, in 15-minute steps.

The battery loses sqrt(round-trip efficiency) on the way in and the same on the way out, so a full cycle
returns the round-trip efficiency. Like a battery's own management system, the plant refuses what it
cannot do: a setpoint beyond the power rating, past the state-of-charge window, or discharging into export
is cut back to what is possible, and each cut is counted as a violation of the run that asked for it.
`grid_import_kw` is load − PV + charge − discharge (battery power is + discharge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from energy_edge.bench.data import STEP_H, BatteryDefaults

# Below these a difference is rounding in the commanding code (setpoints are rounded to 1 W), not a violation.
POWER_TOLERANCE_KW = 0.01
ENERGY_TOLERANCE_KWH = 0.01


@dataclass(frozen=True)
class BatterySpec:
    capacity_kwh: float
    power_kw: float  # charge and discharge rating
    soc_min_pct: float = 5.0
    soc_max_pct: float = 95.0
    round_trip_efficiency: float = 0.90
    initial_soc_pct: float | None = None  # None: start at soc_max_pct

    def __post_init__(self) -> None:
        if self.capacity_kwh < 0 or self.power_kw < 0:
            raise ValueError("battery capacity and power must not be negative")
        if not 0 <= self.soc_min_pct <= self.soc_max_pct <= 100:
            raise ValueError("need 0 <= soc_min_pct <= soc_max_pct <= 100")
        if not 0 < self.round_trip_efficiency <= 1:
            raise ValueError("round_trip_efficiency must be in (0, 1]")

    @classmethod
    def of(cls, defaults: BatteryDefaults) -> BatterySpec:
        """A scenario's battery."""
        return cls(defaults.capacity_kwh, defaults.power_kw, defaults.soc_min_pct, defaults.soc_max_pct,
                   defaults.round_trip_efficiency)

    @property
    def efficiency_one_way(self) -> float:
        return math.sqrt(self.round_trip_efficiency)

    @property
    def min_kwh(self) -> float:
        return self.capacity_kwh * self.soc_min_pct / 100.0

    @property
    def max_kwh(self) -> float:
        return self.capacity_kwh * self.soc_max_pct / 100.0

    @property
    def initial_kwh(self) -> float:
        pct = self.soc_max_pct if self.initial_soc_pct is None else self.initial_soc_pct
        return self.capacity_kwh * pct / 100.0


@dataclass
class Violations:
    """Steps on which a run asked for something the battery could not do."""

    soc_steps: int = 0  # would have left the state-of-charge window
    power_steps: int = 0  # beyond the power rating
    export_steps: int = 0  # discharging into export
    first: list[str] = field(default_factory=list)  # the first few, for the report

    @property
    def total(self) -> int:
        return self.soc_steps + self.power_steps + self.export_steps

    def note(self, kind: str, step: int, detail: str) -> None:
        if kind == "soc":
            self.soc_steps += 1
        elif kind == "power":
            self.power_steps += 1
        else:
            self.export_steps += 1
        if len(self.first) < 5:
            self.first.append(f"step {step}: {detail}")

    def to_dict(self) -> dict[str, int]:
        return {"total": self.total, "soc_steps": self.soc_steps, "power_steps": self.power_steps,
                "export_steps": self.export_steps}


class Plant:
    """One battery's state of charge, stepped by the power each run commands."""

    def __init__(self, spec: BatterySpec) -> None:
        self.spec = spec
        self.soc_kwh = spec.initial_kwh
        self.violations = Violations()
        self._step = 0

    @property
    def soc_pct(self) -> float:
        return 100.0 * self.soc_kwh / self.spec.capacity_kwh if self.spec.capacity_kwh > 0 else 0.0

    def feasible_kw(self, net_kw: float) -> tuple[float, float]:
        """(largest charge, largest discharge) this step: rating, SOC window and no export, all ≥ 0."""
        spec, eta = self.spec, self.spec.efficiency_one_way
        charge = min(spec.power_kw, max(0.0, spec.max_kwh - self.soc_kwh) / (STEP_H * eta))
        discharge = min(spec.power_kw, max(0.0, self.soc_kwh - spec.min_kwh) * eta / STEP_H, max(0.0, net_kw))
        return charge, discharge

    def apply(self, setpoint_kw: float, net_kw: float) -> float:
        """Run one step at `setpoint_kw` (+ discharge) with site net load `net_kw`; returns the power delivered."""
        spec, eta, step = self.spec, self.spec.efficiency_one_way, self._step
        self._step += 1
        power = setpoint_kw
        if abs(power) > spec.power_kw + POWER_TOLERANCE_KW:
            self.violations.note("power", step, f"{setpoint_kw:.2f} kW beyond the {spec.power_kw:g} kW rating")
        if power > max(0.0, net_kw) + POWER_TOLERANCE_KW:
            self.violations.note("export", step, f"discharge {setpoint_kw:.2f} kW into a net load of {net_kw:.2f} kW")
        if power > 0 and power * STEP_H / eta > self.soc_kwh - spec.min_kwh + ENERGY_TOLERANCE_KWH:
            self.violations.note("soc", step, f"discharge {setpoint_kw:.2f} kW from {self.soc_kwh:.2f} kWh "
                                              f"would pass the {spec.min_kwh:g} kWh floor")
        if power < 0 and -power * STEP_H * eta > spec.max_kwh - self.soc_kwh + ENERGY_TOLERANCE_KWH:
            self.violations.note("soc", step, f"charge {-setpoint_kw:.2f} kW from {self.soc_kwh:.2f} kWh "
                                              f"would pass the {spec.max_kwh:g} kWh ceiling")
        max_charge, max_discharge = self.feasible_kw(net_kw)
        power = max(-max_charge, min(max_discharge, power))
        self.soc_kwh += (-power * eta if power < 0 else -power / eta) * STEP_H
        self.soc_kwh = min(spec.max_kwh, max(spec.min_kwh, self.soc_kwh))  # float dust only
        return power


def integrate_soc(battery_kw: np.ndarray, spec: BatterySpec) -> np.ndarray:
    """SOC (kWh) at the end of each step for a battery power schedule (+ discharge), without any cut."""
    eta = spec.efficiency_one_way
    delta = np.where(battery_kw < 0, -battery_kw * eta, -battery_kw / eta) * STEP_H
    soc: np.ndarray = spec.initial_kwh + np.cumsum(delta)
    return soc


def monthly_peaks_kw(grid_import_kw: np.ndarray, month_of_step: np.ndarray, months: int) -> np.ndarray:
    """The largest 15-minute import of each month (export counts as zero import)."""
    peaks = np.zeros(months)
    np.maximum.at(peaks, month_of_step, np.maximum(grid_import_kw, 0.0))
    return peaks
