"""The site's physics: pure, no I/O, deterministic given the profiles (hence the seed) and the commands.

Sign convention for every asset's `power_kw`: positive = delivered to the site bus (PV generation, battery
discharge), negative = drawn from it (battery charging, the boiler's heater).

The meter at the point of common coupling (PCC)::

    grid_import_kw = load_kw + heater_kw - pv_kw + battery_charge_kw - battery_discharge_kw

(positive = import from the grid, negative = export). `step(dt_s)` integrates with explicit Euler over dt
using the powers valid at the start of the step, then re-evaluates them at the new time. `evaluate()`
recomputes the instantaneous powers without advancing time: the simulator calls it after every control
write so a command takes effect at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from energy_edge.sim.profiles import SiteProfiles
from energy_edge.sim.scenario import BatterySpec, BoilerSpec, ControllerSpec, Scenario, SolarSpec

WATER_KWH_PER_L_K = 4.186 / 3600.0  # c_p of water, kWh per litre per kelvin (1 kg per litre)
AVG_TAU_S = 60.0  # time constant of the meter's import average (the "1-minute average")
EPS_KW = 0.05

# SunSpec 103 St
ST_OFF, ST_SLEEPING, ST_MPPT, ST_THROTTLED, ST_FAULT, ST_STANDBY = 1, 2, 4, 5, 7, 8
# SunSpec 124 ChaSt
CHA_OFF, CHA_EMPTY, CHA_DISCHARGING, CHA_CHARGING, CHA_FULL, CHA_HOLDING = 1, 2, 3, 4, 5, 6
# boiler state
BOILER_IDLE, BOILER_HEATING, BOILER_DISABLED, BOILER_FAULT = 0, 1, 2, 3
BOILER_FAULT_OVERTEMP, BOILER_FAULT_TRIP = 1, 2
# controller status bits
STATUS_PEAK_SHAVING, STATUS_DER_ACTIVE, STATUS_GRID_CONNECTED = 1, 2, 4


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


@dataclass
class Solar:
    """A PV array behind an inverter; the SunSpec 123 controls are its inputs."""

    asset_id: str
    kwp: float
    ac_kw: float
    performance_ratio: float = 0.86
    # controls (SunSpec 123)
    conn: bool = True
    wmaxlim_pct: float = 100.0
    wmaxlim_ena: bool = False
    wmaxlim_rvrt_s: float = 0.0
    wmaxlim_written_s: float = 0.0
    conn_rvrt_s: float = 0.0
    conn_written_s: float = 0.0
    fault: bool = False
    # outputs
    resource: float = 0.0  # W/m2 or available kW
    available_kw: float = 0.0
    power_kw: float = 0.0
    energy_kwh: float = 0.0
    state: int = ST_SLEEPING

    @classmethod
    def from_spec(cls, spec: SolarSpec) -> Solar:
        return cls(spec.asset_id, spec.kwp, spec.rated_kw, spec.performance_ratio, conn=spec.connected,
                   wmaxlim_pct=spec.wmaxlim_pct, wmaxlim_ena=spec.wmaxlim_ena)

    @property
    def limit_kw(self) -> float:
        return self.ac_kw * self.wmaxlim_pct / 100.0 if self.wmaxlim_ena else self.ac_kw

    def evaluate(self, resource: float, unit: str, der_enable: bool) -> None:
        self.resource = resource
        dc = self.kwp * resource / 1000.0 * self.performance_ratio if unit == "w_m2" else resource
        self.available_kw = _clamp(dc, 0.0, self.ac_kw)
        if self.fault:
            self.power_kw, self.state = 0.0, ST_FAULT
        elif not self.conn or not der_enable:
            self.power_kw, self.state = 0.0, ST_STANDBY
        elif self.available_kw < 0.002 * self.ac_kw:
            self.power_kw, self.state = 0.0, ST_SLEEPING
        elif self.available_kw > self.limit_kw:
            self.power_kw, self.state = self.limit_kw, ST_THROTTLED
        else:
            self.power_kw, self.state = self.available_kw, ST_MPPT

    def watchdogs(self, t_s: float) -> None:
        if self.wmaxlim_ena and self.wmaxlim_rvrt_s > 0 and t_s - self.wmaxlim_written_s >= self.wmaxlim_rvrt_s:
            self.wmaxlim_ena = False
        if not self.conn and self.conn_rvrt_s > 0 and t_s - self.conn_written_s >= self.conn_rvrt_s:
            self.conn = True

    def snapshot(self) -> dict[str, Any]:
        return {"power_kw": self.power_kw, "available_kw": self.available_kw, "limit_kw": self.limit_kw,
                "state": self.state, "conn": self.conn, "wmaxlim_pct": self.wmaxlim_pct,
                "wmaxlim_ena": self.wmaxlim_ena, "energy_kwh": self.energy_kwh, "tripped": self.fault,
                "rated_kw": self.ac_kw, "kwp": self.kwp}


@dataclass
class Battery:
    """A battery behind its inverter; the SunSpec 124 storage controls are its inputs.

    The command, in percent of WChaMax, is `(OutWRte if StorCtl_Mod bit1) - (InWRte if StorCtl_Mod bit0)`:
    positive discharges, negative charges, no bit set holds at 0 kW. Discharge tapers linearly to zero over
    `derate_low_pct` above the reserve (MinRsvPct); charge tapers linearly to zero above `derate_high_pct`.
    Energy: charging stores |P|·eta_c·dt, discharging takes P/eta_d·dt, eta_c = eta_d = sqrt(round trip).
    """

    asset_id: str
    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    eta_charge: float
    eta_discharge: float
    energy_kwh: float
    soh_pct: float = 100.0
    derate_low_pct: float = 10.0
    derate_high_pct: float = 90.0
    nominal_voltage_v: float = 600.0
    # controls (SunSpec 124)
    wchamax_kw: float = 0.0
    storctl_mod: int = 0
    out_wrte_pct: float = 0.0
    in_wrte_pct: float = 0.0
    min_rsv_pct: float = 0.0
    rvrt_s: float = 0.0
    ctl_written_s: float = 0.0
    cha_gri_set: int = 1
    fault: bool = False
    # outputs
    command_kw: float = 0.0
    power_kw: float = 0.0
    charged_kwh: float = 0.0
    discharged_kwh: float = 0.0
    cha_st: int = CHA_HOLDING
    reverted: int = 0

    @classmethod
    def from_spec(cls, spec: BatterySpec) -> Battery:
        eta = math.sqrt(spec.round_trip_efficiency)
        usable = spec.capacity_kwh * spec.soh_pct / 100.0
        return cls(spec.asset_id, spec.capacity_kwh, spec.max_charge_kw, spec.max_discharge_kw, eta, eta,
                   usable * spec.soc_pct / 100.0, spec.soh_pct, spec.derate_low_pct, spec.derate_high_pct,
                   spec.nominal_voltage_v, wchamax_kw=spec.max_charge_kw, min_rsv_pct=spec.min_reserve_pct)

    @property
    def usable_kwh(self) -> float:
        return self.capacity_kwh * self.soh_pct / 100.0

    @property
    def soc_pct(self) -> float:
        return 100.0 * self.energy_kwh / self.usable_kwh

    @property
    def available_kwh(self) -> float:
        """Energy that can still be discharged above the reserve."""
        return max(0.0, self.energy_kwh - self.usable_kwh * self.min_rsv_pct / 100.0)

    def discharge_limit_kw(self) -> float:
        band = self.derate_low_pct
        room = self.soc_pct - self.min_rsv_pct
        factor = (1.0 if room >= band else 0.0) if band <= 0 else _clamp(room / band, 0.0, 1.0)
        return self.max_discharge_kw * factor

    def charge_limit_kw(self) -> float:
        band = 100.0 - self.derate_high_pct
        room = 100.0 - self.soc_pct
        factor = (1.0 if room > 0 else 0.0) if band <= 0 else _clamp(room / band, 0.0, 1.0)
        return min(self.max_charge_kw, self.wchamax_kw) * factor

    def setpoint_pct(self) -> float:
        out = self.out_wrte_pct if self.storctl_mod & 2 else 0.0
        inn = self.in_wrte_pct if self.storctl_mod & 1 else 0.0
        return out - inn

    def evaluate(self, der_enable: bool) -> None:
        self.command_kw = self.setpoint_pct() / 100.0 * self.wchamax_kw
        if self.fault:
            self.power_kw = 0.0
        elif self.command_kw > 0:
            self.power_kw = min(self.command_kw, self.discharge_limit_kw()) if der_enable else 0.0
        else:
            self.power_kw = -min(-self.command_kw, self.charge_limit_kw())
        soc = self.soc_pct
        if self.fault:
            self.cha_st = CHA_OFF
        elif self.power_kw > EPS_KW:
            self.cha_st = CHA_DISCHARGING
        elif self.power_kw < -EPS_KW:
            self.cha_st = CHA_CHARGING
        elif soc >= 99.9:
            self.cha_st = CHA_FULL
        elif soc <= self.min_rsv_pct + 0.1:
            self.cha_st = CHA_EMPTY
        else:
            self.cha_st = CHA_HOLDING

    def integrate(self, dt_s: float) -> None:
        h = dt_s / 3600.0
        if self.power_kw > 0:
            self.energy_kwh -= self.power_kw / self.eta_discharge * h
            self.discharged_kwh += self.power_kw * h
        elif self.power_kw < 0:
            self.energy_kwh += -self.power_kw * self.eta_charge * h
            self.charged_kwh += -self.power_kw * h
        self.energy_kwh = _clamp(self.energy_kwh, 0.0, self.usable_kwh)

    def watchdogs(self, t_s: float) -> None:
        """InOutWRte_RvrtTms: without a fresh command in time the inverter goes back to idle."""
        if self.rvrt_s > 0 and self.storctl_mod and t_s - self.ctl_written_s >= self.rvrt_s:
            self.storctl_mod, self.out_wrte_pct, self.in_wrte_pct = 0, 0.0, 0.0
            self.reverted += 1

    def snapshot(self) -> dict[str, Any]:
        return {"power_kw": self.power_kw, "command_kw": self.command_kw, "soc_pct": self.soc_pct,
                "energy_kwh": self.energy_kwh, "capacity_kwh": self.capacity_kwh, "soh_pct": self.soh_pct,
                "cha_st": self.cha_st, "storctl_mod": self.storctl_mod, "out_wrte_pct": self.out_wrte_pct,
                "in_wrte_pct": self.in_wrte_pct, "wchamax_kw": self.wchamax_kw, "min_rsv_pct": self.min_rsv_pct,
                "rvrt_s": self.rvrt_s, "reverted": self.reverted, "tripped": self.fault,
                "max_charge_kw": self.max_charge_kw, "max_discharge_kw": self.max_discharge_kw,
                "charged_kwh": self.charged_kwh, "discharged_kwh": self.discharged_kwh}


@dataclass
class Boiler:
    """An electric heater in a hot-water tank: dT/dt = (heater - demand - losses) / (m·c).

    Thermostat (when enabled): on at or below setpoint - h/2, off at or above min(setpoint + h/2, max temp).
    Minimum-temperature protection heats at rated power below min temp, whatever enable and the power
    limit say, until min temp + h. Nothing heats at or above max temp.
    """

    asset_id: str
    heater_kw: float
    tank_l: float
    min_temp_c: float
    max_temp_c: float
    hysteresis_k: float
    temp_c: float
    loss_kw_per_k: float
    ambient_c: float
    inlet_temp_c: float
    # controls
    enable: bool = True
    setpoint_c: float = 60.0
    power_limit_kw: float = 0.0
    fault_code: int = 0
    # internal
    heating: bool = False
    protecting: bool = False
    # outputs
    power_kw: float = 0.0  # electric, >= 0 (the site sees -power_kw)
    demand_kw: float = 0.0
    loss_kw: float = 0.0
    energy_kwh: float = 0.0
    state: int = BOILER_IDLE

    @classmethod
    def from_spec(cls, spec: BoilerSpec) -> Boiler:
        return cls(spec.asset_id, spec.heater_kw, spec.tank_l, spec.min_temp_c, spec.max_temp_c, spec.hysteresis_k,
                   spec.temp_c, spec.loss_w_per_k / 1000.0, spec.ambient_c, spec.inlet_temp_c, enable=spec.enabled,
                   setpoint_c=spec.setpoint_c,
                   power_limit_kw=spec.heater_kw if spec.power_limit_kw is None else spec.power_limit_kw)

    @property
    def heat_capacity_kwh_per_k(self) -> float:
        return self.tank_l * WATER_KWH_PER_L_K

    def evaluate(self, demand_kw: float) -> None:
        t, h = self.temp_c, self.hysteresis_k
        if t > self.max_temp_c + 5.0 and not self.fault_code:
            self.fault_code = BOILER_FAULT_OVERTEMP
        if t < self.min_temp_c:
            self.protecting = True
        elif t >= min(self.min_temp_c + h, self.max_temp_c):
            self.protecting = False
        if t <= self.setpoint_c - h / 2:
            self.heating = True
        elif t >= min(self.setpoint_c + h / 2, self.max_temp_c):
            self.heating = False
        if self.fault_code or t >= self.max_temp_c:
            power = 0.0
        elif self.protecting:
            power = self.heater_kw
        elif self.enable and self.heating:
            power = min(self.heater_kw, self.power_limit_kw)
        else:
            power = 0.0
        self.power_kw = power
        self.demand_kw = max(0.0, demand_kw) if t > self.inlet_temp_c else 0.0
        self.loss_kw = self.loss_kw_per_k * (t - self.ambient_c)
        if self.fault_code:
            self.state = BOILER_FAULT
        elif power > 0:
            self.state = BOILER_HEATING
        elif not self.enable:
            self.state = BOILER_DISABLED
        else:
            self.state = BOILER_IDLE

    def integrate(self, dt_s: float) -> None:
        net_kw = self.power_kw - self.demand_kw - self.loss_kw
        self.temp_c += net_kw * dt_s / 3600.0 / self.heat_capacity_kwh_per_k
        self.temp_c = max(self.temp_c, min(self.inlet_temp_c, self.ambient_c))
        self.energy_kwh += self.power_kw * dt_s / 3600.0

    def reset(self) -> None:
        if self.fault_code == BOILER_FAULT_OVERTEMP and self.temp_c > self.max_temp_c:
            return  # the cause is still there
        self.fault_code = 0

    def snapshot(self) -> dict[str, Any]:
        return {"power_kw": -self.power_kw, "heater_kw": self.power_kw, "temp_c": self.temp_c,
                "setpoint_c": self.setpoint_c, "enable": self.enable, "power_limit_kw": self.power_limit_kw,
                "state": self.state, "fault_code": self.fault_code, "heat_demand_kw": self.demand_kw,
                "loss_kw": self.loss_kw, "energy_kwh": self.energy_kwh, "protecting": self.protecting,
                "min_temp_c": self.min_temp_c, "max_temp_c": self.max_temp_c, "rated_kw": self.heater_kw}


@dataclass
class SiteMeter:
    """The microgrid controller's meter at the PCC and its own controls."""

    asset_id: str | None
    import_limit_kw: float
    nominal_frequency_hz: float = 50.0
    nominal_voltage_v: float = 400.0
    peak_shaving_enable: bool = True
    der_enable: bool = True
    fault_code: int = 0
    grid_import_kw: float = 0.0
    avg_import_kw: float = 0.0
    site_load_kw: float = 0.0
    frequency_hz: float = 50.0
    voltage_v: float = 400.0
    import_kwh: float = 0.0
    export_kwh: float = 0.0
    status: int = STATUS_GRID_CONNECTED

    @property
    def peak_shaving_active(self) -> bool:
        return self.peak_shaving_enable and self.avg_import_kw >= 0.9 * self.import_limit_kw

    def snapshot(self) -> dict[str, Any]:
        return {"grid_import_kw": self.grid_import_kw, "grid_import_avg_kw": self.avg_import_kw,
                "site_load_kw": self.site_load_kw, "import_limit_kw": self.import_limit_kw,
                "frequency_hz": self.frequency_hz, "voltage_v": self.voltage_v, "status": self.status,
                "peak_shaving_enable": self.peak_shaving_enable, "der_enable": self.der_enable,
                "peak_shaving_active": bool(self.status & STATUS_PEAK_SHAVING),
                "der_active": bool(self.status & STATUS_DER_ACTIVE),
                "grid_connected": bool(self.status & STATUS_GRID_CONNECTED),
                "import_kwh": self.import_kwh, "export_kwh": self.export_kwh, "fault_code": self.fault_code}


@dataclass
class Plant:
    """The whole site, advanced in simulated seconds since the scenario start."""

    profiles: SiteProfiles
    solar: dict[str, Solar] = field(default_factory=dict)
    batteries: dict[str, Battery] = field(default_factory=dict)
    boilers: dict[str, Boiler] = field(default_factory=dict)
    meter: SiteMeter = field(default_factory=lambda: SiteMeter(None, 150.0))
    seed: int = 0
    t_s: float = 0.0
    load_offset_kw: float = 0.0
    base_load_kw: float = 0.0
    heat_demand_kw: float = 0.0

    @classmethod
    def from_scenario(cls, scenario: Scenario, profiles: SiteProfiles, seed: int | None = None) -> Plant:
        plant = cls(profiles, seed=scenario.seed if seed is None else seed)
        plant.meter = SiteMeter(None, scenario.import_limit_kw)
        for spec in scenario.devices:
            if isinstance(spec, SolarSpec):
                plant.solar[spec.asset_id] = Solar.from_spec(spec)
            elif isinstance(spec, BatterySpec):
                plant.batteries[spec.asset_id] = Battery.from_spec(spec)
            elif isinstance(spec, BoilerSpec):
                plant.boilers[spec.asset_id] = Boiler.from_spec(spec)
            elif isinstance(spec, ControllerSpec):
                plant.meter = SiteMeter(spec.asset_id, scenario.import_limit_kw, spec.nominal_frequency_hz,
                                        spec.nominal_voltage_v, spec.peak_shaving_enable, spec.der_enable)
        plant.evaluate()
        plant.meter.avg_import_kw = plant.meter.grid_import_kw
        return plant

    # ------------------------------------------------------------ totals

    @property
    def load_kw(self) -> float:
        return max(0.0, self.base_load_kw + self.load_offset_kw)

    @property
    def pv_kw(self) -> float:
        return sum(s.power_kw for s in self.solar.values())

    @property
    def battery_kw(self) -> float:
        """Net battery power, positive = discharge."""
        return sum(b.power_kw for b in self.batteries.values())

    @property
    def heater_kw(self) -> float:
        return sum(b.power_kw for b in self.boilers.values())

    @staticmethod
    def pcc_import_kw(load_kw: float, heater_kw: float, pv_kw: float, charge_kw: float, discharge_kw: float) -> float:
        """grid_import_kw = load_kw + heater_kw - pv_kw + battery_charge_kw - battery_discharge_kw."""
        return load_kw + heater_kw - pv_kw + charge_kw - discharge_kw

    # ------------------------------------------------------------ dynamics

    def evaluate(self) -> None:
        """Instantaneous powers at `t_s` from the state and the controls (no time passes)."""
        t = self.t_s
        self.base_load_kw = max(0.0, self.profiles.load.at(t))
        self.heat_demand_kw = max(0.0, self.profiles.heat_demand.at(t))
        resource = max(0.0, self.profiles.pv.at(t))
        der = self.meter.der_enable
        for s in self.solar.values():
            s.evaluate(resource, self.profiles.pv.unit, der)
        for b in self.batteries.values():
            b.evaluate(der)
        for w in self.boilers.values():
            w.evaluate(self.heat_demand_kw)
        m = self.meter
        charge = sum(-b.power_kw for b in self.batteries.values() if b.power_kw < 0)
        discharge = sum(b.power_kw for b in self.batteries.values() if b.power_kw > 0)
        m.grid_import_kw = self.pcc_import_kw(self.load_kw, self.heater_kw, self.pv_kw, charge, discharge)
        m.site_load_kw = self.load_kw + self.heater_kw
        m.frequency_hz = m.nominal_frequency_hz + 0.015 * math.sin(2 * math.pi * t / 317.0 + self.seed) \
            + 0.008 * math.sin(2 * math.pi * t / 61.0 + 2 * self.seed)
        m.voltage_v = m.nominal_voltage_v * (1.0 + 0.004 * math.sin(2 * math.pi * t / 911.0 + self.seed)) \
            - 0.01 * m.grid_import_kw
        self._status()

    def _status(self) -> None:
        m = self.meter
        status = STATUS_GRID_CONNECTED
        if m.peak_shaving_active:
            status |= STATUS_PEAK_SHAVING
        if m.der_enable and (self.pv_kw > EPS_KW or any(b.power_kw > EPS_KW for b in self.batteries.values())):
            status |= STATUS_DER_ACTIVE
        m.status = status

    def step(self, dt_s: float) -> None:
        """Advance by dt_s simulated seconds."""
        if dt_s <= 0:
            return
        for s in self.solar.values():
            s.watchdogs(self.t_s)
        for b in self.batteries.values():
            b.watchdogs(self.t_s)
        self.evaluate()
        h = dt_s / 3600.0
        for s in self.solar.values():
            s.energy_kwh += s.power_kw * h
        for b in self.batteries.values():
            b.integrate(dt_s)
        for w in self.boilers.values():
            w.integrate(dt_s)
        m = self.meter
        if m.grid_import_kw >= 0:
            m.import_kwh += m.grid_import_kw * h
        else:
            m.export_kwh += -m.grid_import_kw * h
        m.avg_import_kw += (m.grid_import_kw - m.avg_import_kw) * (1.0 - math.exp(-dt_s / AVG_TAU_S))
        self.t_s += dt_s
        for s in self.solar.values():
            s.watchdogs(self.t_s)
        for b in self.batteries.values():
            b.watchdogs(self.t_s)
        self.evaluate()

    def run(self, duration_s: float, dt_s: float) -> None:
        """Advance by whole steps of dt_s covering duration_s (for tests and batch use)."""
        n = round(duration_s / dt_s)
        for _ in range(n):
            self.step(dt_s)

    def snapshot(self) -> dict[str, Any]:
        return {
            "t_s": self.t_s,
            "load_kw": self.load_kw,
            "base_load_kw": self.base_load_kw,
            "load_offset_kw": self.load_offset_kw,
            "pv_kw": self.pv_kw,
            "battery_kw": self.battery_kw,
            "heater_kw": self.heater_kw,
            "heat_demand_kw": self.heat_demand_kw,
            **self.meter.snapshot(),
        }
