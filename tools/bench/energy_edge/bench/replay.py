"""The controller's own decision core, stepped through the data one 15-minute step at a time.

This is the code the module runs (`controller_module.core`), configured, not copied. Each step:

1. the meter reads the step's mean import with the battery still at the previous step's power
   (load − PV + charge − discharge), the battery view carries the plant's SOC and that power;
2. `Controller.step` decides (it feeds its own load history and quarter tracker, as in the module);
3. the battery setpoint runs on the plant for the step.

The controller sees the present step and the past, never the future. The import limit is left to the
controller to plan (`import_limit_kw=None`): that planning is what is benchmarked. Balancing, boilers and
the export limit are off; the reserve is the SOC ceiling, so the battery is refilled below the planned
limit at its full rating; margins, deadbands and ramps are zero or wide open, since one step is one
billing quarter and the plant follows its setpoint exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller_module.core.config import ControllerConfig
from controller_module.core.controller import Controller
from controller_module.core.state import BatteryView, MeterView, SiteState, SolarView
from controller_module.core.tariff import Tariff, default_tariff
from energy_edge.bench.data import SiteSeries
from energy_edge.bench.plant import BatterySpec, Plant, Violations

BATTERY_ID = "battery"
METER_ID = "meter"
SOLAR_ID = "pv"


@dataclass(frozen=True)
class ControllerRun:
    battery_kw: np.ndarray  # + discharge, as delivered by the plant
    soc_kwh: np.ndarray  # at the end of each step
    limit_kw: np.ndarray  # the limit the controller planned at each step (nan: none yet)
    violations: Violations


def controller_config(battery: BatterySpec, tariff: Tariff | None = None, energy_shifting: bool = False
                      ) -> ControllerConfig:
    return ControllerConfig(
        energy_shifting_enabled=energy_shifting,
        import_limit_kw=None,
        tariff=tariff or default_tariff(),
        limit_margin_kw=0.0,
        reserve_soc_pct=battery.soc_max_pct,
        min_soc_pct=battery.soc_min_pct,
        max_soc_pct=battery.soc_max_pct,
        recharge_kw=battery.power_kw,
        balancing_enabled=False,
        deadband_kw=0.0,
        hysteresis_kw=0.0,
        ramp_kw_per_s=1_000_000,
        max_export_kw=None,
        boiler_enabled=False,
        meter_stale_s=3600,
        asset_stale_s=3600,
    )


def run(series: SiteSeries, battery: BatterySpec, config: ControllerConfig | None = None) -> ControllerRun:
    controller = Controller(config or controller_config(battery))
    plant = Plant(battery)
    net = series.net_kw
    n = series.steps
    battery_kw, soc_kwh, limit_kw = np.empty(n), np.empty(n), np.full(n, np.nan)
    previous_kw = 0.0
    for k in range(n):
        net_kw = float(net[k])
        meter = MeterView(METER_ID, True, net_kw - previous_kw, None, None, None, 0.0)
        unit = BatteryView(BATTERY_ID, True, previous_kw, plant.soc_pct, battery.capacity_kwh, battery.power_kw,
                           battery.power_kw, 0.0)
        solar = SolarView(SOLAR_ID, True, float(series.pv_kw[k]), None, None, 0.0)
        decision = controller.step(SiteState(series.time(k), meter, (unit,), (solar,)))
        previous_kw = plant.apply(decision.battery_kw.get(BATTERY_ID, 0.0), net_kw)
        battery_kw[k], soc_kwh[k] = previous_kw, plant.soc_kwh
        if decision.status.limit_kw is not None:
            limit_kw[k] = decision.status.limit_kw
    return ControllerRun(battery_kw, soc_kwh, limit_kw, plant.violations)
