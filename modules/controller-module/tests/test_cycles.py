"""Multi-cycle tables for the decision core (as OpenEMS tests its controllers with TestCase chains).

Each table is a sequence of cycles: what the site reads in that cycle, and what the core must decide. The loop
is closed the simplest way: the battery delivers exactly its last setpoint, so the meter reads the site's import
without the battery (`net_kw`) minus that power; PV output and the boiler's draw are given per cycle and already
in `net_kw`; a curtailed inverter reports the limit it was last given. Ramps, hysteresis, quarter budgets and the
fail-safe's entry and exit only show over consecutive cycles.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from controller_module.core.config import ControllerConfig
from controller_module.core.controller import (
    BoilerMode,
    Controller,
    Decision,
    Dispatch,
    Memory,
    Mode,
    NotDispatchable,
)
from controller_module.core.shifting import comes_near_billed
from controller_module.core.state import BatteryView, BoilerView, MeterView, SiteState, SolarView
from controller_module.core.tariff import DemandLedger

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)  # the start of a billing quarter
BATTERY, METER, PV, BOILER = "bat-1", "pcc-1", "pv-1", "boiler-1"
PV_RATED_KW = 200.0
ANY = object()  # an output the row does not check


@dataclass(frozen=True)
class Operator:
    """A dispatch the operator sends just before the cycle: asset (None: the site's batteries), kW, seconds."""

    asset_type: str | None
    asset_id: str | None
    power_kw: float
    duration_s: float


@dataclass(frozen=True)
class In:
    t_s: float  # seconds after T0
    net_kw: float  # import with the battery idle (load − PV + the boiler's draw)
    soc_pct: float | None = 50.0  # None: no battery on the site
    meter_age_s: float = 0.0
    meter_online: bool = True
    pv_kw: float | None = None  # an inverter producing this (None: none on the site)
    boiler: tuple[float, float] | None = None  # (water °C, power kW, − heating); None: no boiler
    operator: Operator | None = None


@dataclass(frozen=True)
class Out:
    battery_kw: Any = ANY  # setpoint of bat-1, ±0.6 kW
    mode: Any = ANY
    limited_by: Any = ANY  # tuple of priorities, in order
    solar_limit_kw: Any = ANY  # pv-1's output limit, None = unlimited
    boiler: Any = ANY  # (mode, power kW, setpoint °C) of boiler-1
    reason: Any = ANY


@dataclass
class Run:
    """The closed loop around one controller: the battery follows its setpoints, the inverter its limit."""

    controller: Controller
    start: dt.datetime = T0  # what the rows' t_s count from
    battery_kw: float = 0.0
    solar_limit_kw: float | None = None
    decisions: list[Decision] = field(default_factory=list)

    def cycle(self, row: In) -> Decision:
        now = self.start + dt.timedelta(seconds=row.t_s)
        batteries = () if row.soc_pct is None else (
            BatteryView(BATTERY, True, self.battery_kw, row.soc_pct, 200.0, 100.0, 100.0),)
        solars = () if row.pv_kw is None else (SolarView(
            PV, True, row.pv_kw, PV_RATED_KW,
            None if self.solar_limit_kw is None else 100 * self.solar_limit_kw / PV_RATED_KW),)
        boilers = () if row.boiler is None else (BoilerView(BOILER, True, row.boiler[1], row.boiler[0], 45, 85, 30),)
        meter = MeterView(METER, row.meter_online, row.net_kw - self.battery_kw, False, None, None, row.meter_age_s)
        site = SiteState(now, meter, batteries, solars, boilers)
        if row.operator is not None:
            op = row.operator
            until = now + dt.timedelta(seconds=op.duration_s)
            self.controller.dispatch(Dispatch(op.power_kw, until, op.asset_id), op.asset_type, site)
        decision = self.controller.step(site)
        self.battery_kw = decision.battery_kw.get(BATTERY, 0.0)
        self.solar_limit_kw = decision.solar_limit_kw.get(PV)
        self.decisions.append(decision)
        return decision


def config(**changes: Any) -> ControllerConfig:
    base: dict[str, Any] = {"import_limit_kw": 150, "limit_margin_kw": 2, "ramp_kw_per_s": 1000, "deadband_kw": 1,
                            "balancing_enabled": False}
    return ControllerConfig(**{**base, **changes})


SOAK_30 = (BoilerMode.SOAK, 30.0, 80.0)
HOLD = (BoilerMode.HOLD, 0.0, 55.0)
NORMAL = (BoilerMode.NORMAL, 30.0, 55.0)

TABLES: list[tuple[str, dict[str, Any], list[tuple[In, Out]]]] = [
    ("peak shaving follows a load step, saturates and lets go", {}, [
        (In(0, 120), Out(0, Mode.IDLE, ())),
        (In(1, 180), Out(32, Mode.PEAK_SHAVING, ())),  # the target is the limit less the margin: 148 kW
        (In(2, 180), Out(32, Mode.PEAK_SHAVING, ())),  # the meter now reads 148: the battery keeps its 32 kW
        (In(3, 250), Out(100, Mode.PEAK_SHAVING, ("peak_shaving",))),  # more than the rating: limited
        (In(4, 175), Out(27, Mode.PEAK_SHAVING, ())),  # 2 kW over the target for 1 s barely moves the budget
        (In(5, 120), Out(0, Mode.IDLE, ())),  # headroom below the target is never spent: no charging either
    ]),
    ("the quarter's budget pays back an overshoot, and a new quarter starts afresh", {"limit_margin_kw": 0}, [
        # 1 % above the floor the rating is tapered to a fifth: 20 kW, and the quarter starts at 280
        (In(0, 300, soc_pct=6), Out(20, Mode.PEAK_SHAVING, ("peak_shaving",))),
        # half a quarter at 280 kW: the rest of it must average 20 kW for the quarter to stay at 150
        (In(450, 160), Out(100, Mode.PEAK_SHAVING, ("peak_shaving",))),
        (In(900, 160), Out(10, Mode.PEAK_SHAVING)),  # a new quarter: the target is the limit again
    ]),
    ("fail-safe: a stale meter holds the battery until fresh data arrives", {}, [
        (In(0, 180), Out(32, Mode.PEAK_SHAVING)),
        (In(1, 180, meter_age_s=60), Out(0, Mode.FAIL_SAFE, (), reason="meter data stale (older than 10 s)")),
        (In(2, 180, meter_age_s=61), Out(0, Mode.FAIL_SAFE)),  # held over consecutive cycles
        (In(3, 180, meter_online=False), Out(0, Mode.FAIL_SAFE, reason="meter offline")),
        (In(4, 180), Out(32, Mode.PEAK_SHAVING, ())),  # fresh data: control resumes at once
    ]),
    ("an operator's site dispatch outranks peak shaving, then expires", {}, [
        (In(0, 180), Out(32, Mode.PEAK_SHAVING)),
        (In(1, 180, operator=Operator(None, None, -20, 2)), Out(-20, Mode.DISPATCH, ("peak_shaving",))),
        (In(2, 180), Out(-20, Mode.DISPATCH, ("peak_shaving",))),
        (In(3, 180), Out(32, Mode.PEAK_SHAVING, ())),  # until has come: automatic control again
        (In(4, 180, operator=Operator(None, None, 250, 60)), Out(100, Mode.DISPATCH, ("dispatch",))),  # safety first
    ]),
    ("a battery dispatch fixes that unit only", {}, [
        (In(0, 180, operator=Operator("battery", BATTERY, -30, 1)), Out(-30, Mode.DISPATCH)),
        (In(1, 180), Out(32, Mode.PEAK_SHAVING)),
    ]),
    ("solar and boiler dispatch replace the automatic commands, in the fail-safe too",
     {"max_export_kw": 50}, [
        (In(0, -120, soc_pct=95, pv_kw=150, boiler=(84, 0)), Out(0, Mode.IDLE, solar_limit_kw=80)),
        (In(1, -50, soc_pct=95, pv_kw=80, boiler=(84, 0), operator=Operator("solar", PV, 10, 3)),
         Out(0, Mode.IDLE, solar_limit_kw=10, boiler=NORMAL)),  # a PV dispatch does not make the batteries' mode
        (In(2, 20, soc_pct=95, pv_kw=10, boiler=(84, 0), operator=Operator("boiler", BOILER, -15, 2)),
         Out(solar_limit_kw=10, boiler=(BoilerMode.SOAK, 15.0, 80.0))),
        (In(3, 35, soc_pct=95, pv_kw=10, boiler=(83, -15), meter_age_s=60),
         Out(0, Mode.FAIL_SAFE, solar_limit_kw=10, boiler=(BoilerMode.SOAK, 15.0, 80.0))),
        (In(4, 20, soc_pct=95, pv_kw=10, boiler=(83, 0)), Out(0, solar_limit_kw=ANY, boiler=NORMAL)),  # both over
    ]),
    ("curtailment: only past the export limit, and released step by step", {"max_export_kw": 50}, [
        (In(0, -120, soc_pct=95, pv_kw=150, boiler=(84, 0)), Out(0, Mode.IDLE, solar_limit_kw=80)),
        (In(1, -50, soc_pct=95, pv_kw=80, boiler=(84, 0)), Out(0, solar_limit_kw=80)),  # at the limit: hold it
        (In(2, -20, soc_pct=95, pv_kw=50, boiler=(84, 0)), Out(0, solar_limit_kw=80)),  # a cloud: the cap stays
        (In(3, 30, soc_pct=95, pv_kw=80, boiler=(84, 0)), Out(0, solar_limit_kw=160)),  # load: export falls, cap up
        (In(4, 130, soc_pct=95, pv_kw=80, boiler=(84, 0)), Out(0, solar_limit_kw=None)),  # above the rating: off
        (In(5, -40, soc_pct=95, pv_kw=150, boiler=(84, 0)), Out(0, solar_limit_kw=None)),  # under the limit: none
    ]),
    ("the boiler soaks up PV surplus, holds off in a peak and returns to its thermostat", {}, [
        (In(0, -30, soc_pct=None, boiler=(60, 0)), Out(mode=Mode.IDLE, boiler=SOAK_30)),
        (In(1, 0, soc_pct=None, boiler=(60, -30)), Out(mode=Mode.IDLE, boiler=SOAK_30)),  # its own draw not counted
        (In(2, 190, soc_pct=None, boiler=(60, -30)), Out(mode=Mode.PEAK_SHAVING, boiler=HOLD)),  # load step
        (In(3, 160, soc_pct=None, boiler=(60, 0)), Out(mode=Mode.PEAK_SHAVING, boiler=HOLD)),  # no toggling
        (In(4, 100, soc_pct=None, boiler=(60, 0)), Out(mode=Mode.IDLE, boiler=NORMAL)),  # room for 30 kW again
        (In(5, 160, soc_pct=None, boiler=(46, 0)), Out(boiler=NORMAL)),  # too cold to hold, even in a peak
    ]),
    ("the battery charges from the surplus first, the boiler takes the rest", {"balancing_enabled": True}, [
        (In(0, -130, soc_pct=50, boiler=(60, 0)), Out(-100, Mode.BALANCING, boiler=SOAK_30)),
        (In(1, -100, soc_pct=95, boiler=(60, -30)), Out(0, boiler=SOAK_30)),  # full: the boiler keeps soaking
    ]),
]


@pytest.mark.parametrize(("changes", "rows"), [t[1:] for t in TABLES], ids=[t[0] for t in TABLES])
def test_cycles(changes: dict[str, Any], rows: list[tuple[In, Out]]) -> None:
    run = Run(Controller(config(**changes)))
    for n, (row, out) in enumerate(rows):
        d = run.cycle(row)
        got = {
            "battery_kw": d.battery_kw.get(BATTERY), "mode": d.status.mode, "limited_by": d.status.limited_by,
            "solar_limit_kw": d.solar_limit_kw.get(PV), "reason": d.status.reason,
            "boiler": (lambda b: None if b is None else (b.mode, b.power_kw, b.setpoint_c))(d.boiler.get(BOILER)),
        }
        for key, expected in vars(out).items():
            if expected is ANY:
                continue
            if key == "battery_kw" and isinstance(expected, (int, float)):
                expected = pytest.approx(expected, abs=0.6)
            elif key == "solar_limit_kw" and isinstance(expected, (int, float)):
                expected = pytest.approx(expected, abs=0.01)
            elif key == "reason":
                assert got[key].startswith(expected), f"cycle {n} (t={row.t_s} s): {key} {got[key]!r}"
                continue
            assert got[key] == expected, f"cycle {n} (t={row.t_s} s): {key} {got[key]!r}, expected {expected!r}"


def check(d: Decision, row: In, out: Out, n: int) -> None:
    """The decision against the row's expected outputs (ANY: not checked)."""
    got = {
        "battery_kw": d.battery_kw.get(BATTERY), "mode": d.status.mode, "limited_by": d.status.limited_by,
        "solar_limit_kw": d.solar_limit_kw.get(PV), "reason": d.status.reason,
        "boiler": (lambda b: None if b is None else (b.mode, b.power_kw, b.setpoint_c))(d.boiler.get(BOILER)),
    }
    for key, expected in vars(out).items():
        if expected is ANY:
            continue
        if key == "battery_kw" and isinstance(expected, (int, float)):
            expected = pytest.approx(expected, abs=0.6)
        assert got[key] == expected, f"cycle {n} (t={row.t_s} s): {key} {got[key]!r}, expected {expected!r}"


# the planner's forecast from T0 (import +, export −), kW per quarter: energy shifting sizes its reserve on it
FLAT_100 = [100.0] * 96
SUNNY = [-100.0] * 40 + [100.0] * 56  # 950 kWh of surplus ahead: more than the battery holds
PEAKS_THEN_SUN = [200.0] * 8 + SUNNY[8:]  # two hours 52 kW above the 148 kW target: ~110 kWh reserved
SUN_BEFORE_DEAR = [-100.0] * 8 + [100.0] * 88  # 12:00-14:00 exports 100 kW: ~190 kWh, more than the battery holds
SUN_AFTER_DEAR = [100.0] * 80 + [-100.0] * 16  # the surplus comes tomorrow morning, after 16:00-21:00
SHIFTING_TABLES: list[tuple[str, str, list[float], list[tuple[In, Out]]]] = [
    ("flat price: PV surplus is stored, the peak still comes first", "monthly-15", FLAT_100, [
        (In(0, -60), Out(-60, Mode.BALANCING)),  # export pays 0.07, import 0.20: store it
        (In(1, 180), Out(32, Mode.PEAK_SHAVING)),  # the limit is untouched
        (In(2, 100), Out(-48, Mode.BALANCING)),  # no surplus expected: the grid refills, under the target only
    ]),
    ("flat price with the sun ahead: the battery covers the import, the surplus refills it", "monthly-15", SUNNY, [
        (In(0, 100), Out(100, Mode.BALANCING)),
        (In(1, 180), Out(100, Mode.PEAK_SHAVING)),  # covering import above the target too
    ]),
    ("flat price, sun and peaks ahead: the reserve for the peaks is refilled first", "monthly-15", PEAKS_THEN_SUN, [
        (In(0, 100), Out(-48, Mode.BALANCING)),  # 81 kWh held, ~110 reserved
    ]),
    ("time of use: fill in the cheap hours, cover import in the dear ones", "us-tou", FLAT_100, [
        (In(0, 100), Out(-48, Mode.BALANCING)),  # 12:00 at 0.10/kWh: fill under the target
        (In(1, -30), Out(-30, Mode.BALANCING)),  # surplus: stored
        (In(4 * 3600 - 1, 100), Out(ANY)),
        (In(4 * 3600, 100), Out(100, Mode.BALANCING)),  # 16:00 at 0.25/kWh, no peak ahead: spend it
        (In(4 * 3600 + 1, 180), Out(100, Mode.PEAK_SHAVING)),
    ]),
    ("time of use, the sun before the dear hours: the cheap hours leave it room", "us-tou", SUN_BEFORE_DEAR, [
        (In(0, 100), Out(100, Mode.BALANCING)),  # 12:00: the surplus refills it by 16:00, so it covers the import
    ]),
    ("time of use, the sun only after the dear hours: the cheap hours fill it", "us-tou", SUN_AFTER_DEAR, [
        (In(0, 100), Out(-48, Mode.BALANCING)),
    ]),
]


@pytest.mark.parametrize(("tariff", "forecast_kw", "rows"), [t[1:] for t in SHIFTING_TABLES],
                         ids=[t[0] for t in SHIFTING_TABLES])
def test_energy_shifting_cycles(tariff: str, forecast_kw: list[float], rows: list[tuple[In, Out]]) -> None:
    memory = Memory(forecast_start=T0, forecast_kw=list(forecast_kw))
    run = Run(Controller(config(tariff=tariff, energy_shifting_enabled=True), memory))
    for n, (row, out) in enumerate(rows):
        check(run.cycle(row), row, out, n)


@pytest.mark.parametrize(("factor", "battery_kw"), [(1.0, 100), (1.5, -48)])
def test_the_reserve_factor_scales_what_is_kept_for_the_peaks(factor: float, battery_kw: float) -> None:
    """130 kWh held, the peaks ahead need ~110: the default (1.0) spends the rest on the import before the sun,
    a factor of 1.5 keeps ~164 and refills under the target instead."""
    memory = Memory(forecast_start=T0, forecast_kw=list(PEAKS_THEN_SUN))
    run = Run(Controller(config(energy_shifting_enabled=True, shifting_reserve_factor=factor), memory))
    check(run.cycle(In(0, 100, soc_pct=70)), In(0, 100), Out(battery_kw, Mode.BALANCING), 0)


OCTOBER = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.timezone.utc)  # a Monday, out of us-tou's on-peak season
# per-charge plans as the planner leaves them (on-peak, maximum demand), kW: out of season the on-peak charge counts
# nowhere in the horizon and its plan is 0 kW; in season the window is planned below the all-hours peak
PLANNED_TABLES: list[tuple[str, dt.datetime, list[float], list[tuple[In, Out]]]] = [
    ("time of use out of the on-peak season: the reserve is sized on the charge that counts", OCTOBER,
     [0.0, 120.0], [
        (In(0, 100), Out(-18, Mode.BALANCING)),  # 12:00 at 0.10/kWh: fill under the 118 kW target
        (In(4 * 3600 - 1, 100), Out(ANY)),
        # 16:00 at 0.25/kWh: nothing above 120 kW ahead, so the battery covers the import (sized on the on-peak
        # plan of 0 kW, the reserve was the whole battery and it stood idle)
        (In(4 * 3600, 100), Out(100, Mode.BALANCING)),
    ]),
    ("time of use in the on-peak season: the window's plan keeps the battery for the window", T0, [40.0, 120.0], [
        (In(4 * 3600 - 1, 100), Out(ANY)),
        (In(4 * 3600, 100), Out(62, Mode.PEAK_SHAVING)),  # 16:00: the on-peak target, 38 kW, not the energy price
    ]),
]


@pytest.mark.parametrize(("start", "planned_kw", "rows"), [t[1:] for t in PLANNED_TABLES],
                         ids=[t[0] for t in PLANNED_TABLES])
def test_energy_shifting_against_planned_charges(start: dt.datetime, planned_kw: list[float],
                                                 rows: list[tuple[In, Out]]) -> None:
    memory = Memory(forecast_start=start, forecast_kw=list(FLAT_100), charge_thresholds_kw=list(planned_kw))
    run = Run(Controller(config(tariff="us-tou", import_limit_kw=None, energy_shifting_enabled=True), memory),
              start=start)
    for n, (row, out) in enumerate(rows):
        check(run.cycle(row), row, out, n)


JUNE_2 = dt.datetime(2026, 6, 2, 12, 0, tzinfo=dt.timezone.utc)  # a Tuesday in us-tou's on-peak season
EVENING_20 = [100.0] * 16 + [20.0] * 20 + [100.0] * 60  # the 16:00-21:00 window at 20 kW: ~105 kWh to hold 0 kW


@pytest.mark.parametrize(("share", "battery_kw"), [
    (0.0, -38),  # sized on the on-peak plan (0 kW): ~105 kWh kept, 90 held: the dear hour buys up to the 58 kW target
    (0.25, 20),  # a quarter of the way to the 60 kW billed: 15 kW, ~26 kWh kept; the rest covers the dear import
    (1.0, 20),  # on the billed peak: nothing above 60 kW ahead, nothing kept
])
def test_the_reserve_rises_toward_what_the_charge_bills_already(share: float, battery_kw: float) -> None:
    """On June 1 the on-peak window billed 60 kW; the plan for it is 0 kW, but the limit held is the 60 kW billed,
    so a reserve sized on the plan alone keeps energy for a limit nobody holds."""
    cfg = config(tariff="us-tou", import_limit_kw=None, energy_shifting_enabled=True, shifting_billed_share=share)
    ledger = DemandLedger(cfg.tariff)
    ledger.add_interval(dt.datetime(2026, 6, 1, 17, 0, tzinfo=dt.timezone.utc), 60.0)
    memory = Memory(forecast_start=JUNE_2, forecast_kw=list(EVENING_20), charge_thresholds_kw=[0.0, 120.0],
                    ledger_record=ledger.to_record())
    run = Run(Controller(cfg, memory), start=JUNE_2)
    run.cycle(In(4 * 3600 - 1, 20))
    check(run.cycle(In(4 * 3600, 20)), In(4 * 3600, 20), Out(battery_kw, Mode.BALANCING), 1)


@pytest.mark.parametrize(("billed_kw", "battery_kw"), [
    (250.0, 0),  # the load (100 kW) far below the 250 kW billed: the grid refills only the reserve (none needed)
    (150.0, -48),  # near the 150 kW billed: the grid keeps it full, under the 148 kW target (the peaks' margin)
])
def test_at_a_flat_price_the_grid_keeps_the_battery_full_only_near_what_is_billed(billed_kw: float,
                                                                                  battery_kw: float) -> None:
    """`atypical-19` in June: no §19 window counts, only the year's all-hours peak, billed in the winter. Energy
    bought to be kept is bought back at a loss when spent and takes the room of the PV surplus; it is the margin
    for the peaks only where the load may reach what is billed."""
    cfg = config(tariff="atypical-19", import_limit_kw=None, energy_shifting_enabled=True)
    ledger = DemandLedger(cfg.tariff)
    ledger.add_interval(dt.datetime(2026, 1, 14, 18, 0, tzinfo=dt.timezone.utc), billed_kw)
    memory = Memory(forecast_start=JUNE_2, forecast_kw=list(FLAT_100), charge_thresholds_kw=[40.0, 120.0],
                    ledger_record=ledger.to_record())
    run = Run(Controller(cfg, memory), start=JUNE_2)
    check(run.cycle(In(0, 100)), In(0, 100), Out(battery_kw, Mode.BALANCING if battery_kw else Mode.IDLE), 0)


@pytest.mark.parametrize(("forecast_kw", "billed_kw", "near"), [
    ([100.0] * 4, [250.0] * 4, False),
    ([100.0] * 4, [160.0] * 4, True),  # above 0.6 × 160
    ([100.0, 100.0, 100.0, 200.0], [400.0, 400.0, 400.0, 300.0], True),  # one quarter is enough
    ([100.0] * 4, [None, None, 250.0, 250.0], False),  # where no charge counts, nothing is near
    ([100.0] * 4, [250.0, 250.0, 0.0, 0.0], True),  # a new period bills nothing yet
])
def test_comes_near_billed(forecast_kw: list[float], billed_kw: list[float | None], near: bool) -> None:
    assert comes_near_billed(forecast_kw, billed_kw) is near


def test_energy_shifting_off_keeps_the_battery_for_peaks() -> None:
    """The default: the same rows leave the battery idle (balancing off), as before energy shifting existed."""
    run = Run(Controller(config(), Memory(forecast_start=T0, forecast_kw=list(SUNNY))))
    for n, (row, out) in enumerate([(In(0, -60), Out(0, Mode.IDLE)), (In(1, 100), Out(0, Mode.IDLE))]):
        check(run.cycle(row), row, out, n)


def test_a_meter_cannot_be_dispatched() -> None:
    controller = Controller(config())
    site = SiteState(T0, MeterView(METER, True, 100.0, None, None, None))
    with pytest.raises(NotDispatchable, match="pcc-1 \\(microgrid_controller\\) cannot be dispatched"):
        controller.dispatch(Dispatch(10, T0 + dt.timedelta(seconds=60), METER), "microgrid_controller", site)


@pytest.mark.parametrize(
    ("power_kw", "socs", "split", "applied", "limited"),
    [
        (60, (50, 50), {"a": 30, "b": 30}, 60, False),
        (60, (85, 25), {"a": 48, "b": 12}, 60, False),  # by energy above the floor, as the allocation splits
        (250, (50, 50), {"a": 100, "b": 100}, 200, True),  # more than both can do: the response says so
    ],
)
def test_a_site_dispatch_says_how_it_is_split(power_kw: float, socs: tuple[float, float], split: dict[str, float],
                                              applied: float, limited: bool) -> None:
    controller = Controller(config())
    batteries = tuple(BatteryView(name, True, 0.0, soc, 200.0, 100.0, 100.0) for name, soc in zip("ab", socs,
                                                                                                   strict=True))
    site = SiteState(T0, MeterView(METER, True, 100.0, None, None, None), batteries)
    outcome = controller.dispatch(Dispatch(power_kw, T0 + dt.timedelta(seconds=60)), None, site)
    assert outcome.split_kw == pytest.approx(split, abs=0.01)
    assert (outcome.applied_kw, outcome.limited) == (applied, limited)
