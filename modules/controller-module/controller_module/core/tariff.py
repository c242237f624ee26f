"""Tariffs as data: how a site's grid import is billed, for the controller's plan and the benchmark's bill.

A tariff has
- a demand interval (15, 30 or 60 minutes): demand is the mean import over each clock-aligned interval;
- one or more demand charges, each with a billing period (calendar month or calendar year), optional time
  windows in which demand counts (weekday on-peak hours, §19 StromNEV high-load windows), an optional
  ratchet (billed = max(this month's peak, share × the highest monthly peak of the previous N months)) and an
  optional minimum billed demand;
- energy prices by time of use and an export price, so that a bill is complete.

Times are read in the local time of the timestamps given (the site's clock), as a meter bills them.
Everything here is pure: no clock, no I/O. `DemandLedger` is what the controller carries: the billed demand
so far of each charge, i.e. the import up to which nothing more is billed (`free_kw`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = (0, 1, 2, 3, 4)
ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)
ALL_MONTHS = tuple(range(1, 13))


class TimeWindow(BaseModel):
    """Local clock hours [start_h, end_h) on the given weekdays of the given months."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    months: tuple[int, ...] = Field(ALL_MONTHS, description="Months it applies in, 1-12.")
    weekdays: tuple[int, ...] = Field(ALL_DAYS, description="Weekdays it applies on, 0 = Monday ... 6 = Sunday.")
    start_h: float = Field(0.0, ge=0, lt=24, description="First hour of the day inside the window (local time).")
    end_h: float = Field(24.0, gt=0, le=24, description="Hour the window ends (exclusive, local time).")

    @field_validator("months")
    @classmethod
    def _months(cls, months: tuple[int, ...]) -> tuple[int, ...]:
        if not months or any(not 1 <= m <= 12 for m in months):
            raise ValueError("months must be 1-12, at least one")
        return months

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        if not days or any(not 0 <= d <= 6 for d in days):
            raise ValueError("weekdays must be 0 (Monday) to 6 (Sunday), at least one")
        return days

    @model_validator(mode="after")
    def _order(self) -> TimeWindow:
        if self.end_h <= self.start_h:
            raise ValueError("end_h must be after start_h (split a window that wraps midnight in two)")
        return self

    def contains(self, t: dt.datetime) -> bool:
        hour = t.hour + t.minute / 60 + t.second / 3600
        return t.month in self.months and t.weekday() in self.weekdays and self.start_h <= hour < self.end_h


def _in_any(windows: Sequence[TimeWindow], t: dt.datetime) -> bool:
    return not windows or any(w.contains(t) for w in windows)


class DemandCharge(BaseModel):
    """A price on the largest interval demand of a billing period, counted only inside its windows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("demand", min_length=1, description="Label on the bill.")
    price_per_kw: float = Field(..., ge=0, le=100_000, description="Price per kW of billed demand per period.")
    period: Literal["month", "year"] = Field("month", description="Billing period: calendar month or year.")
    windows: tuple[TimeWindow, ...] = Field((), description="Demand counts only inside these; none: all hours.")
    ratchet_share: float = Field(
        0.0, ge=0, le=1, description="Ratchet: billed ≥ this share of the highest peak of the previous months.")
    ratchet_months: int = Field(0, ge=0, le=36, description="Ratchet: how many previous months it looks back.")
    minimum_kw: float = Field(0.0, ge=0, le=1_000_000, description="Minimum billed demand, kW.")

    @model_validator(mode="after")
    def _ratchet(self) -> DemandCharge:
        if (self.ratchet_share > 0) != (self.ratchet_months > 0):
            raise ValueError("a ratchet needs both ratchet_share > 0 and ratchet_months > 0")
        if self.ratchet_months and self.period != "month":
            raise ValueError("a ratchet looks back over months: it needs period 'month'")
        return self

    def counts_at(self, t: dt.datetime) -> bool:
        return _in_any(self.windows, t)

    def counts_in_month(self, month: int) -> bool:
        """Does demand count at some time of month `month` (1-12)?"""
        return not self.windows or any(month in w.months for w in self.windows)

    def period_key(self, t: dt.datetime) -> str:
        return f"{t.year:04d}" if self.period == "year" else f"{t.year:04d}-{t.month:02d}"

    @property
    def price_per_kw_year(self) -> float:
        """The price of a kW held for a year: what weighs one charge against another billed over other periods."""
        return self.price_per_kw * (1 if self.period == "year" else 12)


class EnergyPrice(BaseModel):
    """An import price that applies inside its windows (the first matching entry wins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price_per_kwh: float = Field(..., ge=0, le=100, description="Import energy price, per kWh.")
    windows: tuple[TimeWindow, ...] = Field(..., description="When this price applies (at least one).")

    @field_validator("windows")
    @classmethod
    def _some(cls, windows: tuple[TimeWindow, ...]) -> tuple[TimeWindow, ...]:
        # checked here, not by min_length: pydantic adds a spurious "too short" to any invalid item's error
        if not windows:
            raise ValueError("needs at least one window")
        return windows


class Tariff(BaseModel):
    """How grid import (and export) is billed."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="tariff")

    name: str = Field("custom", min_length=1, description="Short name.")
    description: str = Field("", description="What it models.")
    source: str = Field("", description="Where its rules come from (regulation, tariff sheet).")
    currency: str = Field("EUR", min_length=1, max_length=8, description="Currency of the prices.")
    demand_interval_min: Literal[15, 30, 60] = Field(
        15, description="Demand is the mean import over clock-aligned intervals of this length, minutes.")
    demand_charges: tuple[DemandCharge, ...] = Field(..., description="Demand charges, billed side by side (1-8).")
    energy_price_per_kwh: float = Field(0.0, ge=0, le=100, description="Import price outside every energy window.")
    energy_prices: tuple[EnergyPrice, ...] = Field((), description="Time-of-use import prices (first match wins).")
    export_price_per_kwh: float = Field(0.0, ge=0, le=100, description="Paid per kWh exported.")

    @field_validator("demand_charges")
    @classmethod
    def _some_charges(cls, charges: tuple[DemandCharge, ...]) -> tuple[DemandCharge, ...]:
        # checked here, not by min_length: pydantic adds a spurious "too short" to any invalid item's error
        if not 1 <= len(charges) <= 8:
            raise ValueError("needs 1 to 8 demand charges")
        return charges

    @model_validator(mode="after")
    def _export_below_import(self) -> Tariff:
        lowest = min([self.energy_price_per_kwh, *(p.price_per_kwh for p in self.energy_prices)])
        if self.export_price_per_kwh > lowest + 1e-12:
            # importing to export would earn money: not a tariff a battery controller can be fair about
            raise ValueError(f"export_price_per_kwh ({self.export_price_per_kwh:g}) above the lowest import "
                             f"price ({lowest:g}) is not supported")
        return self

    @property
    def interval_s(self) -> float:
        return self.demand_interval_min * 60.0

    def energy_price_at(self, t: dt.datetime) -> float:
        for price in self.energy_prices:
            if _in_any(price.windows, t):
                return price.price_per_kwh
        return self.energy_price_per_kwh

    def demand_counts_at(self, t: dt.datetime) -> bool:
        """Does demand at `t` count toward any charge?"""
        return any(c.counts_at(t) for c in self.demand_charges)

    @property
    def is_monthly_all_hours(self) -> bool:
        """The controller's historic tariff: one all-hours monthly charge on 15-minute demand, nothing else."""
        return (self.demand_interval_min == 15 and len(self.demand_charges) == 1
                and not self.demand_charges[0].windows and self.demand_charges[0].period == "month"
                and self.demand_charges[0].ratchet_months == 0 and self.demand_charges[0].minimum_kw == 0)


# ---------------------------------------------------------------- built-in tariffs
# Prices are round, illustrative figures of the right order; the rules (interval, period, windows, ratchet,
# minimum) are the documented part. Sources are given per tariff.

_SUMMER = (6, 7, 8, 9)
_WINTER_HIGH_LOAD = (TimeWindow(months=(1, 2, 11, 12), weekdays=WEEKDAYS, start_h=8.0, end_h=12.0),
                     TimeWindow(months=(1, 2, 11, 12), weekdays=WEEKDAYS, start_h=16.5, end_h=19.5))
_SPRING_AUTUMN_HIGH_LOAD = (TimeWindow(months=(3, 10), weekdays=WEEKDAYS, start_h=10.0, end_h=12.0),
                            TimeWindow(months=(3, 10), weekdays=WEEKDAYS, start_h=18.0, end_h=19.5))

BUILT_IN: dict[str, Tariff] = {t.name: t for t in (
    Tariff(
        name="monthly-15",
        description="largest 15-minute mean import of each calendar month (the controller's default)",
        source="Belgium (Flanders) capacity tariff, monthly peak of 15-minute import (VREG, "
               "https://www.vreg.be/nl/faq/capaciteitstarief); most US commercial demand charges; BOPTEST's "
               "peak demand definition",
        demand_charges=(DemandCharge(name="monthly peak", price_per_kw=12.0),),
        energy_price_per_kwh=0.20, export_price_per_kwh=0.07,
    ),
    Tariff(
        name="monthly-30",
        description="largest 30-minute mean import of each calendar month",
        source="30-minute demand intervals as in many US utility schedules (billing demand 'the highest "
               "30-minute integrated kW in the month')",
        demand_interval_min=30,
        demand_charges=(DemandCharge(name="monthly peak", price_per_kw=12.0),),
        energy_price_per_kwh=0.20, export_price_per_kwh=0.07,
    ),
    Tariff(
        name="monthly-60",
        description="largest 60-minute mean import of each calendar month",
        source="hourly demand intervals as in some cooperatives' and UK maximum-demand tariffs",
        demand_interval_min=60,
        demand_charges=(DemandCharge(name="monthly peak", price_per_kw=12.0),),
        energy_price_per_kwh=0.20, export_price_per_kwh=0.07,
    ),
    Tariff(
        name="yearly-rlm",
        description="German RLM customer: Leistungspreis on the year's largest 15-minute mean import",
        source="§17 StromNEV (Jahresleistungspreis on the annual peak of the 15-minute registered load, "
               "RLM metering); price of the order of DSO price sheets for Benutzungsdauer ≥ 2,500 h",
        currency="EUR",
        demand_charges=(DemandCharge(name="annual peak", price_per_kw=120.0, period="year"),),
        energy_price_per_kwh=0.18, export_price_per_kwh=0.07,
    ),
    Tariff(
        name="atypical-19",
        description="§19 (2) 1 StromNEV atypical grid use: the Leistungspreis on the year's peak inside the DSO's "
                    "seasonal high-load windows (weekdays), plus a small all-hours annual charge",
        source="§19 Abs. 2 Satz 1 StromNEV; BNetzA determination BK4-13-739 (high-load windows per season and "
               "voltage level, published by each DSO, e.g. https://www.eg-hasbergen.de/aktuelles/"
               "hochlastzeitfenster.html: weekdays only). Windows here are an example of a low-voltage level's",
        demand_charges=(
            DemandCharge(name="high-load window peak", price_per_kw=120.0, period="year",
                         windows=_WINTER_HIGH_LOAD + _SPRING_AUTUMN_HIGH_LOAD),
            DemandCharge(name="annual peak", price_per_kw=10.0, period="year"),
        ),
        energy_price_per_kwh=0.18, export_price_per_kwh=0.07,
    ),
    Tariff(
        name="ratchet-80",
        description="monthly 15-minute peak with a ratchet: billed = max(this month's peak, 80 % of the highest "
                    "peak of the previous 11 months)",
        source="US demand ratchets ('billing demand is the greater of the month's maximum demand or a share of "
               "the highest demand of the preceding eleven months', e.g. in rate schedules collected at "
               "https://www.lawinsider.com/dictionary/billing-demand)",
        currency="USD",
        demand_charges=(DemandCharge(name="billing demand", price_per_kw=15.0, ratchet_share=0.8,
                                     ratchet_months=11),),
        energy_price_per_kwh=0.12, export_price_per_kwh=0.04,
    ),
    Tariff(
        name="us-tou",
        description="on-peak demand (weekdays 16-21 h, June-September) plus all-hours monthly demand, a minimum "
                    "billed demand and time-of-use energy",
        source="the structure of US commercial TOU schedules (e.g. PG&E B-19: maximum demand plus summer "
               "peak-period demand 4-9 p.m., TOU energy); minimum billed demand as in many schedules",
        currency="USD",
        demand_charges=(
            DemandCharge(name="on-peak demand", price_per_kw=20.0,
                         windows=(TimeWindow(months=_SUMMER, weekdays=WEEKDAYS, start_h=16.0, end_h=21.0),)),
            DemandCharge(name="maximum demand", price_per_kw=8.0, minimum_kw=20.0),
        ),
        energy_price_per_kwh=0.10,
        energy_prices=(EnergyPrice(price_per_kwh=0.25, windows=(TimeWindow(weekdays=WEEKDAYS, start_h=16.0,
                                                                           end_h=21.0),)),),
        export_price_per_kwh=0.03,
    ),
)}
DEFAULT_TARIFF_NAME = "monthly-15"


def default_tariff() -> Tariff:
    return BUILT_IN[DEFAULT_TARIFF_NAME]


def resolve(value: Any) -> Any:
    """A built-in tariff's name → the tariff; anything else unchanged (for the model to validate)."""
    if isinstance(value, str):
        if value not in BUILT_IN:
            raise ValueError(f"unknown tariff {value!r}; built in: {', '.join(BUILT_IN)}")
        return BUILT_IN[value]
    return value


# ---------------------------------------------------------------- what is billed so far


def interval_start_s(t_s: float, interval_s: float) -> float:
    return t_s - (t_s % interval_s)


@dataclass
class DemandLedger:
    """The billed demand so far of each of a tariff's charges, fed with completed demand intervals.

    `free_kw(t)` is the import up to which nothing more is billed at `t`: for every charge counting at `t`,
    what it bills already this period (its period peak, the ratchet's share of earlier months, its minimum);
    the lowest of them, since exceeding any one raises the bill. None when no charge counts at `t` (the battery
    may refill freely). Intervals are built from the controller's completed billing quarters."""

    tariff: Tariff
    periods: list[str] = field(default_factory=list)  # per charge: the period key of its peak
    peaks_kw: list[float] = field(default_factory=list)  # per charge: the largest counted demand this period
    month_peaks_kw: list[dict[str, float]] = field(default_factory=list)  # per charge: month → peak, for ratchets
    interval_start: float | None = None  # epoch s of the interval being summed
    interval_kws: float = 0.0  # Σ quarter mean × seconds so far in that interval
    interval_tz: dt.tzinfo | None = None

    def __post_init__(self) -> None:
        n = len(self.tariff.demand_charges)
        self.periods = self.periods or [""] * n
        self.peaks_kw = self.peaks_kw or [0.0] * n
        self.month_peaks_kw = self.month_peaks_kw or [{} for _ in range(n)]

    def add_quarter(self, start: dt.datetime, mean_kw: float, quarter_s: float = 900.0) -> None:
        """A completed quarter of grid import; closes the demand interval when the quarter ends it."""
        interval = self.tariff.interval_s
        t_s = start.timestamp()
        begin = interval_start_s(t_s, interval)
        if self.interval_start is not None and begin != self.interval_start:
            self.interval_kws = 0.0  # a gap: the interval before it is dropped, not billed half-empty
        self.interval_start, self.interval_tz = begin, start.tzinfo
        self.interval_kws += max(0.0, mean_kw) * quarter_s
        if t_s + quarter_s >= begin + interval - 1e-6:
            self.add_interval(dt.datetime.fromtimestamp(begin, start.tzinfo), self.interval_kws / interval)
            self.interval_start, self.interval_kws = None, 0.0

    def add_interval(self, start: dt.datetime, demand_kw: float) -> None:
        for i, charge in enumerate(self.tariff.demand_charges):
            key = charge.period_key(start)
            if key != self.periods[i]:
                self.periods[i], self.peaks_kw[i] = key, 0.0
            if charge.counts_at(start):
                self.peaks_kw[i] = max(self.peaks_kw[i], demand_kw)
                if charge.ratchet_months:
                    month = f"{start.year:04d}-{start.month:02d}"
                    book = self.month_peaks_kw[i]
                    book[month] = max(book.get(month, 0.0), demand_kw)
                    for old in sorted(book)[:-(charge.ratchet_months + 1)]:
                        del book[old]

    def billed_kw(self, index: int, t: dt.datetime) -> float:
        """What charge `index` bills already for the period that contains `t`."""
        charge = self.tariff.demand_charges[index]
        key = charge.period_key(t)
        peak = self.peaks_kw[index] if self.periods[index] == key else 0.0
        billed = max(peak, charge.minimum_kw)
        if charge.ratchet_months:
            billed = max(billed, charge.ratchet_share * max(
                (kw for month, kw in self.month_peaks_kw[index].items()
                 if _months_before(key, month) in range(1, charge.ratchet_months + 1)), default=0.0))
        return billed

    def free_kw(self, t: dt.datetime) -> float | None:
        counted = [self.billed_kw(i, t) for i, c in enumerate(self.tariff.demand_charges) if c.counts_at(t)]
        return min(counted) if counted else None

    def to_record(self) -> dict[str, Any]:
        return {"periods": self.periods, "peaks_kw": self.peaks_kw, "month_peaks_kw": self.month_peaks_kw}

    @classmethod
    def from_record(cls, tariff: Tariff, record: dict[str, Any]) -> DemandLedger:
        ledger = cls(tariff)
        if len(record.get("periods", [])) == len(tariff.demand_charges):  # else: another tariff's, start afresh
            ledger.periods = [str(p) for p in record["periods"]]
            ledger.peaks_kw = [float(p) for p in record["peaks_kw"]]
            ledger.month_peaks_kw = [{str(k): float(v) for k, v in book.items()} for book in record["month_peaks_kw"]]
        return ledger


def _months_before(key: str, month: str) -> int:
    """How many months `month` (YYYY-MM) lies before the period `key` (YYYY-MM)."""
    year, mon = int(key[:4]), int(key[5:7])
    other_year, other_mon = int(month[:4]), int(month[5:7])
    return (year - other_year) * 12 + (mon - other_mon)


# ---------------------------------------------------------------- the bill


@dataclass(frozen=True)
class Bill:
    demand: float  # Σ demand charges
    energy: float  # import energy
    export: float  # paid for export (a credit, ≥ 0)
    demand_by_charge: dict[str, float]
    billed_kw: dict[str, list[float]]  # per charge: billed demand of each period, in order

    @property
    def total(self) -> float:
        return self.demand + self.energy - self.export


def interval_demands(start: dt.datetime, step_s: float, import_kw: Sequence[float], interval_s: float
                     ) -> list[tuple[dt.datetime, float]]:
    """(interval start, mean import) of each complete clock-aligned interval; export counts as zero import."""
    per = round(interval_s / step_s)
    if per < 1 or abs(per * step_s - interval_s) > 1e-6:
        raise ValueError(f"a {interval_s:g} s interval is not a whole number of {step_s:g} s steps")
    skip = 0
    first_s = start.timestamp()
    while (first_s + skip * step_s) % interval_s and skip < per:
        skip += 1
    out = []
    for i in range(skip, len(import_kw) - per + 1, per):
        mean = sum(max(0.0, import_kw[j]) for j in range(i, i + per)) / per
        out.append((start + dt.timedelta(seconds=i * step_s), mean))
    return out


def bill(tariff: Tariff, start: dt.datetime, step_s: float, import_kw: Sequence[float]) -> Bill:
    """The bill of a span of steps of mean grid import (negative: export), every period in it billed whole."""
    demands = interval_demands(start, step_s, import_kw, tariff.interval_s)
    demand_total = 0.0
    by_charge: dict[str, float] = {}
    billed: dict[str, list[float]] = {}
    for i, charge in enumerate(tariff.demand_charges):
        ledger = DemandLedger(tariff.model_copy(update={"demand_charges": (charge,)}))
        amounts: list[float] = []
        key = ""
        last: dt.datetime | None = None
        for t, kw in demands:
            if charge.period_key(t) != key and last is not None:
                amounts.append(ledger.billed_kw(0, last))
            key, last = charge.period_key(t), t
            ledger.add_interval(t, kw)
        if last is not None:
            amounts.append(ledger.billed_kw(0, last))
        label = f"{i + 1}. {charge.name}"
        billed[label] = amounts
        by_charge[label] = charge.price_per_kw * sum(amounts)
        demand_total += by_charge[label]
    step_h = step_s / 3600.0
    energy = export = 0.0
    for k, kw in enumerate(import_kw):
        if kw > 0:
            energy += kw * step_h * tariff.energy_price_at(start + dt.timedelta(seconds=k * step_s))
        else:
            export -= kw * step_h * tariff.export_price_per_kwh
    return Bill(demand_total, energy, export, by_charge, billed)


def masks(tariff: Tariff, times: Iterable[dt.datetime]) -> tuple[list[list[bool]], list[float]]:
    """Per charge, whether demand at each time counts; and the import price at each time."""
    counts: list[list[bool]] = [[] for _ in tariff.demand_charges]
    prices: list[float] = []
    for t in times:
        for i, charge in enumerate(tariff.demand_charges):
            counts[i].append(charge.counts_at(t))
        prices.append(tariff.energy_price_at(t))
    return counts, prices
