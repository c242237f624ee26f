"""The planner's forecast: load and PV learnt apart, today's level, and records from older versions."""

from __future__ import annotations

import datetime as dt

import pytest

from controller_module.core.planner import QUARTERS_PER_DAY, LoadHistory

MONDAY = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)  # a Monday
QUARTER = dt.timedelta(minutes=15)


def office_kw(q: int) -> float:
    """A workday load: 50 kW at night, 150 kW from 08:00 to 18:00."""
    return 150.0 if 32 <= q < 72 else 50.0


def sun_kw(q: int) -> float:
    """A sunny day's PV: 0 at night, a 100 kW plateau from 10:00 to 14:00."""
    return 100.0 if 40 <= q < 56 else 0.0


def learnt(days: int = 15, k_sigma: float = 0.0) -> LoadHistory:
    """Three weeks of identical workdays (weekends too: only workdays are forecast below)."""
    history = LoadHistory(k_sigma=k_sigma)
    for k in range(days * QUARTERS_PER_DAY):
        q = k % QUARTERS_PER_DAY
        history.add(MONDAY + k * QUARTER, office_kw(q), sun_kw(q))
    return history


def feed_today(history: LoadHistory, day: dt.datetime, until_q: int, load_factor: float, pv_factor: float) -> None:
    for q in range(until_q):
        history.add(day + q * QUARTER, office_kw(q) * load_factor, sun_kw(q) * pv_factor)


@pytest.mark.parametrize(
    ("case", "load_factor", "pv_factor", "noon_net_kw"),
    [
        # nothing unusual today: the forecast is the learnt day, net = 150 − 100
        ("as usual", 1.0, 1.0, (50.0, 50.0)),
        # a morning 20 % above the usual foretells a midday 20 % above it (180 − 100), not just the next hour
        ("busy day", 1.2, 1.0, (70.0, 82.0)),
        ("quiet day", 0.8, 1.0, (18.0, 30.0)),
        # a cloudy morning (PV at 30 %) lowers today's PV, not the load: the noon net load rises
        ("cloudy morning", 1.0, 0.3, (85.0, 121.0)),
    ],
)
def test_todays_level_reaches_the_rest_of_the_day(
    case: str, load_factor: float, pv_factor: float, noon_net_kw: tuple[float, float]
) -> None:
    history = learnt()
    today = MONDAY + dt.timedelta(days=21)  # a Monday
    feed_today(history, today, 44, load_factor, pv_factor)  # up to 11:00, PV has shown itself for an hour
    forecast = history.forecast(today + 48 * QUARTER, 4)  # 12:00-13:00
    assert forecast is not None
    low, high = noon_net_kw
    assert all(low <= value <= high for value in forecast), (case, forecast)


def test_tomorrow_keeps_part_of_todays_level() -> None:
    history = learnt()
    today = MONDAY + dt.timedelta(days=21)
    feed_today(history, today, QUARTERS_PER_DAY, 1.2, 1.0)
    tomorrow_noon = history.forecast(today + dt.timedelta(days=1) + 48 * QUARTER, 1)
    assert tomorrow_noon is not None
    usual_noon = 150.0 - 100.0
    # level_carry of the deviation comes back, tempered: between the usual and today's level
    assert usual_noon < tomorrow_noon[0] < 180.0 - 100.0


def test_envelope_widens_with_the_spread_today_does_not_explain() -> None:
    steady, wobbly = LoadHistory(k_sigma=1.0), LoadHistory(k_sigma=1.0)
    for k in range(21 * QUARTERS_PER_DAY):
        q = k % QUARTERS_PER_DAY
        wobble = 10.0 if (k + k // QUARTERS_PER_DAY) % 2 else -10.0  # quarter to quarter: no day level explains it
        steady.add(MONDAY + k * QUARTER, office_kw(q), 0.0)
        wobbly.add(MONDAY + k * QUARTER, office_kw(q) + wobble, 0.0)
    start = MONDAY + dt.timedelta(days=28, hours=1)
    calm, wide = steady.forecast(start, 8), wobbly.forecast(start, 8)
    assert calm is not None and wide is not None
    assert all(w > c + 3 for c, w in zip(calm, wide, strict=True))


@pytest.mark.parametrize(
    ("case", "record"),
    [
        ("today's record", None),
        # a record written by the version that learnt the net load only (no PV fields, no level)
        ("older record", {"alpha": 0.25, "k_sigma": 0.5, "mean": [[100.0] * 96] * 3, "var": [[4.0] * 96] * 3,
                          "quarters_seen": 9000, "bias_alpha": 0.3, "bias_decay": 0.9, "bias_kw": 2.0}),
        # fields a later version may add are ignored rather than refused
        ("newer record", {"mean": [[100.0] * 96] * 3, "some_future_field": 1}),
    ],
)
def test_history_records_restore(case: str, record: dict | None) -> None:
    history = learnt(days=8)
    source = history.to_record() if record is None else record
    restored = LoadHistory.from_record(source)
    forecast = restored.forecast(MONDAY + dt.timedelta(days=14), 96)
    assert forecast is not None and len(forecast) == 96
    if record is None:
        assert forecast == history.forecast(MONDAY + dt.timedelta(days=14), 96)


def test_forecast_is_load_minus_pv_with_todays_levels() -> None:
    history = learnt()
    today = MONDAY + dt.timedelta(days=21)
    feed_today(history, today, 44, 1.2, 0.5)
    level, pv_level = history.day_levels(today.date())
    next_level, next_pv_level = history.day_levels(today.date() + dt.timedelta(days=1))
    assert level > 1.1 and pv_level < 0.8  # busy and cloudy so far
    assert next_level == pytest.approx(1.0 + history.level_carry * (level - 1.0)) and next_pv_level == 1.0
    start = today + 44 * QUARTER
    parts, net = history.forecast_parts(start, 96), history.forecast(start, 96)
    assert parts is not None and net is not None
    assert net == [load - pv for load, pv in zip(*parts, strict=True)]


@pytest.mark.parametrize(
    ("case", "until_q", "prior", "prior_weight_q", "expected"),
    [
        # today's first quarter, before any PV: the prior itself (the mean's 1, or a weather forecast's level)
        ("00:15, no forecast", 1, 1.0, None, 1.0),
        ("00:15, a forecast of 0.6", 1, 0.6, None, 0.6),
        # 11:00, four quarters of PV at half the mean (200 of 400 kW·q); the prior weighs 2 quarters of the
        # 100 kW peak's half: (1·100 + 200) / (100 + 400)
        ("11:00, no forecast", 44, 1.0, None, 0.6),
        ("11:00, a forecast of 0.2", 44, 0.2, None, (0.2 * 100 + 200) / 500),
        # a forecast trusted as 8 quarters: (0.2·400 + 200) / (400 + 400)
        ("11:00, a forecast of 0.2 weighing 8 quarters", 44, 0.2, 8.0, (0.2 * 400 + 200) / 800),
    ],
)
def test_todays_pv_level_is_pulled_toward_its_prior(
    case: str, until_q: int, prior: float, prior_weight_q: float | None, expected: float
) -> None:
    history = learnt()
    feed_today(history, MONDAY + dt.timedelta(days=21), until_q, 1.0, 0.5)
    assert history.pv_level(prior, prior_weight_q) == pytest.approx(expected, rel=1e-3), case
