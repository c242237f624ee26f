"""Cycle tables for the decision core: site state in, setpoints and status out."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from typing import Any

import pytest

from controller_module.core.allocation import Unit, split
from controller_module.core.config import ControllerConfig
from controller_module.core.controller import BoilerMode, Controller, Dispatch, Mode
from controller_module.core.planner import BatteryEnvelope, hindsight_threshold, holds, plan_threshold
from controller_module.core.shifting import peak_reserve_kwh
from controller_module.core.state import BatteryView, BoilerView, MeterView, SiteState, SolarView, TimeAverage

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def battery(asset_id: str = "bat-1", soc: float = 50, power: float = 0, online: bool = True, cap: float = 200,
            kw: float = 100) -> BatteryView:
    return BatteryView(asset_id, online, power, soc, cap, kw, kw)


def meter(grid: float, age: float = 0, online: bool = True, ps: bool | None = False, der: bool | None = False
          ) -> MeterView:
    return MeterView("pcc-1", online, grid, ps, der, None, age)


def boiler(temp: float = 60, power: float = 0) -> BoilerView:
    return BoilerView("boiler-1", True, power, temp, 45, 85, 30)


def solar(power: float = 0) -> SolarView:
    return SolarView("solar-1", True, power, 200, None)


def site(grid: float, batteries: tuple[BatteryView, ...] = (), boilers: tuple[BoilerView, ...] = (),
         solars: tuple[SolarView, ...] = (), m: MeterView | None = None, now: dt.datetime = T0) -> SiteState:
    return SiteState(now, m or meter(grid), batteries, solars, boilers)


def config(**overrides: Any) -> ControllerConfig:
    base: dict[str, Any] = {"import_limit_kw": 150, "limit_margin_kw": 2, "ramp_kw_per_s": 1000, "deadband_kw": 1}
    return ControllerConfig(**{**base, **overrides})


CASES = [
    # (name, config overrides, site, expected battery kW by id (approx), expected mode, extra check)
    ("stale meter holds", {}, site(180, (battery(power=30),), m=meter(180, age=60)), {"bat-1": 0}, Mode.FAIL_SAFE,
     lambda d: d.status.capabilities["PEAK_SHAVING"].state == "OFF"),
    ("offline meter holds", {}, site(180, (battery(),), m=meter(180, online=False)), {"bat-1": 0}, Mode.FAIL_SAFE,
     None),
    ("load above limit is shaved", {}, site(180, (battery(),)), {"bat-1": 32}, Mode.PEAK_SHAVING,
     lambda d: d.status.capabilities["PEAK_SHAVING"].state == "ON"),
    ("shaving accounts for the battery already discharging", {}, site(160, (battery(power=20),)), {"bat-1": 32},
     Mode.PEAK_SHAVING, None),
    ("empty battery cannot shave", {}, site(180, (battery(soc=5),)), {"bat-1": 0}, Mode.PEAK_SHAVING,
     lambda d: "peak_shaving" in d.status.limited_by),
    ("peak larger than the rating", {}, site(300, (battery(),)), {"bat-1": 100}, Mode.PEAK_SHAVING,
     lambda d: "peak_shaving" in d.status.limited_by),
    ("deficit covered above the reserve", {}, site(40, (battery(soc=60),)), {"bat-1": 40}, Mode.BALANCING, None),
    ("no balancing discharge below the reserve", {}, site(40, (battery(soc=25),)), {"bat-1": -20}, Mode.BALANCING,
     None),
    ("reserve refill limited by headroom", {}, site(140, (battery(soc=25),)), {"bat-1": -8}, Mode.BALANCING, None),
    ("PV surplus charges the battery", {}, site(-30, (battery(),)), {"bat-1": -30}, Mode.BALANCING, None),
    ("full battery leaves surplus to the boiler", {}, site(-30, (battery(soc=95),), (boiler(),)), {"bat-1": 0},
     Mode.IDLE, lambda d: d.boiler["boiler-1"].mode is BoilerMode.SOAK and d.boiler["boiler-1"].power_kw == 30),
    ("boiler held off during a peak", {}, site(170, (battery(soc=5),), (boiler(power=-20),)), {"bat-1": 0},
     Mode.PEAK_SHAVING, lambda d: d.boiler["boiler-1"].mode is BoilerMode.HOLD),
    ("cold boiler heats even in a peak", {}, site(170, (battery(soc=5),), (boiler(temp=45, power=-20),)),
     {"bat-1": 0}, Mode.PEAK_SHAVING, lambda d: d.boiler["boiler-1"].mode is BoilerMode.NORMAL),
    ("export beyond the limit curtails PV", {"max_export_kw": 50},
     site(-120, (battery(soc=95),), (boiler(temp=84),), (solar(150),)), {"bat-1": 0}, Mode.IDLE,
     lambda d: d.solar_limit_kw["solar-1"] == pytest.approx(80)),
    ("export under the limit leaves PV alone", {"max_export_kw": 50},
     site(-40, (battery(soc=95),), (), (solar(100),)), {"bat-1": 0}, Mode.IDLE,
     lambda d: d.solar_limit_kw["solar-1"] is None),
    ("no discharge into export beyond the limit", {"max_export_kw": 0, "grid_setpoint_kw": -50},
     site(10, (battery(soc=80),)), {"bat-1": 10}, Mode.BALANCING, None),
    ("offline battery left out", {}, site(180, (battery("bat-1", online=False), battery("bat-2"))),
     {"bat-2": 32}, Mode.PEAK_SHAVING, lambda d: "bat-1" not in d.battery_kw),
    ("two batteries split by energy above the floor", {},
     site(180, (battery("bat-1", soc=85), battery("bat-2", soc=25))), {"bat-1": 25.6, "bat-2": 6.4},
     Mode.PEAK_SHAVING, None),
    ("peak shaving disabled", {"peak_shaving_enabled": False, "balancing_enabled": False}, site(180, (battery(),)),
     {"bat-1": 0}, Mode.IDLE, lambda d: d.status.capabilities["PEAK_SHAVING"].state == "OFF"),
    ("external controller also guarding: conflict", {}, site(100, (battery(),), m=meter(100, ps=True)),
     {"bat-1": 100}, Mode.BALANCING, lambda d: d.status.capabilities["PEAK_SHAVING"].conflict),
    ("the site controller is the authority on DER", {}, site(100, (battery(),), m=meter(100, der=False)),
     {"bat-1": 100}, Mode.BALANCING,
     lambda d: (d.status.capabilities["DER"].state, d.status.capabilities["DER"].source) == ("OFF", "pcc-1")),
    ("without it the controller's DER view stands in", {}, site(100, (battery(),), m=meter(100, der=None)),
     {"bat-1": 100}, Mode.BALANCING,
     lambda d: (d.status.capabilities["DER"].state, d.status.capabilities["DER"].source) == ("ON", "controller")
     and not d.status.capabilities["DER"].conflict),
]


@pytest.mark.parametrize(("name", "overrides", "state", "expected", "mode", "check"), CASES, ids=[c[0] for c in CASES])
def test_cycle(name: str, overrides: dict[str, Any], state: SiteState, expected: dict[str, float], mode: Mode,
               check: Any) -> None:
    decision = Controller(config(**overrides)).step(state)
    for asset_id, kw in expected.items():
        assert decision.battery_kw[asset_id] == pytest.approx(kw, abs=0.6), decision.status
    assert decision.status.mode is mode, decision.status
    if check:
        assert check(decision), decision


@pytest.mark.parametrize(
    ("dispatch", "expected", "limited"),
    [
        (Dispatch(40, T0 + dt.timedelta(minutes=5)), 40, False),
        (Dispatch(250, T0 + dt.timedelta(minutes=5)), 100, True),  # safety wins over the operator
        (Dispatch(40, T0 - dt.timedelta(seconds=1)), 32, False),  # expired: automatic control resumes
    ],
)
def test_site_dispatch_overrides_automatic_control(dispatch: Dispatch, expected: float, limited: bool) -> None:
    controller = Controller(config())
    controller.memory.dispatches.append(dispatch)
    decision = controller.step(site(180, (battery(),)))
    assert decision.battery_kw["bat-1"] == pytest.approx(expected, abs=0.6)
    assert ("dispatch" in decision.status.limited_by) is limited


def test_per_asset_dispatch_fixes_that_unit_only() -> None:
    controller = Controller(config())
    controller.memory.dispatches.append(Dispatch(-30, T0 + dt.timedelta(minutes=5), "bat-2"))
    decision = controller.step(site(180, (battery("bat-1"), battery("bat-2"))))
    assert decision.battery_kw["bat-2"] == -30
    assert decision.battery_kw["bat-1"] == pytest.approx(62, abs=0.6)  # covers the peak and bat-2's charging


def test_no_flicker_around_zero() -> None:
    """Net load wandering ±4 kW around zero must not toggle the battery between charge and discharge."""
    controller = Controller(config(hysteresis_kw=5, deadband_kw=1, ramp_kw_per_s=2))
    rng = random.Random(7)
    signs = []
    setpoint = 0.0
    for second in range(600):
        net = rng.uniform(-4, 4)
        state = site(net - setpoint, (battery(power=setpoint),), now=T0 + dt.timedelta(seconds=second))
        setpoint = controller.step(state).battery_kw["bat-1"]
        if abs(setpoint) > 1e-6:
            signs.append(setpoint > 0)
    changes = sum(1 for a, b in itertools.pairwise(signs) if a != b)
    assert changes <= 2, f"{changes} charge/discharge reversals in 10 minutes"


def test_without_hysteresis_the_same_noise_flickers() -> None:
    """The counter-case: proves the flicker test can fail."""
    controller = Controller(config(hysteresis_kw=0, deadband_kw=0, ramp_kw_per_s=1000))
    rng = random.Random(7)
    setpoint, signs = 0.0, []
    for second in range(600):
        net = rng.uniform(-4, 4)
        setpoint = controller.step(site(net - setpoint, (battery(power=setpoint),),
                                        now=T0 + dt.timedelta(seconds=second))).battery_kw["bat-1"]
        if abs(setpoint) > 1e-6:
            signs.append(setpoint > 0)
    assert sum(1 for a, b in itertools.pairwise(signs) if a != b) > 50


@pytest.mark.parametrize(
    ("total", "units", "expected"),
    [
        (60, [Unit("a", 80, 100, 50, 50), Unit("b", 80, 100, 50, 50)], {"a": 30, "b": 30}),
        (90, [Unit("a", 90, 100, 50, 50), Unit("b", 30, 100, 50, 50)], {"a": 50, "b": 40}),  # a saturates
        (-60, [Unit("a", 90, 100, 50, 50), Unit("b", 30, 100, 50, 50)], {"a": -10, "b": -50}),  # b saturates
        (200, [Unit("a", 50, 100, 50, 50)], {"a": 50}),
        (30, [Unit("a", 5, 100, 50, 50), Unit("b", 50, 100, 50, 50)], {"a": 0, "b": 30}),  # empty unit skipped
    ],
)
def test_split(total: float, units: list[Unit], expected: dict[str, float]) -> None:
    shares = split(total, units, 5, 95)
    for asset_id, kw in expected.items():
        assert shares[asset_id] == pytest.approx(kw, abs=0.6)


def test_threshold_plan_on_a_single_peak() -> None:
    # 90 kW base, a 2-hour 150 kW peak; a full 50 kWh battery: the peak's energy above T must fit.
    net = [90.0] * 40 + [150.0] * 8 + [90.0] * 48
    battery_env = BatteryEnvelope(50, 50, 100, 100, 1.0, 1.0)
    threshold = plan_threshold(net, battery_env)
    assert threshold == pytest.approx(125, abs=0.6)  # (150 − T) · 2 h = 50 kWh
    assert holds(threshold, net, battery_env)
    assert not holds(threshold - 2, net, battery_env)
    # with room to recharge before the peak, a lower threshold holds: 100 kWh for (150 − T) · 2 h
    assert plan_threshold(net, BatteryEnvelope(50, 100, 100, 100, 1.0, 1.0)) == pytest.approx(100, abs=0.6)


EVENING = [80.0] * 16  # 4 h at 80 kW


@pytest.mark.parametrize(
    ("case", "net", "battery_env", "once_kw", "twice_kw"),
    [
        # a full 100 kWh battery: once, T = 55 spends it all on the evening, 4 h · (80 − T) = 100; again, the 20 h
        # at 54 kW must refill what the evening spends, (T − 54) · 20 h = 4 h · (80 − T) → T = 58.3
        ("the night must refill what the evening spends", EVENING + [54.0] * 80,
         BatteryEnvelope(100, 100, 100, 100, 1.0, 1.0), 55.0, 58.3),
        # a light night refills it anyway: the same threshold
        ("a night that refills it anyway", EVENING + [30.0] * 80, BatteryEnvelope(100, 100, 100, 100, 1.0, 1.0),
         55.0, 55.0),
        # an empty battery that a midday PV surplus fills before the evening: once and again agree
        ("a PV surplus refills it", [40.0] * 8 + [-60.0] * 16 + [90.0] * 8 + [40.0] * 64,
         BatteryEnvelope(0, 100, 100, 100, 1.0, 1.0), 40.0, 40.0),
    ],
)
def test_plan_as_if_the_day_came_again(case: str, net: list[float], battery_env: BatteryEnvelope, once_kw: float,
                                       twice_kw: float) -> None:
    assert plan_threshold(net, battery_env) == pytest.approx(once_kw, abs=0.6)
    assert plan_threshold(net, battery_env, repeats=2) == pytest.approx(twice_kw, abs=0.6)


@pytest.mark.parametrize(
    ("case", "net_kw", "limits_kw", "reserve_kwh"),
    [
        ("nothing billed: nothing to keep", [150.0] * 8, [None] * 8, 0.0),
        ("an hour 50 kW above the limit", [150.0] * 4, [100.0] * 4, 4 * 50 * 0.25 / 0.95),
        ("billed quarters after the peak need nothing", [150.0] * 8, [100.0] * 4 + [None] * 4, 4 * 50 * 0.25 / 0.95),
        ("an hour free of charges before the peak refills it", [150.0] * 8, [None] * 4 + [100.0] * 4, 0.0),
        ("room under the limit before the peak refills part of it", [80.0] * 4 + [150.0] * 4, [100.0] * 8,
         4 * 50 * 0.25 / 0.95 - 4 * 20 * 0.25 * 0.95),
        ("a lower limit later (an on-peak window) adds its own need", [150.0] * 8, [140.0] * 4 + [100.0] * 4,
         4 * 10 * 0.25 / 0.95 + 4 * 50 * 0.25 / 0.95),
        ("no more than the rating per quarter", [300.0] * 4, [100.0] * 4, 4 * 100 * 0.25 / 0.95),
    ],
)
def test_the_peak_reserve_per_quarter(case: str, net_kw: list[float], limits_kw: list[float | None],
                                      reserve_kwh: float) -> None:
    assert peak_reserve_kwh(net_kw, limits_kw, 100.0, 100.0, 0.95, 0.95) == pytest.approx(reserve_kwh, abs=1e-9)


def test_hindsight_threshold_starts_full() -> None:
    """What a full battery could have held over quarters that happened, whatever the battery holds now."""
    past = [150.0] * 16 + [60.0] * 96 * 3  # a 4-hour 150 kW event, then three ordinary days
    empty = BatteryEnvelope(0, 180, 100, 100, 0.95, 0.95)
    assert hindsight_threshold(past, empty) == pytest.approx(150 - 180 * 0.95 / 4, abs=0.6)  # the event fits
    assert plan_threshold(past, empty) == pytest.approx(150, abs=0.6)  # from empty, nothing can be shaved


def test_time_average_is_time_weighted() -> None:
    avg = TimeAverage(900)
    avg.add(0, 100)
    avg.add(600, 200)
    assert avg.average(900) == pytest.approx((100 * 600 + 200 * 300) / 900)
    assert avg.average(1500) == pytest.approx(200)


def test_no_cycling_at_the_reserve() -> None:
    """At the reserve, refilling and spending above it must not take turns (one direction at a time)."""
    controller = Controller(config(reserve_soc_pct=60, recharge_kw=20))
    setpoints = []
    soc = 59.5
    for minute in range(120):
        decision = controller.step(site(70, (battery(soc=soc, power=setpoints[-1] if setpoints else 0),),
                                        now=T0 + dt.timedelta(minutes=minute)))
        setpoints.append(decision.battery_kw["bat-1"])
        soc -= setpoints[-1] / 60 / 200 * 100  # a 200 kWh battery, one minute at the setpoint
    assert min(setpoints) >= -20.01  # refilled at recharge_kw …
    assert max(setpoints) <= 0.01  # … and never spent again for balancing while within the band
    assert soc < 62


def test_a_boiler_already_heating_is_not_counted_twice() -> None:
    """A boiler on its own thermostat (below the soak band) draws 30 kW that the meter already shows:
    soaking it up adds nothing, so export beyond the limit is still curtailed."""
    state = site(-50, (battery(soc=95),), (boiler(temp=50, power=-30),), (solar(90),))
    decision = Controller(config(max_export_kw=20)).step(state)
    assert decision.boiler["boiler-1"].mode is BoilerMode.SOAK
    assert decision.solar_limit_kw["solar-1"] == pytest.approx(60, abs=0.5)



@pytest.mark.parametrize(
    ("overrides", "month_peak", "limit", "source"),
    [
        ({"import_limit_kw": None}, 0.0, None, "none"),  # nothing to go by: no peak shaving
        ({"import_limit_kw": None, "rule_threshold_kw": 140}, 0.0, 140, "rule"),  # no history: the rule
        ({"import_limit_kw": None, "rule_threshold_kw": 140}, 155.0, 155, "rule"),  # never below the month's peak
        ({"import_limit_kw": None}, 120.0, 120, "rule"),
        ({"import_limit_kw": 150}, 170.0, 150, "twin"),  # a contracted limit is kept as given
    ],
)
def test_limit_sources(overrides: dict[str, Any], month_peak: float, limit: float | None, source: str) -> None:
    controller = Controller(config(**overrides))
    controller.memory.quarters.month_peak_kw = month_peak
    controller.memory.quarters.month = T0.strftime("%Y-%m")
    status = controller.step(site(100, (battery(),))).status
    assert (status.limit_kw, status.limit_source) == (limit, source)


def test_memory_survives_a_restart() -> None:
    """What the module persists (month peak, load history) restores to the same planning state."""
    controller = Controller(config(import_limit_kw=None))
    for quarter in range(4 * 24 * 8):  # eight days of quarters with a daily peak
        now = T0 + dt.timedelta(minutes=15 * quarter)
        load = 160.0 if now.hour == 18 else 90.0
        controller.step(site(load, (battery(),), now=now))
    record = json.loads(json.dumps(controller.memory.to_record()))
    restored = Controller(config(import_limit_kw=None))
    restored.memory.restore(record)
    assert restored.memory.quarters.month_peak_kw == controller.memory.quarters.month_peak_kw > 0
    start = T0 + dt.timedelta(days=9)
    assert restored.memory.history.forecast(start, 96) == controller.memory.history.forecast(start, 96)


def test_a_new_month_is_not_planned_below_the_month_floor() -> None:
    """A month's first day looks easy to the forecast, but the last month had a hard day: the limit stays at the
    share of that day's hindsight threshold instead of spending the battery on a plan far below it."""
    controller = Controller(config(import_limit_kw=None, balancing_enabled=False))
    start = dt.datetime(2026, 6, 22, tzinfo=dt.timezone.utc)  # a Monday; July starts nine days later
    event = (dt.datetime(2026, 6, 24, 14, tzinfo=dt.timezone.utc), dt.datetime(2026, 6, 24, 18, tzinfo=dt.timezone.utc))
    now = start
    while now < dt.datetime(2026, 7, 1, 12, tzinfo=dt.timezone.utc):
        status = controller.step(site(150 if event[0] <= now < event[1] else 60, (battery(soc=50),), now=now)).status
        now += dt.timedelta(minutes=15)
    mem = controller.memory
    past_net_kw = [load - pv for (_, load), (_, pv) in zip(mem.load_quarter.completed, mem.pv_quarter.completed,
                                                           strict=True)]
    window_kwh = (95 - 5) / 100 * 200  # the configured SOC window of the 200 kWh battery
    expected_floor_kw = hindsight_threshold(past_net_kw, BatteryEnvelope(0, window_kwh, 100, 100))
    assert mem.month_floor_kw == pytest.approx(expected_floor_kw)
    assert 100 < expected_floor_kw < 150  # the event, shaved by what a full battery holds
    assert mem.quarters.month_peak_kw == pytest.approx(60)  # July so far: nothing but 60 kW
    assert mem.planned_threshold_kw is not None and mem.planned_threshold_kw < 0.8 * expected_floor_kw
    assert (status.limit_kw, status.limit_source) == (pytest.approx(0.8 * expected_floor_kw), "month floor")
    # what the module persists keeps the floor
    restored = Controller(config(import_limit_kw=None, balancing_enabled=False))
    restored.memory.restore(json.loads(json.dumps(mem.to_record())))
    assert (restored.memory.month_floor_kw, restored.memory.month_floor_day) == (mem.month_floor_kw, "2026-07-01")


@pytest.mark.parametrize(
    ("case", "hour", "load_kw", "soc", "cap_kwh", "limit_kw"),
    [
        # no history and no rule threshold: the month's peak (60 kW, set overnight) is held, but the battery
        # (100 kW, SOC window 5–95 %) shaves no faster than its energy lasts until midnight, at 0.95 one way
        ("morning ramp, 16 h left", 8, 120.0, 50, 200, 120 - 90 * 0.95 / 16),
        ("evening, 4 h left", 20, 120.0, 50, 200, 120 - 90 * 0.95 / 4),
        ("late evening: at least 2 h", 23, 120.0, 50, 200, 120 - 90 * 0.95 / 2),
        ("the rating caps it", 23, 200.0, 95, 1000, 200 - 100),
        ("below the month's peak nothing changes", 8, 55.0, 50, 200, 60),
        ("an empty battery shaves nothing", 8, 120.0, 5, 200, 120),
    ],
)
def test_without_history_the_battery_is_spread_over_the_rest_of_the_day(
        case: str, hour: int, load_kw: float, soc: float, cap_kwh: float, limit_kw: float) -> None:
    controller = Controller(config(import_limit_kw=None, balancing_enabled=False))
    now = T0.replace(hour=hour)
    controller.memory.quarters.month_peak_kw, controller.memory.quarters.month = 60.0, now.strftime("%Y-%m")
    status = controller.step(site(load_kw, (battery(soc=soc, cap=cap_kwh),), now=now)).status
    assert (status.limit_kw, status.limit_source) == (pytest.approx(limit_kw, abs=0.01), "rule")
