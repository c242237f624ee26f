"""One control cycle: read the site, guard, compute, decide. Pure: same inputs, same decision.

Priorities, highest first, each a constraint on the site battery power P (+ discharge):

1. safety       P within what the online batteries can do at their state of charge; stale meter → hold
2. dispatch     an operator's site dispatch fixes P for its duration (per-asset dispatch fixes that unit)
3. peak         P ≥ g − (limit − margin): keeps import under the limit (and caps charging by the headroom)
4. export limit P ≤ g + max_export: never discharge into export beyond the limit
5. balancing    the preferred P inside what is left: toward the grid setpoint, above the reserve, with
                deadband, hysteresis and a ramp so it never flickers between charge and discharge
6. boiler       soaks up the PV surplus the batteries leave, holds off during peaks (flexibility.py)

where g is the import with neither the batteries nor discretionary heating. PV is curtailed only
if export still exceeds the limit after batteries and boilers. An operator's solar or boiler dispatch
replaces the automatic command last, in every mode (dispatch.py). The limit comes from the planner
(planner.py); the split across batteries from allocation.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from controller_module.core.allocation import Unit, derated_limits, energy_limits, split
from controller_module.core.capability import CapabilityState, SourceReading, combine
from controller_module.core.config import ControllerConfig
from controller_module.core.constraints import Interval
from controller_module.core.dispatch import (
    Dispatch,
    DispatchOutcome,
    NotDispatchable,
    override_boilers,
    override_solar,
)
from controller_module.core.flexibility import (
    BoilerCommand,
    BoilerMode,
    boiler_commands,
    curtailment,
    normal,
    soaking_kw,
)
from controller_module.core.planner import BatteryEnvelope, LimitPlanner, LoadHistory
from controller_module.core.shifting import (
    NEAR_BILLED_SHARE,
    Prices,
    comes_near_billed,
    peak_reserve_kwh,
    pv_surplus_kwh,
    shifting_kw,
)
from controller_module.core.state import QUARTER_S, BatteryView, MeterView, QuarterTracker, SiteState
from controller_module.core.tariff import DemandLedger


class Mode(str, Enum):
    FAIL_SAFE = "fail_safe"
    DISPATCH = "dispatch"
    PEAK_SHAVING = "peak_shaving"
    BALANCING = "balancing"
    IDLE = "idle"


@dataclass(frozen=True)
class Status:
    mode: Mode
    reason: str
    grid_import_kw: float | None
    grid_import_avg_15min_kw: float | None
    quarter_avg_kw: float | None
    month_peak_kw: float
    limit_kw: float | None
    limit_source: str  # "twin" | "planned" | "month floor" | "rule" | "outside tariff windows" | "none"
    target_kw: float | None  # what the controller aims at now (limit − margin, ≥ month peak when planned)
    margin_kw: float | None  # limit − 15-min average: how close to the limit the site runs
    battery_kw: float
    limited_by: tuple[str, ...]
    capabilities: dict[str, CapabilityState]


@dataclass(frozen=True)
class Decision:
    battery_kw: dict[str, float]  # asset id → setpoint, + discharge
    solar_limit_kw: dict[str, float | None]  # asset id → output limit, None = unlimited
    boiler: dict[str, BoilerCommand]
    status: Status


@dataclass(frozen=True)
class Reading:
    """What a cycle reads from the site, in the quantities the priorities are written in."""

    batteries: list[BatteryView]  # under control: online, no fault, fresh, SOC known
    p_now: float  # their power now, kW, + discharge
    g_flex: float  # import without these batteries and without the heating that is ours to move, kW


@dataclass(frozen=True)
class Aim:
    limit_kw: float | None
    limit_source: str
    target_kw: float | None  # what the controller aims at in this quarter
    peak_need_kw: float  # the discharge the free batteries owe the target (−inf: no peak to shave)


@dataclass
class Memory:
    """What the controller carries from cycle to cycle (and persists across restarts)."""

    quarters: QuarterTracker = field(default_factory=QuarterTracker)
    history: LoadHistory = field(default_factory=LoadHistory)
    load_quarter: QuarterTracker = field(default_factory=QuarterTracker)  # load without battery and PV, for history
    pv_quarter: QuarterTracker = field(default_factory=QuarterTracker)
    balance_kw: float = 0.0
    balance_direction: int = 0  # last balancing direction: −1 charging, +1 discharging, 0 none
    idle_since: dt.datetime | None = None
    last_time: dt.datetime | None = None
    dispatches: list[Dispatch] = field(default_factory=list)  # the site's and single batteries'
    overrides: dict[str, Dispatch] = field(default_factory=dict)  # solar and boiler dispatch, by asset id
    planned_threshold_kw: float | None = None
    planned_at: dt.datetime | None = None
    month_floor_kw: float = 0.0  # hindsight threshold of the last month's quarters (see planner.py)
    month_floor_day: str = ""  # ISO date it was last computed
    # tariff: the billed demand so far of each demand charge (built on first use, for the configured tariff)
    ledger: DemandLedger | None = None
    ledger_record: dict[str, Any] = field(default_factory=dict)  # restored, until the ledger is built
    ledger_quarter_s: float | None = None  # start of the last quarter the ledger was fed
    # tariffs whose charges count at different times: a plan and a month floor per demand charge
    charge_thresholds_kw: list[float] | None = None
    charge_floors_kw: list[float] = field(default_factory=list)
    charge_floor_day: str = ""
    # energy shifting: the planner's last forecast (from the start of its quarter) and the reserve sized on it
    forecast_start: dt.datetime | None = None
    forecast_kw: list[float] | None = None
    # (sized on, (reserve kWh, PV surplus kWh, the load comes near what is billed))
    shift_reserve: tuple[Any, tuple[float, float, bool]] | None = None

    def to_record(self) -> dict[str, Any]:
        record = {"quarters": self.quarters.to_record(), "history": self.history.to_record(),
                  "month_floor": {"kw": self.month_floor_kw, "day": self.month_floor_day}}
        if self.ledger is not None:
            record["tariff_ledger"] = self.ledger.to_record()
        return record

    def restore(self, record: dict[str, Any]) -> None:
        self.quarters.restore(record.get("quarters", {}))
        if "history" in record:
            self.history = LoadHistory.from_record(record["history"])
        # the floor is kept, not the month of quarters behind it: after a restart it holds until recomputed
        floor = record.get("month_floor", {})
        self.month_floor_kw = float(floor.get("kw", 0.0))
        self.month_floor_day = str(floor.get("day", ""))
        self.ledger, self.ledger_record = None, dict(record.get("tariff_ledger", {}))


REVERSAL_MEMORY = dt.timedelta(minutes=5)
RESERVE_BAND_PCT = 2.0
ROUND_TRIP_EFFICIENCY = 0.9  # what energy shifting assumes a grid-to-grid cycle returns


class Controller:
    def __init__(self, config: ControllerConfig, memory: Memory | None = None) -> None:
        self.memory = memory or Memory()
        self.planner = LimitPlanner(config, self.memory)
        self.config = config

    @property
    def config(self) -> ControllerConfig:
        return self._config

    @config.setter
    def config(self, config: ControllerConfig) -> None:
        # the module hands a new configuration in each cycle (twin patches): the planner plans against it too
        self._config = self.planner.config = config

    # ------------------------------------------------------------ the cycle

    def step(self, site: SiteState) -> Decision:
        """One cycle: read the site, guard (a meter to believe), compute the site battery power by priority and
        its split, then the boilers and PV, and hand out the decision the module writes."""
        cfg, mem = self.config, self.memory
        now = site.now
        dt_s = (now - mem.last_time).total_seconds() if mem.last_time else cfg.cycle_s
        mem.last_time = now
        self._expire_dispatches(now)

        meter = site.meter
        if meter is None or not meter.online or meter.age_s > cfg.meter_stale_s:
            return self._operator_overrides(self._fail_safe(site, _meter_problem(meter, cfg.meter_stale_s)))
        read = self._read(site, meter)

        # per-asset dispatch: those units are fixed and leave the automatic allocation
        fixed_kw = {b.asset_id: self._clamp_unit(b, d.power_kw, dt_s)
                    for b in read.batteries for d in mem.dispatches if d.asset_id == b.asset_id}
        free = [b for b in read.batteries if b.asset_id not in fixed_kw]
        units = self._units(free, dt_s)
        p_fixed = sum(fixed_kw.values())
        g_free = read.g_flex - p_fixed  # the import the free batteries answer for

        # the site battery power: each priority narrows the interval (core/constraints.py)
        box = Interval(-sum(u.max_charge_kw for u in units), sum(u.max_discharge_kw for u in units))
        box.trace.append(("safety", box.low, box.high))
        site_dispatch = next((d for d in mem.dispatches if d.asset_id is None), None)
        if site_dispatch:
            box.exactly(site_dispatch.power_kw - p_fixed, "dispatch")
        aim = self._aim(now, read.g_flex, g_free, free, units)
        if aim.target_kw is not None:
            box.at_least(aim.peak_need_kw, "peak_shaving")
        if cfg.max_export_kw is not None:
            box.at_most(g_free + cfg.max_export_kw, "export_limit")
        p_free = box.pick(self._shifting(now, g_free, units, aim, dt_s) if self._shifts(now)
                          else self._balancing(g_free, units, dt_s, aim.peak_need_kw, now))
        mem.balance_kw = p_free

        # the decision: the split, the boilers with what the batteries leave, PV only past the export limit
        setpoints = self._allocate(site, p_free, units, fixed_kw)
        p_total = sum(setpoints.values())
        # the billing quarter holds the import expected with the new setpoints, not the reading taken before
        mem.quarters.revise(meter.grid_import_kw + read.p_now - p_total)
        headroom_kw = float("inf") if aim.target_kw is None else aim.target_kw - (read.g_flex - p_total)
        boilers, soak_kw = boiler_commands(cfg, site, read.g_flex - p_total, headroom_kw)
        solar = curtailment(cfg, site, read.g_flex + soak_kw - p_total)

        dispatched = site_dispatch is not None or any(d.asset_id for d in mem.dispatches)
        mode = self._mode(dispatched, aim.peak_need_kw > 0, p_total)
        status = self._status(site, mode, _reason(mode, box), aim.limit_kw, aim.limit_source, aim.target_kw,
                              p_total, box)
        return self._operator_overrides(Decision(setpoints, solar, boilers, status))

    def dispatch(self, order: Dispatch, asset_type: str | None, site: SiteState) -> DispatchOutcome:
        """Take an operator's dispatch (in place of the same target's earlier one) and say what it does now.

        `asset_type` is the dispatched asset's type (None: the site's batteries, `order.asset_id` None). A site
        dispatch is split across the batteries online as the allocation would split it; NotDispatchable for a
        meter."""
        mem = self.memory
        if order.asset_id is None:
            units = self._units([b for b in site.batteries if b.online and b.soc_pct is not None])
            shares = split(order.power_kw, units, self.config.min_soc_pct, self.config.max_soc_pct)
            applied_kw = round(sum(shares.values()), 3)
            mem.dispatches = [d for d in mem.dispatches if d.asset_id is not None]
            mem.dispatches.append(order)
            return DispatchOutcome(shares, applied_kw, abs(applied_kw - order.power_kw) > 0.01)
        if asset_type == "battery":
            mem.dispatches = [d for d in mem.dispatches if d.asset_id != order.asset_id]
            mem.dispatches.append(order)
        elif asset_type in ("solar", "boiler"):
            mem.overrides[order.asset_id] = order
        else:
            raise NotDispatchable(f"{order.asset_id} ({asset_type}) cannot be dispatched")
        return DispatchOutcome({order.asset_id: order.power_kw}, order.power_kw, False)

    # ------------------------------------------------------------ read, aim, allocate, override

    def _expire_dispatches(self, now: dt.datetime) -> None:
        mem = self.memory
        mem.dispatches = [d for d in mem.dispatches if d.until > now]
        mem.overrides = {asset_id: d for asset_id, d in mem.overrides.items() if d.until > now}

    def _read(self, site: SiteState, meter: MeterView) -> Reading:
        """The batteries under control and the import the priorities are written in; feeds the quarter tracker
        and the planner's history."""
        cfg, mem, now = self.config, self.memory, site.now
        batteries = [b for b in site.batteries
                     if b.online and b.fault is None and b.age_s <= cfg.asset_stale_s and b.soc_pct is not None]
        p_now = sum(b.power_kw for b in batteries)
        heat_now = -site.boiler_power_kw
        g = meter.grid_import_kw + p_now
        g_flex = g - soaking_kw(cfg, site, heat_now)
        mem.quarters.add(now, meter.grid_import_kw)
        pv_now = sum(s.power_kw for s in site.solars if s.online)
        self.planner.learn(now, g + pv_now, pv_now)
        return Reading(batteries, p_now, g_flex)

    def _aim(self, now: dt.datetime, g_flex: float, g_free: float, free: list[BatteryView], units: list[Unit]
             ) -> Aim:
        """The limit (planned or configured), what to aim at in this quarter, and how much the free batteries
        must discharge for it (−inf: no peak to shave)."""
        cfg = self.config
        limit_kw, limit_source = self.planner.limit(now, g_flex, free, units)
        if not cfg.peak_shaving_enabled or limit_kw is None:
            return Aim(limit_kw, limit_source, None, float("-inf"))
        target_kw = self._quarter_target(limit_kw - cfg.limit_margin_kw)
        return Aim(limit_kw, limit_source, target_kw, g_free - target_kw)

    def _allocate(self, site: SiteState, p_free: float, units: list[Unit], fixed_kw: dict[str, float]
                  ) -> dict[str, float]:
        """Setpoints per battery: the free batteries' split of `p_free`, the dispatched ones' own, 0 for the
        faulted ones (they take no share; asked to hold, they are retried)."""
        cfg = self.config
        setpoints = split(p_free, units, cfg.min_soc_pct, cfg.max_soc_pct)
        setpoints.update(fixed_kw)
        for b in site.batteries:
            if b.online and b.fault is not None:
                setpoints.setdefault(b.asset_id, 0.0)
        return setpoints

    def _operator_overrides(self, decision: Decision) -> Decision:
        """The operator's solar and boiler dispatches in place of the automatic commands (core/dispatch.py)."""
        overrides = self.memory.overrides
        if not overrides:
            return decision
        return replace(decision, solar_limit_kw=override_solar(decision.solar_limit_kw, overrides),
                       boiler=override_boilers(decision.boiler, overrides, self.config))

    # ------------------------------------------------------------ pieces

    def _quarter_target(self, target_kw: float) -> float:
        """What import may be for the rest of this billing quarter so that its average stays on target.

        Billing counts the quarter's average, so an overshoot earlier in the quarter (a load step
        between two cycles) is paid back by aiming lower until the quarter ends. Headroom is never
        spent above the target: a lower import earlier does not license a higher one now.
        """
        q = self.memory.quarters
        if q.quarter_start_s is None or q.last_t_s is None:
            return target_kw
        elapsed_s = q.last_t_s - q.quarter_start_s
        remaining_s = QUARTER_S - elapsed_s
        if elapsed_s <= 0 or remaining_s < 60:
            return target_kw
        budget_kw = (target_kw * QUARTER_S - q.energy_kws) / remaining_s
        return max(0.0, min(target_kw, budget_kw))

    def _fail_safe(self, site: SiteState, why: str) -> Decision:
        self.memory.balance_kw, self.memory.balance_direction = 0.0, 0
        hold = {b.asset_id: 0.0 for b in site.batteries if b.online}
        boilers = {b.asset_id: normal(self.config, b) for b in site.boilers if b.online}
        solar: dict[str, float | None] = {s.asset_id: None for s in site.solars if s.online}
        status = self._status(site, Mode.FAIL_SAFE, why, self.config.import_limit_kw,
                              "twin" if self.config.import_limit_kw is not None else "none", None, 0.0, None)
        return Decision(hold, solar, boilers, status)

    def _unit_limits(self, b: BatteryView, cycle_s: float) -> tuple[float, float]:
        """(charge, discharge) the unit can do now: rating tapered near floor and ceiling, and what one more
        cycle of the same setpoint leaves inside the SOC window."""
        cfg = self.config
        assert b.soc_pct is not None, "only batteries with a known SOC are controlled (step and dispatch filter)"
        charge, discharge = derated_limits(b.soc_pct, b.max_charge_kw, b.max_discharge_kw, cfg.min_soc_pct,
                                           cfg.max_soc_pct)
        energy_charge, energy_discharge = energy_limits(b.soc_pct, b.capacity_kwh or 0.0, cfg.min_soc_pct,
                                                        cfg.max_soc_pct, cycle_s)
        return min(charge, energy_charge), min(discharge, energy_discharge)

    def _units(self, batteries: list[BatteryView], cycle_s: float | None = None) -> list[Unit]:
        """Allocation units; `cycle_s` is how long the setpoint will be held (default: the configured cycle)."""
        cycle = self.config.cycle_s if cycle_s is None else cycle_s
        units = []
        for b in batteries:
            charge, discharge = self._unit_limits(b, cycle)
            assert b.soc_pct is not None  # (checked in _unit_limits; for the type checker)
            units.append(Unit(b.asset_id, b.soc_pct, b.capacity_kwh or 0.0, charge, discharge))
        return units

    def _clamp_unit(self, battery: BatteryView, power_kw: float, cycle_s: float) -> float:
        charge, discharge = self._unit_limits(battery, cycle_s)
        return max(-charge, min(discharge, power_kw))

    def _balancing(self, g_free: float, units: list[Unit], dt_s: float, peak_need: float, now: dt.datetime
                   ) -> float:
        """Self-consumption preference, filtered so it cannot flicker (deadband, hysteresis, ramp)."""
        cfg, mem = self.config, self.memory
        if not units:
            mem.balance_direction = 0
            return 0.0
        error = g_free - cfg.grid_setpoint_kw  # + deficit → discharge; − surplus → charge
        wanted = 0.0
        if cfg.balancing_enabled and abs(error) > cfg.deadband_kw:
            wanted = error
        # during a peak the battery's energy belongs to the peak: balancing does not add to it
        if peak_need > 0:
            wanted = min(wanted, peak_need)
        # balancing spends only the energy above the reserve
        # (a band above it, so refilling to the reserve and spending above it do not take turns)
        above_reserve = [u for u in units if u.soc_pct > cfg.reserve_soc_pct + RESERVE_BAND_PCT]
        wanted = min(wanted, sum(u.max_discharge_kw for u in above_reserve))
        # refill the reserve from the grid while there is headroom under the limit
        if any(u.soc_pct < cfg.reserve_soc_pct for u in units) and cfg.recharge_kw > 0:
            headroom = -peak_need if peak_need != float("-inf") else cfg.recharge_kw
            wanted = min(wanted, -min(cfg.recharge_kw, max(0.0, headroom)))
        # hysteresis: reversing the last direction needs more than the hysteresis band; the last
        # direction is remembered through idle spells (that is what stops charge/idle/discharge
        # flicker) and forgotten after REVERSAL_MEMORY of idling
        direction = 0 if abs(wanted) < 1e-9 else (1 if wanted > 0 else -1)
        if mem.balance_direction and direction == -mem.balance_direction and abs(wanted) < cfg.hysteresis_kw:
            wanted, direction = 0.0, 0
        # ramp
        step = cfg.ramp_kw_per_s * max(dt_s, 0.0)
        wanted = max(mem.balance_kw - step, min(mem.balance_kw + step, wanted))
        if abs(wanted) > 1e-9:
            mem.balance_direction = 1 if wanted > 0 else -1
            mem.idle_since = None
        elif mem.idle_since is None:
            mem.idle_since = now
        elif now - mem.idle_since > REVERSAL_MEMORY:
            mem.balance_direction = 0
        return wanted

    def _shifts(self, now: dt.datetime) -> bool:
        cfg = self.config
        return cfg.energy_shifting_enabled and Prices.of(cfg.tariff, 0.0, ROUND_TRIP_EFFICIENCY).worth_shifting

    def _shifting(self, now: dt.datetime, g_free: float, units: list[Unit], aim: Aim, dt_s: float) -> float:
        """Energy shifting's preference (core/shifting.py), ramped as balancing is."""
        cfg, mem = self.config, self.memory
        if not units:
            return 0.0
        energy_kwh = sum(max(0.0, u.soc_pct - cfg.min_soc_pct) / 100 * u.capacity_kwh for u in units)
        capacity_kwh = sum((cfg.max_soc_pct - cfg.min_soc_pct) / 100 * u.capacity_kwh for u in units)
        max_charge_kw = sum(u.max_charge_kw for u in units)
        max_discharge_kw = sum(u.max_discharge_kw for u in units)
        need_kwh, surplus_kwh, peaks_near = self._peak_reserve_kwh(now, aim, units)
        reserve_kwh = min(capacity_kwh, cfg.shifting_reserve_factor * need_kwh)
        keep_kwh = max(reserve_kwh, capacity_kwh - surplus_kwh)
        headroom_kw = float("inf") if aim.target_kw is None else -aim.peak_need_kw
        prices = Prices.of(cfg.tariff, cfg.tariff.energy_price_at(now), ROUND_TRIP_EFFICIENCY)
        wanted = shifting_kw(g_free, energy_kwh, reserve_kwh, keep_kwh, capacity_kwh, max_charge_kw,
                             max_discharge_kw, headroom_kw, prices, max(dt_s, cfg.cycle_s) / 3600, peaks_near)
        step = cfg.ramp_kw_per_s * max(dt_s, 0.0)
        return max(mem.balance_kw - step, min(mem.balance_kw + step, wanted))

    def _peak_reserve_kwh(self, now: dt.datetime, aim: Aim, units: list[Unit]) -> tuple[float, float, bool]:
        """(the energy the planner's forecast says the peaks need from now on, the PV surplus it expects, both as
        energy in the battery, whether the forecast comes near what is billed already) (core/shifting.py); without
        a forecast or a limit, (inf, 0, True): nothing shifts."""
        mem = self.memory
        if mem.forecast_kw is None or mem.forecast_start is None:
            return float("inf"), 0.0, True
        skip = max(0, int((now - mem.forecast_start).total_seconds() // QUARTER_S))
        key = (mem.forecast_start, skip, None if aim.target_kw is None else round(aim.target_kw, 1),
               mem.planned_threshold_kw, tuple(mem.charge_thresholds_kw or ()), mem.quarters.month_peak_kw,
               None if mem.ledger is None else tuple(mem.ledger.peaks_kw))
        if mem.shift_reserve is None or mem.shift_reserve[0] != key:
            forecast = mem.forecast_kw[skip:]
            start = mem.forecast_start + dt.timedelta(seconds=skip * QUARTER_S)
            times = [start + dt.timedelta(seconds=k * QUARTER_S) for k in range(len(forecast))]
            limits = self._reserve_limits(times, aim)
            if limits is None:
                return float("inf"), 0.0, True
            envelope = BatteryEnvelope(0.0, 0.0, sum(u.max_charge_kw for u in units),
                                       sum(u.max_discharge_kw for u in units))
            need = peak_reserve_kwh(forecast, limits, envelope.max_charge_kw, envelope.max_discharge_kw,
                                    envelope.charge_efficiency, envelope.discharge_efficiency)
            # the surplus that refills the battery before the next dearer hour (a time-of-use tariff's; flat: all)
            tariff = self.config.tariff
            lowest = min([tariff.energy_price_per_kwh, *(p.price_per_kwh for p in tariff.energy_prices)])
            until = next((k for k, t in enumerate(times) if k > 0 and tariff.energy_price_at(t) > lowest + 1e-9),
                         len(forecast))
            mem.shift_reserve = (key, (need, pv_surplus_kwh(forecast[:until], envelope.charge_efficiency),
                                       self._comes_near_billed(times, forecast)))
        return mem.shift_reserve[1]

    def _comes_near_billed(self, times: list[dt.datetime], forecast_kw: list[float]) -> bool:
        """Does the forecast come near what the tariff bills already in the quarters at `times` (the lowest of the
        charges counting then; a new period bills nothing yet)? True while the planner has not fed the ledger."""
        mem, tariff = self.memory, self.config.tariff
        billed: Callable[[dt.datetime], float | None]
        if tariff.is_monthly_all_hours:  # the quarter tracker keeps the month's peak (planner._billed_kw)
            def billed(t: dt.datetime) -> float | None:
                return mem.quarters.month_peak_kw if t.strftime("%Y-%m") == mem.quarters.month else 0.0
            least_kw = min(billed(times[0]) or 0.0, billed(times[-1]) or 0.0)
        elif mem.ledger is None:
            return True
        else:
            ledger = mem.ledger
            billed = ledger.free_kw
            # a day's horizon spans at most two periods of a charge: what any quarter bills is at least this
            ends = (times[0], times[-1])
            counting = [i for i, c in enumerate(tariff.demand_charges) if any(c.counts_in_month(t.month) for t in ends)]
            if not counting:
                return False
            least_kw = min(ledger.billed_kw(i, t) for i in counting for t in ends)
        # this runs every quarter: what a quarter bills is looked up only where the bound leaves it open
        low_kw = NEAR_BILLED_SHARE * least_kw
        return comes_near_billed(forecast_kw, (billed(t) if x > low_kw else None
                                               for x, t in zip(forecast_kw, times, strict=True)))

    def _reserve_limits(self, times: list[dt.datetime], aim: Aim) -> list[float | None] | None:
        """The limit the reserve is sized on in each of the quarters at `times` (None: no demand billed then).

        The plan, not a billed peak above it: a peak billed early in the month (the battery spent on energy) would
        size the reserve at nothing and leave the battery empty for the month's real peak. With charges that count
        at different times, each quarter takes the lowest of the limits of the charges counting in it: sized on one
        limit for all, the reserve held an on-peak window's plan all day, or a plan of 0 kW for a window out of
        season, and kept the whole battery from shifting. There each charge's limit rises from its plan
        `shifting_billed_share` of the way to what the charge bills already for the quarter's period: on the plan
        alone (an on-peak plan of 5 kW when 70 kW is billed and held), a 300 kWh battery sat full through a summer
        of dear on-peak hours; on the billed peak alone the peaks were lost. The default (0) stays on the plan:
        the share that earned most on the tuning runs lost up to a third of the saving on two held-out sites
        (benchmarks/README.md). With one charge a share measured worse, so there it is the plan. None without any
        limit."""
        mem, tariff = self.memory, self.config.tariff
        charges = tariff.demand_charges
        by_charge = mem.charge_thresholds_kw
        if self.config.import_limit_kw is None and by_charge is not None and len(by_charge) == len(charges):
            share = self.config.shifting_billed_share
            ledger = mem.ledger if share > 0 else None  # the default reads nothing from it
            limits: list[float | None] = []
            for t in times:
                counting = [kw + share * max(0.0, ledger.billed_kw(i, t) - kw) if ledger is not None else kw
                            for i, (charge, kw) in enumerate(zip(charges, by_charge, strict=True))
                            if charge.counts_at(t)]
                limits.append(min(counting) if counting else None)
            return limits
        known = [x for x in (aim.target_kw, mem.planned_threshold_kw) if x is not None]
        if not known:
            return None
        limit_kw = min(known)
        return [limit_kw if tariff.demand_counts_at(t) else None for t in times]

    def _mode(self, dispatched: bool, peak_active: bool, p_total: float) -> Mode:
        if dispatched:
            return Mode.DISPATCH
        if peak_active:
            return Mode.PEAK_SHAVING
        if abs(p_total) > 1e-6:
            return Mode.BALANCING
        return Mode.IDLE

    def _status(self, site: SiteState, mode: Mode, reason: str, limit_kw: float | None, limit_source: str,
                target_kw: float | None, battery_kw: float, box: Interval | None) -> Status:
        mem = self.memory
        avg = site.grid_import_avg_15min_kw
        quarter_avg = mem.quarters.quarter_average_kw()
        return Status(
            mode=mode,
            reason=reason,
            grid_import_kw=site.meter.grid_import_kw if site.meter else None,
            grid_import_avg_15min_kw=avg,
            quarter_avg_kw=quarter_avg,
            month_peak_kw=mem.quarters.month_peak_kw,
            limit_kw=limit_kw,
            limit_source=limit_source,
            target_kw=target_kw,
            margin_kw=None if limit_kw is None or avg is None else round(limit_kw - avg, 3),
            battery_kw=round(battery_kw, 3),
            limited_by=tuple(dict.fromkeys(box.limited_by)) if box else (),
            capabilities=self._capabilities(site, mode, limit_kw),
        )

    def _capabilities(self, site: SiteState, mode: Mode, limit_kw: float | None) -> dict[str, CapabilityState]:
        """The controller's own view, combined with the external microgrid controller's booleans."""
        cfg = self.config
        has_batteries = any(b.online for b in site.batteries)
        if mode is Mode.FAIL_SAFE:
            own_peak = SourceReading("controller", False, "fail-safe: " + ("meter data missing or stale"))
        elif not cfg.peak_shaving_enabled:
            own_peak = SourceReading("controller", False, "peak shaving disabled in the configuration")
        elif limit_kw is None:
            own_peak = SourceReading("controller", False, "no import limit (configured or planned)")
        elif not has_batteries:
            own_peak = SourceReading("controller", False, "no battery online")
        else:
            own_peak = SourceReading("controller", True, f"guarding {limit_kw:g} kW")
        der_assets = [b.asset_id for b in site.batteries if b.online] + [s.asset_id for s in site.solars if s.online]
        if mode is Mode.FAIL_SAFE:
            own_der = SourceReading("controller", False, "fail-safe: batteries on hold", fallback=True)
        elif der_assets:
            own_der = SourceReading("controller", True, f"{len(der_assets)} DER asset(s) under control",
                                    fallback=True)
        else:
            own_der = SourceReading("controller", False, "no DER asset online", fallback=True)
        meter = site.meter
        external_source = meter.asset_id if meter else "microgrid-controller"
        ext_online = bool(meter and meter.online)
        ext_peak = SourceReading(external_source, meter.peak_shaving_active if ext_online and meter else None,
                                 "reported by the site controller")
        ext_der = SourceReading(external_source, meter.der_active if ext_online and meter else None,
                                "reported by the site controller")
        return {
            "PEAK_SHAVING": combine("PEAK_SHAVING", [own_peak, ext_peak], site.now),
            "DER": combine("DER", [own_der, ext_der], site.now),
        }


def _meter_problem(meter: MeterView | None, stale_s: float) -> str:
    """Why the meter cannot be believed, stable from cycle to cycle (the kind of fault, not its details)."""
    if meter is None:
        return "no meter"
    if not meter.online:
        return f"meter offline ({meter.fault.split(':', 1)[0]})" if meter.fault else "meter offline"
    return f"meter data stale (older than {stale_s:g} s)"


def _reason(mode: Mode, box: Interval) -> str:
    limited = f" (limited by {', '.join(dict.fromkeys(box.limited_by))})" if box.limited_by else ""
    return {
        Mode.DISPATCH: "operator dispatch",
        Mode.PEAK_SHAVING: "import above target: discharging",
        Mode.BALANCING: "self-consumption",
        Mode.IDLE: "nothing to do",
        Mode.FAIL_SAFE: "fail-safe",
    }[mode] + limited


__all__ = ["BoilerCommand", "BoilerMode", "CapabilityState", "Controller", "Decision", "Dispatch", "DispatchOutcome",
           "Memory", "Mode", "NotDispatchable", "SourceReading", "Status", "combine"]
