"""Tariffs as data: the model's validation, the built-ins, what is billed so far, the bill, and the controller
planning against a tariff."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

from controller_module.core.config import ControllerConfig
from controller_module.core.controller import Controller
from controller_module.core.planner import BatteryEnvelope, holds, plan_charges, plan_threshold
from controller_module.core.state import BatteryView, MeterView, SiteState
from controller_module.core.tariff import (
    BUILT_IN,
    DemandCharge,
    DemandLedger,
    EnergyPrice,
    Tariff,
    TimeWindow,
    bill,
    default_tariff,
    interval_demands,
)
from energy_edge_base.config import TwinConfig

UTC = dt.timezone.utc
MONDAY = dt.datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
QUARTER_S = 900.0


def tariff(**charge: Any) -> Tariff:
    return Tariff(demand_charges=(DemandCharge(price_per_kw=10.0, **charge),))


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize(
    ("window", "t", "inside"),
    [
        (TimeWindow(), MONDAY, True),
        (TimeWindow(start_h=16, end_h=21), MONDAY.replace(hour=16), True),
        (TimeWindow(start_h=16, end_h=21), MONDAY.replace(hour=21), False),  # the end is exclusive
        (TimeWindow(start_h=16.5, end_h=19.5), MONDAY.replace(hour=16, minute=15), False),
        (TimeWindow(start_h=16.5, end_h=19.5), MONDAY.replace(hour=19, minute=15), True),
        (TimeWindow(weekdays=(0, 1, 2, 3, 4)), MONDAY + dt.timedelta(days=5), False),  # Saturday
        (TimeWindow(months=(1, 2, 12)), MONDAY, False),  # June
    ],
)
def test_time_window(window: TimeWindow, t: dt.datetime, inside: bool) -> None:
    assert window.contains(t) is inside


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"demand_charges": []}, "demand_charges"),
        ({"demand_charges": [{"price_per_kw": -1}]}, "demand_charges.0.price_per_kw"),
        ({"demand_interval_min": 20, "demand_charges": [{"price_per_kw": 1}]}, "demand_interval_min"),
        ({"demand_charges": [{"price_per_kw": 1, "period": "week"}]}, "demand_charges.0.period"),
        ({"demand_charges": [{"price_per_kw": 1, "windows": [{"start_h": 20, "end_h": 6}]}]},
         "demand_charges.0.windows.0"),
        ({"demand_charges": [{"price_per_kw": 1, "windows": [{"weekdays": [7]}]}]},
         "demand_charges.0.windows.0.weekdays"),
        ({"demand_charges": [{"price_per_kw": 1, "ratchet_share": 0.8}]}, "demand_charges.0"),  # no months
        ({"demand_charges": [{"price_per_kw": 1, "ratchet_share": 0.8, "ratchet_months": 11, "period": "year"}]},
         "demand_charges.0"),
        ({"demand_charges": [{"price_per_kw": 1}], "energy_price_per_kwh": 0.1, "export_price_per_kwh": 0.2}, ""),
        ({"demand_charges": [{"price_per_kw": 1, "spare": 1}]}, "demand_charges.0.spare"),
    ],
)
def test_invalid_tariffs_name_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Tariff.model_validate(doc)
    assert field in [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]


def test_built_ins_are_documented_and_the_default_is_todays_tariff() -> None:
    assert default_tariff().is_monthly_all_hours
    assert ControllerConfig().tariff == default_tariff()
    for name, built_in in BUILT_IN.items():
        assert built_in.name == name and built_in.description and built_in.source
        assert Tariff.model_validate(json.loads(built_in.model_dump_json())) == built_in  # a file round-trips
    assert {t.demand_interval_min for t in BUILT_IN.values()} == {15, 30, 60}
    assert {c.period for t in BUILT_IN.values() for c in t.demand_charges} == {"month", "year"}


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("us-tou", True), ("atypical-19", True), ("nowhere", False), (BUILT_IN["ratchet-80"].model_dump(), True)],
)
def test_the_config_takes_a_built_in_name_or_a_tariff(value: Any, accepted: bool) -> None:
    if accepted:
        assert isinstance(ControllerConfig(tariff=value).tariff, Tariff)
    else:
        with pytest.raises(ValidationError, match="unknown tariff 'nowhere'"):
            ControllerConfig(tariff=value)


async def test_the_twin_rejects_a_bad_tariff_naming_the_field() -> None:
    applied: list[ControllerConfig] = []

    async def apply(config: ControllerConfig) -> None:
        applied.append(config)

    twin = TwinConfig(ControllerConfig, apply)
    assert (await twin.patch({"tariff": "us-tou", "$version": 2})).status == "applied"
    outcome = await twin.patch({"tariff": {"demand_charges": [{"price_per_kw": 5, "windows": [
        {"start_h": 22, "end_h": 6}]}]}, "$version": 3})
    assert outcome.status == "rejected"
    assert [e["field"] for e in outcome.errors] == ["tariff.demand_charges.0.windows.0"]
    assert twin.current.tariff.name == "us-tou"  # the configuration in force is kept
    assert [c.tariff.name for c in applied] == ["us-tou"]


# ---------------------------------------------------------------- billed so far


def feed(ledger: DemandLedger, start: dt.datetime, quarters_kw: list[float]) -> None:
    for k, kw in enumerate(quarters_kw):
        ledger.add_quarter(start + dt.timedelta(seconds=k * QUARTER_S), kw, QUARTER_S)


@pytest.mark.parametrize(
    ("case", "tariff_", "quarters", "at", "free_kw"),
    [
        ("monthly: the month's peak", tariff(), [(MONDAY, [50, 80, 60])], MONDAY, 80.0),
        ("a new month starts with nothing billed", tariff(), [(MONDAY, [50, 80])], MONDAY.replace(month=7), 0.0),
        ("yearly: the year's peak carries over months", tariff(period="year"),
         [(MONDAY.replace(month=3), [90]), (MONDAY, [50])], MONDAY, 90.0),
        ("minimum billed demand", tariff(minimum_kw=60), [(MONDAY, [30])], MONDAY, 60.0),
        ("30-min interval: the mean of two quarters", Tariff(demand_interval_min=30, demand_charges=(
            DemandCharge(price_per_kw=1),)), [(MONDAY, [40, 100, 60, 60])], MONDAY, 70.0),
        ("60-min interval still open: nothing booked yet", Tariff(demand_interval_min=60, demand_charges=(
            DemandCharge(price_per_kw=1),)), [(MONDAY, [40, 100, 60])], MONDAY, 0.0),
        ("ratchet: 80 % of the highest of the previous months", tariff(ratchet_share=0.8, ratchet_months=11),
         [(MONDAY.replace(month=2), [100]), (MONDAY.replace(month=4), [50]), (MONDAY, [70])], MONDAY, 80.0),
        ("ratchet: older than its months is forgotten", tariff(ratchet_share=0.8, ratchet_months=2),
         [(MONDAY.replace(month=2), [100]), (MONDAY.replace(month=5), [50]), (MONDAY, [30])], MONDAY, 40.0),
        ("window: outside it nothing is billed", tariff(windows=(TimeWindow(start_h=16, end_h=21),)),
         [(MONDAY, [90])], MONDAY.replace(hour=12), None),
        ("window: only demand inside it counts", tariff(windows=(TimeWindow(start_h=16, end_h=21),)),
         [(MONDAY, [90]), (MONDAY.replace(hour=17), [40])], MONDAY.replace(hour=18), 40.0),
        ("two charges: the lower billed level binds", Tariff(demand_charges=(
            DemandCharge(price_per_kw=20, windows=(TimeWindow(start_h=16, end_h=21),)),
            DemandCharge(price_per_kw=8))), [(MONDAY, [90]), (MONDAY.replace(hour=17), [40])],
         MONDAY.replace(hour=18), 40.0),
        ("two charges: outside the window the all-hours one", Tariff(demand_charges=(
            DemandCharge(price_per_kw=20, windows=(TimeWindow(start_h=16, end_h=21),)),
            DemandCharge(price_per_kw=8))), [(MONDAY, [90]), (MONDAY.replace(hour=17), [40])],
         MONDAY.replace(hour=22), 90.0),
    ],
)
def test_free_kw(case: str, tariff_: Tariff, quarters: list[tuple[dt.datetime, list[float]]], at: dt.datetime,
                 free_kw: float | None) -> None:
    ledger = DemandLedger(tariff_)
    for start, values in quarters:
        feed(ledger, start, values)
    assert ledger.free_kw(at) == (None if free_kw is None else pytest.approx(free_kw)), case
    again = DemandLedger.from_record(tariff_, json.loads(json.dumps(ledger.to_record())))
    assert again.free_kw(at) == ledger.free_kw(at)  # what the module persists restores the same


# ---------------------------------------------------------------- the bill


def test_interval_demands_average_whole_clock_intervals() -> None:
    start = MONDAY + dt.timedelta(minutes=15)  # starts mid-hour: the first whole hour begins at 01:00
    values = [100.0, 100.0, 100.0, 10.0, 20.0, -30.0, 50.0, 7.0]
    assert interval_demands(start, QUARTER_S, values, 3600.0) == [(MONDAY + dt.timedelta(hours=1), 20.0)]


@pytest.mark.parametrize(
    ("case", "tariff_", "import_kw", "demand", "energy", "export"),
    [
        # one day of 15-minute steps: 96 values; 10/kW per month on the peak
        ("flat", Tariff(demand_charges=(DemandCharge(price_per_kw=10),), energy_price_per_kwh=0.2,
                        export_price_per_kwh=0.05), [40.0] * 96, 400.0, 40 * 24 * 0.2, 0.0),
        ("export is credited, not billed as demand", Tariff(demand_charges=(DemandCharge(price_per_kw=10),),
                                                            energy_price_per_kwh=0.2, export_price_per_kwh=0.05),
         [-40.0] * 48 + [20.0] * 48, 200.0, 20 * 12 * 0.2, 40 * 12 * 0.05),
        ("minimum billed demand", Tariff(demand_charges=(DemandCharge(price_per_kw=10, minimum_kw=50),)),
         [40.0] * 96, 500.0, 0.0, 0.0),
        ("TOU energy: the first matching price wins", Tariff(
            demand_charges=(DemandCharge(price_per_kw=0),), energy_price_per_kwh=0.1,
            energy_prices=(EnergyPrice(price_per_kwh=0.3, windows=(TimeWindow(start_h=0, end_h=12),)),
                           EnergyPrice(price_per_kwh=0.9, windows=(TimeWindow(start_h=0, end_h=24),)))),
         [10.0] * 96, 0.0, 10 * 12 * 0.3 + 10 * 12 * 0.9, 0.0),
    ],
)
def test_bill(case: str, tariff_: Tariff, import_kw: list[float], demand: float, energy: float, export: float
              ) -> None:
    result = bill(tariff_, MONDAY, QUARTER_S, import_kw)
    assert (result.demand, result.energy, result.export) == (pytest.approx(demand), pytest.approx(energy),
                                                            pytest.approx(export)), case
    assert result.total == pytest.approx(demand + energy - export)


def test_bill_of_a_ratchet_over_months() -> None:
    """Billed per month: max(month's peak, 80 % of the highest of the previous 11 months)."""
    ratchet = tariff(ratchet_share=0.8, ratchet_months=11)
    start = dt.datetime(2026, 1, 31, tzinfo=UTC)  # 31 Jan, then February (28 days), then 1 March
    days = [100.0] + [10.0] * 28 + [90.0]
    import_kw = [kw for kw in days for _ in range(96)]
    result = bill(ratchet, start, QUARTER_S, import_kw)
    assert result.billed_kw["1. demand"] == [pytest.approx(100.0), pytest.approx(80.0), pytest.approx(90.0)]


# ---------------------------------------------------------------- the controller against a tariff


def test_holds_refills_outside_the_billed_steps() -> None:
    envelope = BatteryEnvelope(energy_kwh=0.0, capacity_kwh=40.0, max_charge_kw=40.0, max_discharge_kw=40.0,
                               charge_efficiency=1.0, discharge_efficiency=1.0)
    net = [100.0] * 4 + [140.0] * 4  # an hour unbilled at 100 kW, then an hour billed at 140 kW
    billed = [False] * 4 + [True] * 4
    # billed all hours, the empty battery must charge below the threshold first: it can only hold 120
    assert plan_threshold(net, envelope) == pytest.approx(120.0, abs=0.5)
    # outside the window it refills at its rating (import 140 kW then, but not billed): 40 kWh to spend
    assert plan_threshold(net, envelope, active=billed) == pytest.approx(100.0, abs=0.5)
    assert holds(100.5, net, envelope, active=billed) and not holds(100.5, net, envelope)


# two half-hour windows at 100 kW, 50 kW between and after them; a full 25 kWh battery of 100 kW, lossless
TWO_WINDOWS_NET = [100.0, 100.0, 50.0, 50.0, 100.0, 100.0, 50.0, 50.0]
TWO_WINDOWS = [True, True, False, False, True, True, False, False]
FULL_25 = BatteryEnvelope(energy_kwh=25.0, capacity_kwh=25.0, max_charge_kw=100.0, max_discharge_kw=100.0,
                          charge_efficiency=1.0, discharge_efficiency=1.0)


@pytest.mark.parametrize(("ceiling_kw", "window_kw"), [
    (None, 50.0),  # refilled at the full rating between the windows: each window may spend the whole battery
    (200 / 3, 200 / 3),  # refilled only up to an all-hours limit of 66.7: 8.3 kWh back, each window holds 66.7
    (91.7, 54.2),  # 20.8 kWh back between them
    (150.0, 50.0),  # the refill is back at the battery's rating
])
def test_a_window_planned_under_another_charges_limit(ceiling_kw: float | None, window_kw: float) -> None:
    ceilings = None if ceiling_kw is None else [ceiling_kw] * len(TWO_WINDOWS_NET)
    assert plan_threshold(TWO_WINDOWS_NET, FULL_25, active=TWO_WINDOWS, ceilings_kw=ceilings, tolerance_kw=0.1
                          ) == pytest.approx(window_kw, abs=0.2)


@pytest.mark.parametrize(("prices_per_kw_year", "billed_kw", "expected_kw"), [
    # the window dear (120 against 10): the all-hours limit is planned up by half the charge rating, so the
    # refill between the windows lets the window hold 50 (cost 10 x 116.7 + 120 x 50 = 7,167 against
    # 8,667 for both at 66.7, 7,417 for a quarter of the rating, 7,667 for all of it)
    ([120.0, 10.0], [0.0, 0.0], [50.0, 200 / 3 + 50]),
    # the all-hours peak dear: nothing pays for raising it; the window is planned where it can be held
    ([10.0, 120.0], [0.0, 0.0], [200 / 3, 200 / 3]),
    # 120 kW billed already on all hours: the limit held there is 120, under which the refill is not slowed, so
    # each charge keeps its own plan
    ([10.0, 120.0], [0.0, 120.0], [50.0, 200 / 3]),
])
def test_charges_planned_together(prices_per_kw_year: list[float], billed_kw: list[float],
                                  expected_kw: list[float]) -> None:
    planned = plan_charges(TWO_WINDOWS_NET, FULL_25, [TWO_WINDOWS, None], prices_per_kw_year, billed_kw,
                           tolerance_kw=0.1)
    assert planned == [pytest.approx(kw, abs=0.2) for kw in expected_kw]


def test_charges_planned_alone_where_the_refill_is_not_slowed() -> None:
    net = [100.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # one window, then two hours of nothing to refill in
    planned = plan_charges(net, FULL_25, [TWO_WINDOWS[:4] + [False] * 4, None], [120.0, 10.0], [0.0, 0.0],
                           tolerance_kw=0.1)
    assert planned == [pytest.approx(plan_threshold(net, FULL_25, 0.1, active=TWO_WINDOWS[:4] + [False] * 4)),
                       pytest.approx(plan_threshold(net, FULL_25, 0.1))]


def step(controller: Controller, now: dt.datetime, import_kw: float, soc_pct: float = 50.0) -> Any:
    meter = MeterView("pcc", True, import_kw, None, None, None, 0.0)
    unit = BatteryView("bat", True, 0.0, soc_pct, 200.0, 100.0, 100.0, 0.0)
    return controller.step(SiteState(now, meter, (unit,)))


def test_outside_the_windows_there_is_no_limit_and_the_battery_refills() -> None:
    on_peak = Tariff(demand_charges=(DemandCharge(price_per_kw=20, windows=(TimeWindow(start_h=16, end_h=21),)),))
    controller = Controller(ControllerConfig(import_limit_kw=None, tariff=on_peak, balancing_enabled=False,
                                             reserve_soc_pct=95, recharge_kw=50, ramp_kw_per_s=1000))
    morning = step(controller, MONDAY.replace(hour=10), 120.0, soc_pct=40)
    assert (morning.status.limit_kw, morning.status.limit_source) == (None, "outside tariff windows")
    assert morning.battery_kw["bat"] == pytest.approx(-50.0)  # refills at recharge_kw, import unbounded
    # in the window: nothing billed yet and no history: the cold-start rule holds the present import, spread over
    # the rest of the day, and does not refill (unlike the default tariff's first quarter of a month, at night)
    evening = step(controller, MONDAY.replace(hour=17), 120.0, soc_pct=40)
    assert evening.status.limit_source == "rule" and evening.status.limit_kw < 120.0
    assert evening.battery_kw["bat"] > 0
    # once a quarter in the window is booked, it is the limit (the cold-start rule, no history yet)
    later = step(controller, MONDAY.replace(hour=17, minute=15), 90.0, soc_pct=40)
    booked_kw = 120.0 - evening.battery_kw["bat"]  # the quarter's import with the refill it was given
    assert later.status.limit_source == "rule" and later.status.limit_kw == pytest.approx(booked_kw)


@pytest.mark.parametrize(
    ("tariff_", "billed_kw"),
    [
        ("monthly-15", 100.0),  # the default: the month's peak so far (the peak set on the 1st)
        ("yearly-rlm", 150.0),  # the year's peak, set in May, is free to use again in June
        ("ratchet-80", 120.0),  # 80 % of May's 150 kW
    ],
)
def test_the_limit_never_goes_below_what_is_billed(tariff_: str, billed_kw: float) -> None:
    controller = Controller(ControllerConfig(import_limit_kw=None, tariff=tariff_, balancing_enabled=False))
    may = dt.datetime(2026, 5, 20, 12, tzinfo=UTC)
    for k in range(2):  # one quarter at 150 kW in May (and the next, so that it completes)
        # an empty battery (nothing to shave with; below the reserve, but no headroom to refill in): the meter's
        # import is what is booked
        step(controller, may + dt.timedelta(seconds=k * QUARTER_S), 150.0 if k == 0 else 50.0, soc_pct=5)
    june = dt.datetime(2026, 6, 1, 12, tzinfo=UTC)
    for k in range(2):
        step(controller, june + dt.timedelta(seconds=k * QUARTER_S), 100.0 if k == 0 else 50.0, soc_pct=95)
    decision = step(controller, june + dt.timedelta(hours=1), 60.0, soc_pct=95)
    assert decision.status.limit_kw == pytest.approx(billed_kw)
    record = json.loads(json.dumps(controller.memory.to_record()))
    assert ("tariff_ledger" in record) is (tariff_ != "monthly-15")  # the default keeps its old record


def test_an_on_peak_charge_is_planned_over_its_own_window() -> None:
    """A dear on-peak charge (16-21 h) beside a cheap all-hours one: the window is planned with the refill outside
    it, so in the window the limit is lower than the all-hours plan alone would hold."""
    on_peak = Tariff(demand_charges=(
        DemandCharge(name="on-peak", price_per_kw=20, windows=(TimeWindow(start_h=16, end_h=21),)),
        DemandCharge(name="all hours", price_per_kw=8)))
    limits: dict[str, dict[int, float]] = {}
    for name, tariff_ in (("two charges", on_peak), ("all hours only", tariff())):
        controller = Controller(ControllerConfig(import_limit_kw=None, tariff=tariff_, balancing_enabled=False))
        limits[name] = {}
        for k in range(9 * 96 + 72):  # nine days of quarters, then the tenth to 18:00
            now = MONDAY + dt.timedelta(seconds=k * QUARTER_S)
            load = 150.0 if 17 <= now.hour < 19 or 11 <= now.hour < 13 else 90.0  # a noon and an evening peak
            status = step(controller, now, load).status
            if k >= 9 * 96 and now.minute == 0:
                limits[name][now.hour] = status.limit_kw
    assert limits["two charges"][17] < limits["all hours only"][17]
    assert limits["two charges"][17] < limits["two charges"][12]  # the window is held lower than the noon peak


ON_PEAK_16_21 = DemandCharge(price_per_kw=20, windows=(TimeWindow(start_h=16, end_h=21),))
MORNING_AND_EVENING = DemandCharge(price_per_kw=120, period="year",
                                   windows=(TimeWindow(start_h=8, end_h=11), TimeWindow(start_h=17, end_h=20)))
ALL_HOURS_YEAR = DemandCharge(price_per_kw=120, period="year")


ALL_HOURS_CHEAP = DemandCharge(price_per_kw=10, period="year")
SPENDABLE_KWH = 0.35 * 200 * 0.95  # above the floor (40 % of 200 kWh, floor 5 %), at 0.95 one way
MISSING_KWH = (0.90 - 0.35) * 200 / 0.95  # to the ceiling (95 %), bought at 0.95 one way


@pytest.mark.parametrize(
    ("case", "charges", "hour", "limit_kw"),
    [
        ("an evening window: until it ends", (ON_PEAK_16_21,), 17, 120 - SPENDABLE_KWH / 4),
        ("beside an all-hours charge: the window still sets it", (ON_PEAK_16_21, ALL_HOURS_YEAR), 17,
         120 - SPENDABLE_KWH / 4),
        ("the window's last half hour: at least 2 h", (ON_PEAK_16_21,), 20.5, 120 - SPENDABLE_KWH / 2),
        # refilled at its rating between 11:00 and 17:00, the battery serves the first window alone: 2 h left
        ("two windows a day, in the first: refilled between them", (MORNING_AND_EVENING,), 9,
         120 - SPENDABLE_KWH / 2),
        ("all hours: until midnight, as before", (ALL_HOURS_YEAR,), 17, 120 - SPENDABLE_KWH / 7),
        # before the dear window, under a cheap all-hours charge: refilled just in time (two hours to 8:00)
        ("before a dearer window: refilled for it", (MORNING_AND_EVENING, ALL_HOURS_CHEAP), 6,
         120 + MISSING_KWH / 2),
        ("before a window no dearer: spread to midnight", (MORNING_AND_EVENING, ALL_HOURS_YEAR), 6,
         120 - SPENDABLE_KWH / 18),
    ],
)
def test_without_history_the_battery_is_spread_over_the_hours_its_window_bills(
        case: str, charges: tuple[DemandCharge, ...], hour: float, limit_kw: float) -> None:
    """The cold-start rule spreads the energy above the floor over the hours left today inside the windows of
    the windowed charge with the fewest of them (refilling between them), at least 2 h, and before a dearer
    window fills the battery for it."""
    controller = Controller(ControllerConfig(import_limit_kw=None, tariff=Tariff(demand_charges=charges),
                                             balancing_enabled=False, ramp_kw_per_s=1000))
    now = MONDAY.replace(hour=int(hour), minute=int(hour % 1 * 60))
    status = step(controller, now, 120.0, soc_pct=40).status
    assert status.limit_source == "rule"
    assert status.limit_kw == pytest.approx(limit_kw, abs=0.01)


@pytest.mark.parametrize(("tariff", "month", "counts"), [
    ("atypical-19", 6, [False, True]),  # June: no §19 window, the all-hours peak
    ("atypical-19", 1, [True, True]),
    ("us-tou", 7, [True, True]),
    ("us-tou", 12, [False, True]),
])
def test_charges_counting_in_a_month(tariff: str, month: int, counts: list[bool]) -> None:
    assert [c.counts_in_month(month) for c in BUILT_IN[tariff].demand_charges] == counts
