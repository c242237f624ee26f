"""The plant's physics, the profiles and the register tables, without sockets."""

from __future__ import annotations

import json
import math
import re
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import energy_edge.sim
from energy_edge.sim.devices import SUNSPEC_BASE, Point, decode, encode, model_length, model_points
from energy_edge.sim.plant import (
    BOILER_DISABLED,
    BOILER_FAULT,
    BOILER_HEATING,
    BOILER_IDLE,
    CHA_CHARGING,
    CHA_DISCHARGING,
    CHA_HOLDING,
    ST_MPPT,
    ST_SLEEPING,
    ST_STANDBY,
    ST_THROTTLED,
    STATUS_DER_ACTIVE,
    STATUS_GRID_CONNECTED,
    STATUS_PEAK_SHAVING,
    Battery,
    Boiler,
    Plant,
    Solar,
)
from energy_edge.sim.profiles import build_profiles, read_csv
from energy_edge.sim.runtime import Simulator
from energy_edge.sim.scenario import (
    BatterySpec,
    BoilerSpec,
    ProfileSpec,
    Scenario,
    ScenarioError,
    SolarSpec,
    load_scenario,
)

ETA = math.sqrt(0.9)


def battery(**kw: float) -> Battery:
    b = Battery.from_spec(BatterySpec(asset_id="b", soc_pct=kw.pop("soc", 50.0)))
    for key, value in kw.items():
        setattr(b, key, value)
    return b


def run_battery(b: Battery, seconds: float, dt: float = 1.0) -> None:
    for _ in range(round(seconds / dt)):
        b.evaluate(True)
        b.integrate(dt)
    b.evaluate(True)


# ---------------------------------------------------------------- battery


@pytest.mark.parametrize(
    ("storctl_mod", "out_pct", "in_pct", "expected_soc"),
    [
        (2, 50.0, 0.0, 50 - 100 * (50 * 0.5 / ETA) / 200),  # discharge 50 kW for 30 min
        (1, 0.0, 50.0, 50 + 100 * (50 * 0.5 * ETA) / 200),  # charge 50 kW for 30 min
        (3, 30.0, 80.0, 50 + 100 * (50 * 0.5 * ETA) / 200),  # both bits: 30 - 80 = charge 50 %
        (2, -50.0, 0.0, 50 + 100 * (50 * 0.5 * ETA) / 200),  # negative OutWRte charges
        (0, 50.0, 50.0, 50.0),  # no bit: hold
        (1, 50.0, 0.0, 50.0),  # only the charge bit, InWRte 0: hold
    ],
)
def test_battery_soc_integrates_with_efficiency(storctl_mod: int, out_pct: float, in_pct: float,
                                                expected_soc: float) -> None:
    b = battery(storctl_mod=storctl_mod, out_wrte_pct=out_pct, in_wrte_pct=in_pct)
    run_battery(b, 1800)
    assert b.soc_pct == pytest.approx(expected_soc, abs=1e-6)


@pytest.mark.parametrize(
    ("soc", "min_rsv", "wchamax", "discharge_kw", "charge_kw"),
    [
        (50, 0, 100, 100, 100),
        (10, 0, 100, 100, 100),
        (5, 0, 100, 50, 100),  # linear taper below 10 %
        (0, 0, 100, 0, 100),
        (90, 0, 100, 100, 100),
        (95, 0, 100, 100, 50),  # linear taper above 90 %
        (100, 0, 100, 100, 0),
        (25, 20, 100, 50, 100),  # the taper starts above the reserve
        (20, 20, 100, 0, 100),
        (50, 0, 40, 100, 40),  # WChaMax caps charging
    ],
)
def test_battery_derating(soc: float, min_rsv: float, wchamax: float, discharge_kw: float, charge_kw: float) -> None:
    b = battery(soc=soc, min_rsv_pct=min_rsv, wchamax_kw=wchamax)
    assert b.discharge_limit_kw() == pytest.approx(discharge_kw)
    assert b.charge_limit_kw() == pytest.approx(charge_kw)


def test_battery_never_leaves_0_100_and_reports_its_state() -> None:
    b = battery(soc=12.0, storctl_mod=2, out_wrte_pct=100.0)
    b.evaluate(True)
    assert b.power_kw == pytest.approx(100) and b.cha_st == CHA_DISCHARGING
    run_battery(b, 4 * 3600, dt=10)
    assert 0.0 < b.soc_pct < 1.0 and 0 <= b.power_kw < 10
    b.storctl_mod, b.in_wrte_pct = 1, 100.0
    b.evaluate(True)
    assert b.power_kw == pytest.approx(-100) and b.cha_st == CHA_CHARGING
    run_battery(b, 6 * 3600, dt=10)
    assert 99.0 < b.soc_pct <= 100.0 and -10 < b.power_kw <= 0
    b.storctl_mod = 0
    b.evaluate(True)
    assert b.power_kw == 0 and b.cha_st in (CHA_HOLDING, 5)


def test_battery_revert_timer_returns_to_idle() -> None:
    b = battery(storctl_mod=2, out_wrte_pct=50.0, rvrt_s=30.0, ctl_written_s=0.0)
    b.watchdogs(29.0)
    assert b.storctl_mod == 2
    b.watchdogs(30.0)
    b.evaluate(True)
    assert b.storctl_mod == 0 and b.power_kw == 0 and b.reverted == 1


def test_battery_der_disable_blocks_discharge_not_charge() -> None:
    b = battery(storctl_mod=2, out_wrte_pct=50.0)
    b.evaluate(False)
    assert b.power_kw == 0
    b.storctl_mod, b.in_wrte_pct = 1, 50.0
    b.evaluate(False)
    assert b.power_kw == pytest.approx(-50)


# ---------------------------------------------------------------- PV


@pytest.mark.parametrize(
    ("resource", "unit", "conn", "ena", "pct", "der", "power", "state"),
    [
        (1000, "w_m2", True, False, 100, True, 172.0, ST_MPPT),  # 200 kWp x 1 kW/m2 x 0.86
        (1000, "w_m2", True, True, 50, True, 90.0, ST_THROTTLED),  # 50 % of the 180 kW AC rating
        (1000, "w_m2", True, False, 50, True, 172.0, ST_MPPT),  # WMaxLimPct without WMaxLim_Ena: no limit
        (1000, "w_m2", True, True, 0, True, 0.0, ST_THROTTLED),
        (500, "w_m2", True, True, 60, True, 86.0, ST_MPPT),  # limit 108 kW above the available 86 kW
        (1200, "w_m2", True, False, 100, True, 180.0, ST_MPPT),  # clipped at the inverter rating
        (1000, "w_m2", False, False, 100, True, 0.0, ST_STANDBY),  # Conn = 0
        (1000, "w_m2", True, False, 100, False, 0.0, ST_STANDBY),  # the controller's der_enable = 0
        (0, "w_m2", True, False, 100, True, 0.0, ST_SLEEPING),
        (150, "kw", True, True, 50, True, 90.0, ST_THROTTLED),  # a pv_kw profile is the available power
    ],
)
def test_pv_power_and_limits(resource: float, unit: str, conn: bool, ena: bool, pct: float, der: bool,
                             power: float, state: int) -> None:
    s = Solar.from_spec(SolarSpec(asset_id="pv", kwp=200, ac_kw=180))
    s.conn, s.wmaxlim_ena, s.wmaxlim_pct = conn, ena, pct
    s.evaluate(resource, unit, der)
    assert s.power_kw == pytest.approx(power) and s.state == state


def test_pv_limit_revert_timer() -> None:
    s = Solar.from_spec(SolarSpec(asset_id="pv"))
    s.wmaxlim_ena, s.wmaxlim_pct, s.wmaxlim_rvrt_s, s.wmaxlim_written_s = True, 10.0, 60.0, 100.0
    s.watchdogs(159.0)
    assert s.wmaxlim_ena
    s.watchdogs(160.0)
    assert not s.wmaxlim_ena


# ---------------------------------------------------------------- boiler


def boiler(**kw: float | bool) -> Boiler:
    w = Boiler.from_spec(BoilerSpec(asset_id="w", loss_w_per_k=0.0))
    for key, value in kw.items():
        setattr(w, key, value)
    return w


def run_boiler(w: Boiler, seconds: float, demand_kw: float = 0.0) -> list[float]:
    powers = []
    for _ in range(round(seconds)):
        w.evaluate(demand_kw)
        powers.append(w.power_kw)
        w.integrate(1.0)
    w.evaluate(demand_kw)
    return powers


def test_boiler_heats_the_tank() -> None:
    w = boiler(temp_c=60.0, setpoint_c=80.0)
    run_boiler(w, 3600)
    capacity = 2000 * 4.186 / 3600  # kWh/K
    assert w.temp_c == pytest.approx(60.0 + 30.0 / capacity, abs=1e-6)
    assert w.energy_kwh == pytest.approx(30.0)


def test_boiler_cools_with_demand_and_losses() -> None:
    w = boiler(temp_c=70.0, enable=False, loss_kw_per_k=0.01)
    run_boiler(w, 3600, demand_kw=10.0)
    capacity = 2000 * 4.186 / 3600
    # losses 10 W/K at ~68 degC above a 20 degC ambient: about 0.48 kW
    assert w.temp_c == pytest.approx(70.0 - (10.0 + 0.48) / capacity, abs=0.01)
    assert w.power_kw == 0 and w.state == BOILER_DISABLED


def test_boiler_thermostat_hysteresis_and_power_limit() -> None:
    w = boiler(temp_c=59.0, setpoint_c=60.0, power_limit_kw=12.0)
    w.evaluate(0.0)
    assert w.power_kw == 0 and w.state == BOILER_IDLE  # inside the band, was off
    w.temp_c = 58.0
    w.evaluate(0.0)
    assert w.power_kw == 12.0 and w.state == BOILER_HEATING  # at setpoint - h/2, limited to 12 kW
    w.temp_c = 61.9
    w.evaluate(0.0)
    assert w.power_kw == 12.0  # still heating inside the band
    w.temp_c = 62.0
    w.evaluate(0.0)
    assert w.power_kw == 0  # off at setpoint + h/2
    powers = run_boiler(w, 4 * 3600, demand_kw=8.0)
    assert min(powers) == 0 and max(powers) == 12.0 and 57.0 < w.temp_c < 62.5


def test_boiler_min_temp_protection_and_max_temp() -> None:
    w = boiler(temp_c=50.0, enable=False, power_limit_kw=0.0)
    w.evaluate(0.0)
    assert w.power_kw == 30.0 and w.protecting  # below 55 degC: rated power, whatever enable/limit say
    w.temp_c = 58.9
    w.evaluate(0.0)
    assert w.power_kw == 30.0
    w.temp_c = 59.0
    w.evaluate(0.0)
    assert w.power_kw == 0 and w.state == BOILER_DISABLED
    hot = boiler(temp_c=80.0, setpoint_c=80.0)
    hot.heating = True
    hot.evaluate(0.0)
    assert hot.power_kw == 0


def test_boiler_fault_and_reset() -> None:
    w = boiler(temp_c=86.0)
    w.evaluate(0.0)
    assert w.state == BOILER_FAULT and w.fault_code == 1 and w.power_kw == 0
    w.reset()
    assert w.fault_code == 1  # still too hot
    w.temp_c = 70.0
    w.reset()
    w.evaluate(0.0)
    assert w.fault_code == 0 and w.state != BOILER_FAULT


# ---------------------------------------------------------------- PCC


@pytest.mark.parametrize(
    ("load", "heater", "pv", "charge", "discharge", "grid"),
    [
        (100, 0, 0, 0, 0, 100),
        (100, 30, 0, 0, 0, 130),
        (100, 0, 150, 0, 0, -50),
        (100, 0, 0, 50, 0, 150),
        (100, 30, 120, 0, 40, -30),
    ],
)
def test_pcc_formula(load: float, heater: float, pv: float, charge: float, discharge: float, grid: float) -> None:
    assert Plant.pcc_import_kw(load, heater, pv, charge, discharge) == pytest.approx(grid)


def small_plant() -> Plant:
    scenario = load_scenario("small")
    return Plant.from_scenario(scenario, build_profiles(scenario))


def test_plant_meter_adds_up() -> None:
    p = small_plant()
    b, w = p.batteries["bess-1"], p.boilers["boiler-1"]
    b.storctl_mod, b.in_wrte_pct = 1, 40.0  # charge 2 kW
    w.setpoint_c = 70.0  # heat at 3 kW
    p.evaluate()
    assert p.pv_kw == pytest.approx(12 * 0.8 * 0.86)
    assert p.battery_kw == pytest.approx(-2.0) and p.heater_kw == pytest.approx(3.0)
    assert p.meter.grid_import_kw == pytest.approx(6.0 + 3.0 - p.pv_kw + 2.0)
    assert p.meter.site_load_kw == pytest.approx(9.0)
    assert p.meter.status & STATUS_DER_ACTIVE and p.meter.status & STATUS_GRID_CONNECTED


def test_peak_shaving_status_follows_the_one_minute_average() -> None:
    p = small_plant()  # limit 8 kW, import about -2.3 kW
    assert not p.meter.status & STATUS_PEAK_SHAVING
    p.load_offset_kw = 10.0  # import about 7.7 kW: within 10 % of the limit
    p.evaluate()
    assert not p.meter.status & STATUS_PEAK_SHAVING  # the average has not caught up yet
    p.run(300, 1.0)
    assert p.meter.avg_import_kw == pytest.approx(p.meter.grid_import_kw, rel=0.01)
    assert p.meter.status & STATUS_PEAK_SHAVING
    p.meter.peak_shaving_enable = False
    p.evaluate()
    assert not p.meter.status & STATUS_PEAK_SHAVING


# ---------------------------------------------------------------- profiles and scenarios


def test_csv_profiles_interpolate_and_repeat(tmp_path: Path) -> None:
    path = tmp_path / "load.csv"
    rows = [f"2024-01-01T{h:02d}:{m:02d}:00,{10 + h * 4 + m // 15}" for h in range(24) for m in (0, 15, 30, 45)]
    path.write_text("timestamp,power_kw\n" + "\n".join(rows) + "\n")
    profile = read_csv(path, "load", ["power_kw"]).bind(datetime(2024, 6, 18, 0, 7, 30))
    assert profile.unit == "kw" and profile.period_s == 86400
    assert profile.at(0) == pytest.approx(10.5)  # halfway between 00:00 (10) and 00:15 (11)
    assert profile.at(7.5 * 60) == pytest.approx(11)
    assert profile.at(86400) == pytest.approx(10.5)  # the next day repeats
    assert profile.at(86400 - 450 - 7.5 * 60) == pytest.approx(10 + 95 / 2)  # 23:52:30 wraps toward 00:00


def test_csv_scenario_with_pv_kw(tmp_path: Path) -> None:
    (tmp_path / "pv.csv").write_text("timestamp,pv_kw\n2024-01-01 00:00,0\n2024-01-01 12:00,100\n")
    (tmp_path / "load.csv").write_text("timestamp,power_kw\n2024-01-01T00:00:00Z,50\n2024-01-01T06:00:00Z,50\n")
    doc = {
        "site_id": "csv-site", "start": "2024-03-01T06:00:00+01:00", "import_limit_kw": 100,
        "load": {"source": "csv", "path": "load.csv"}, "pv": {"source": "csv", "path": "pv.csv"},
        "heat_demand": {"source": "constant", "value": 0},
        "devices": [{"kind": "solar", "asset_id": "pv", "kwp": 120, "ac_kw": 80}],
    }
    (tmp_path / "site.json").write_text(json.dumps(doc))
    scenario = load_scenario(tmp_path / "site.json")
    assert scenario.name == "site" and scenario.base_dir == str(tmp_path)
    plant = Plant.from_scenario(scenario, build_profiles(scenario))
    assert plant.profiles.pv.unit == "kw"
    assert plant.pv_kw == pytest.approx(50.0)  # 06:00 is halfway up the 00:00-12:00 ramp
    plant.run(6 * 3600, 60)
    assert plant.pv_kw == pytest.approx(80.0)  # 100 kW available, clipped at 80 kW AC
    assert plant.meter.grid_import_kw == pytest.approx(50.0 - 80.0)


def test_bad_scenarios_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="neither a built-in"):
        load_scenario("no-such-scenario")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"site_id": "x", "start": "2024-01-01T00:00:00", "devices": [
        {"kind": "solar", "asset_id": "a"}, {"kind": "battery", "asset_id": "a"}]}))
    with pytest.raises(ScenarioError, match="duplicate asset_id"):
        load_scenario(bad)
    with pytest.raises(ValueError, match="setpoint_c"):
        BoilerSpec(asset_id="w", setpoint_c=90)


def test_default_scenario_day() -> None:
    scenario = load_scenario("default")
    scenario = scenario.model_copy(update={"start": scenario.start.replace(hour=0)})
    profiles = build_profiles(scenario)
    loads = [profiles.load.at(m * 60) for m in range(1440)]
    assert 45 < min(loads) < 70 and 175 < max(loads) < 200
    plant = Plant.from_scenario(scenario, profiles)
    plant.boilers["boiler-1"].enable = False
    plant.boilers["boiler-1"].min_temp_c = 0  # no heater: the uncontrolled import of load and PV only
    over: list[float] = []
    pv_peak = (0.0, 0.0)
    for minute in range(1440):
        if plant.meter.grid_import_kw > scenario.import_limit_kw:
            over.append(minute / 60)
        pv_peak = max(pv_peak, (plant.pv_kw, minute / 60))
        plant.run(60, 5.0)
    assert any(6 < h < 9 for h in over) and any(17 < h < 20 for h in over)  # morning and late-afternoon peaks
    assert 100 < pv_peak[0] < 180 and 12 <= pv_peak[1] <= 14.5  # PV peaks around (solar) noon
    assert plant.meter.export_kwh > 5  # a midday surplus to soak up


def test_synthetic_profiles_follow_the_seed() -> None:
    scenario = load_scenario("default")
    a, b, c = build_profiles(scenario, 1), build_profiles(scenario, 1), build_profiles(scenario, 2)
    times = [i * 600.0 for i in range(144)]
    assert [a.load.at(t) for t in times] == [b.load.at(t) for t in times]
    assert [a.pv.at(t) for t in times] == [b.pv.at(t) for t in times]
    assert [a.load.at(t) for t in times] != [c.load.at(t) for t in times]


def test_demandlib_profile_keeps_the_warning_filters() -> None:
    pytest.importorskip("demandlib")
    scenario = Scenario(site_id="d", start=datetime(2024, 6, 18, 12), devices=[SolarSpec(asset_id="pv")],
                        load=ProfileSpec(source="demandlib", slp="g0", peak_kw=180.0))
    before = list(warnings.filters)
    profiles = build_profiles(scenario)
    assert warnings.filters == before  # demandlib's simplefilter("error") did not leak
    loads = [profiles.load.at(h * 900.0) for h in range(96)]
    assert 20 < min(loads) and max(loads) <= 180.0 + 1e-6
    g25 = Scenario(site_id="d", start=datetime(2024, 6, 18, 12), devices=[SolarSpec(asset_id="pv")],
                   load=ProfileSpec(source="demandlib", slp="g25", annual_kwh=500_000.0))
    assert 0 < build_profiles(g25).load.at(0) < 500


def test_pvlib_tmy_profile() -> None:
    pytest.importorskip("pvlib")
    scenario = Scenario(site_id="p", start=datetime(2024, 6, 18, 0), devices=[SolarSpec(asset_id="pv")],
                        pv=ProfileSpec(source="pvlib", tmy_file="723170TYA.CSV"))
    pv = build_profiles(scenario).pv
    assert pv.unit == "w_m2"
    assert pv.at(2 * 3600) == 0  # 02:00 local
    assert max(pv.at(h * 3600.0) for h in range(10, 16)) > 300


# ---------------------------------------------------------------- determinism


def _scripted_run(seed: int) -> list[dict[str, float]]:
    sim = Simulator(load_scenario("default"), seed=seed, accel=10)
    bess, pv = sim.devices["bess-1"], sim.devices["pv-1"]
    trajectory = []
    for minute in range(120):
        if minute == 10:  # discharge 60 %
            assert bess.write(SUNSPEC_BASE + 2 + 68 + 52 + 28 + 5, [2]) is None
            assert bess.write(SUNSPEC_BASE + 2 + 68 + 52 + 28 + 12, [600]) is None
            sim.on_control()
        if minute == 60:  # limit PV to 30 %
            assert pv.write(SUNSPEC_BASE + 2 + 68 + 52 + 28 + 5, [300]) is None
            assert pv.write(SUNSPEC_BASE + 2 + 68 + 52 + 28 + 9, [1]) is None
            sim.on_control()
        sim.advance(60)
        s = sim.state()["site"]
        trajectory.append({k: s[k] for k in ("grid_import_kw", "pv_kw", "battery_kw", "heater_kw", "load_kw")})
    return trajectory


@pytest.mark.parametrize(
    ("case", "written", "refreshed"),
    [
        # a device's own write changes its power and the site's import: those two images, not all of them
        ("battery write", "bess-1", {"bess-1", "mgc-1"}),
        ("inverter write", "pv-1", {"pv-1", "mgc-1"}),
        # load steps, faults and the plant's own steps refresh every image
        ("anything else", None, {"pv-1", "bess-1", "boiler-1", "mgc-1"}),
    ],
)
def test_control_write_refreshes_the_written_device_and_the_meter(
    case: str, written: str | None, refreshed: set[str]
) -> None:
    sim = Simulator(load_scenario("default"), seed=1, accel=10)
    calls: list[str] = []
    for asset_id, device in sim.devices.items():
        original = device.refresh

        def counting(asset_id: str = asset_id, original: Any = original) -> None:
            calls.append(asset_id)
            original()

        device.refresh = counting  # type: ignore[method-assign]
    sim.on_control(sim.devices[written] if written else None)
    assert set(calls) == refreshed, case
    assert set(sim.devices) >= refreshed


def test_meter_registers_show_a_battery_write_at_once() -> None:
    def grid_import_w() -> int:  # the meter's input registers 0-1, int32, as a client reads them
        regs = meter.read("ir", 0, 2)
        assert isinstance(regs, list)
        raw = regs[0] << 16 | regs[1]
        return raw - (1 << 32) if raw >= 1 << 31 else raw

    sim = Simulator(load_scenario("default"), seed=1, accel=10)
    bess, meter = sim.devices["bess-1"], sim.devices["mgc-1"]
    before = grid_import_w()
    assert bess.write(SUNSPEC_BASE + 2 + 68 + 52 + 28 + 5, [2]) is None  # discharge
    assert bess.write(SUNSPEC_BASE + 2 + 68 + 52 + 28 + 12, [600]) is None  # 60 % of the rating
    sim.on_control(bess)
    assert grid_import_w() < before - 10_000


def test_same_seed_same_trajectory() -> None:
    first, second, other = _scripted_run(5), _scripted_run(5), _scripted_run(6)
    assert first == second
    assert first != other
    assert first[30]["battery_kw"] == pytest.approx(60.0)


# ---------------------------------------------------------------- register tables


@pytest.mark.parametrize("model_id", [1, 103, 120, 123, 124, 713])
def test_model_tables_match_pysunspec2(model_id: int) -> None:
    sunspec2 = pytest.importorskip("sunspec2")
    path = Path(sunspec2.__file__).parent / "models" / "json" / f"model_{model_id}.json"
    group = json.loads(path.read_text())["group"]
    official = [(p["name"], p["type"], p["size"], p.get("sf"), p.get("access", "R")) for p in group["points"]]
    assert official[:2] == [("ID", "uint16", 1, None, "R"), ("L", "uint16", 1, None, "R")]
    ours = [(p.name, p.type, p.size, p.sf, p.access) for p in model_points(model_id)]
    assert ours == official[2:]
    assert model_length(model_id) == sum(p["size"] for p in group["points"]) - 2


@pytest.mark.parametrize(
    ("point", "value", "regs"),
    [
        (Point("a", 0, "int32", 2), -1500, [0xFFFF, 0xFA24]),
        (Point("a", 0, "uint32", 2, scale=0.1), 123456.7, [0x0012, 0xD687]),
        (Point("a", 0, "int16", 1, scale=0.1), -12.3, [0xFF85]),
        (Point("a", 0, "uint16", 1, sf="sf"), 123400, [12340]),  # sf = 1
        (Point("a", 0, "uint16", 1), None, [0xFFFF]),
        (Point("a", 0, "int16", 1), None, [0x8000]),
        (Point("a", 0, "acc32", 2), None, [0, 0]),
        (Point("a", 0, "string", 2), "SunS", [0x5375, 0x6E53]),
        (Point("a", 0, "uint16", 1), 70000, [0xFFFF]),  # saturates
        (Point("a", 0, "int16", 1), -40000, [0x8001]),  # saturates short of the not-implemented pattern
        (Point("a", 0, "uint32", 2), 2**33, [0xFFFF, 0xFFFE]),  # likewise
        (Point("a", 0, "acc32", 2), 2**32 + 5, [0, 5]),  # an accumulator wraps
        (Point("a", 0, "pad", 1), None, [0]),
        (Point("a", 0, "sunssf", 1), -2, [0xFFFE]),
        (Point("a", 0, "int32", 2), None, [0x8000, 0]),
    ],
)
def test_generic_encoder(point: Point, value: float | str | None, regs: list[int]) -> None:
    sfs = {"sf": 1}
    assert encode(point, value, sfs) == regs
    decoded = decode(point, regs, sfs)
    if isinstance(value, float) and value < 65535:
        assert decoded == pytest.approx(value)
    elif point.type == "string" or (value is not None and point.type == "int32"):
        assert decoded == value


def test_register_doc_matches_the_maps() -> None:
    """docs/register-maps.md lists every SunSpec point at its address, and the vendor maps' addresses."""
    from energy_edge.sim.devices import (
        BOILER_HOLDING,
        BOILER_INPUT,
        CONTROLLER_HOLDING,
        CONTROLLER_INPUT,
        sunspec_points,
    )

    text = (Path(__file__).resolve().parents[3] / "docs" / "register-maps.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    documented = {(r[0], r[1]) for r in rows if len(r) > 2}
    for models in ([1, 103, 120, 123], [1, 103, 120, 124, 713]):
        for p in sunspec_points(models):
            assert (str(p.address), p.key) in documented, p
    for table in (BOILER_INPUT, BOILER_HOLDING, CONTROLLER_INPUT, CONTROLLER_HOLDING):
        for addr, name, typ, *_ in table:
            span = f"{addr}-{addr + 1}" if typ in ("int32", "uint32") else str(addr)
            assert (span, name) in documented, name


def test_example_scenario_file() -> None:
    path = Path(energy_edge.sim.__file__).parent / "examples" / "two-inverters.json"
    scenario = load_scenario(path)
    sim = Simulator(scenario, accel=60)
    assert [d.kind for d in sim.devices.values()] == ["solar", "solar", "battery", "boiler", "microgrid_controller"]
    sim.advance(4 * 3600)  # to noon
    site = sim.state()["site"]
    carport = sim.state()["devices"]["pv-carport"]
    assert carport["power_kw"] <= 40.0 + 1e-9 and site["pv_kw"] > 50
    assert site["grid_import_kw"] == pytest.approx(
        site["load_kw"] + site["heater_kw"] - site["pv_kw"] - site["battery_kw"])


def test_register_doc_is_current() -> None:
    """The vendor tables of docs/register-maps.md are what `python -m energy_edge.sim.regdoc` writes."""
    from energy_edge.sim import regdoc

    text = regdoc.DOC_PATH.read_text()
    from energy_edge_base.devices import device_type_names, load_device_type

    # Every table of every data file is in the doc: under a hand-written section's markers, or (a type no
    # hand-written section marks) in the generated section, whose tables render() checks below.
    marked = set(re.findall(r"<!-- device-table ([a-z0-9_]+) (input|holding) -->", text))
    expected = {(n, r.table) for n in device_type_names() for r in load_device_type(n).registers}
    other = text.split("<!-- device-types-other -->", 1)[1].split("<!-- /device-types-other -->", 1)[0]
    generated_types = set(re.findall(r"`device_type: ([a-z0-9_]+)`", other))
    assert {n for n, _ in marked} & generated_types == set()
    assert marked | {(n, t) for n, t in expected if n in generated_types} == expected
    assert regdoc.render(text) == text, "run: python -m energy_edge.sim.regdoc"
    assert regdoc.main(["--check"]) == 0


def test_sunspec_models_file_is_pysunspec2s() -> None:
    """energy_edge_base/devices/sunspec_models.json is what pysunspec2's model JSON gives, point for point."""
    pytest.importorskip("sunspec2")
    from energy_edge.sim import sunspecgen

    assert sunspecgen.main(["--check"]) == 0, "run: python -m energy_edge.sim.sunspecgen"


def test_register_block_reencodes_only_what_changed_or_was_written() -> None:
    """A refresh skips points whose value is unchanged, but never leaves written words the plant did not take."""
    from energy_edge.sim.devices import RegisterBlock

    block = RegisterBlock(0, [Point("a", 0, "uint16", 1, "RW"), Point("b", 1, "int32", 2, "RW", scale=0.1)])
    block.encode({"a": 7, "b": -1.5})
    assert block.regs == [7, 0xFFFF, 0xFFF1]
    block.store(0, [9, 0, 1])  # a write whose values the plant then refuses or keeps as they were
    block.encode({"a": 7, "b": -1.5})
    assert block.regs == [7, 0xFFFF, 0xFFF1]
    block.encode({"a": 8, "b": -1.5})
    assert block.regs == [8, 0xFFFF, 0xFFF1]
