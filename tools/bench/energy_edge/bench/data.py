"""Inputs of the peak-shaving benchmark: load and PV as 15-minute means, from CSV files or built-in scenarios.

A built-in scenario is a BDEW standard load profile (demandlib, through the simulator's own
`demandlib_load`, which contains demandlib 0.2.2's global `warnings.simplefilter("error")`) with seeded
noise, and PV computed from a weather file that demandlib or pvlib ships (solar position and transposition
from pvlib). Noise matters: the standard profiles repeat every workday exactly, which would flatter any
forecast. All series are in local standard time (no daylight-saving shifts), as the BDEW profiles and the
weather files are.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

STEP_S = 900.0
STEP_H = STEP_S / 3600.0
QUARTERS_PER_DAY = 96


class DataError(ValueError):
    """An input file or scenario cannot be read or built."""


@dataclass(frozen=True)
class SiteSeries:
    """Load and PV of one site, as means over consecutive 15-minute intervals starting at `start`."""

    name: str
    start: dt.datetime  # timezone-aware start of the first interval
    load_kw: np.ndarray
    pv_kw: np.ndarray

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise DataError("the start of a series needs a UTC offset")
        if self.load_kw.shape != self.pv_kw.shape or self.load_kw.ndim != 1 or self.load_kw.size == 0:
            raise DataError("load and PV need the same non-zero number of 15-minute values")

    @property
    def steps(self) -> int:
        return int(self.load_kw.size)

    @property
    def net_kw(self) -> np.ndarray:
        """Grid import without a battery (negative: export)."""
        net: np.ndarray = self.load_kw - self.pv_kw
        return net

    def time(self, index: int) -> dt.datetime:
        return self.start + dt.timedelta(seconds=STEP_S * index)

    def month_index(self) -> tuple[list[str], np.ndarray]:
        """Calendar months in local time: their labels (YYYY-MM) and, per step, the index of its month."""
        labels: list[str] = []
        per_step = np.empty(self.steps, dtype=np.int64)
        for i in range(self.steps):
            label = self.time(i).strftime("%Y-%m")
            if not labels or labels[-1] != label:
                labels.append(label)
            per_step[i] = len(labels) - 1
        return labels, per_step

    def window(self, start: dt.date | None, days: float | None) -> SiteSeries:
        """The part from local midnight of `start` (default: the beginning) for `days` (default: to the end)."""
        first = 0
        if start is not None:
            begin = dt.datetime(start.year, start.month, start.day, tzinfo=self.start.tzinfo)
            first = max(0, math.ceil((begin - self.start).total_seconds() / STEP_S))
        last = self.steps if days is None else min(self.steps, first + round(days * QUARTERS_PER_DAY))
        if last <= first:
            raise DataError(f"{self.name}: no data in the requested span")
        return replace(self, start=self.time(first), load_kw=self.load_kw[first:last].copy(),
                       pv_kw=self.pv_kw[first:last].copy())


# ---------------------------------------------------------------- CSV


def _parse_timestamp(text: str, default_tz: dt.tzinfo) -> dt.datetime:
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    stamp = dt.datetime.fromisoformat(text)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=default_tz)


def read_power_csv(path: Path, default_tz: dt.tzinfo = dt.timezone.utc) -> tuple[dt.datetime, np.ndarray]:
    """`timestamp,power_kw` in 15-minute steps (each value the mean of the interval starting at its stamp)."""
    stamps: list[dt.datetime] = []
    values: list[float] = []
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = [c.strip() for c in reader.fieldnames or []]
            if "timestamp" not in header or "power_kw" not in header:
                raise DataError(f"{path}: needs columns timestamp,power_kw; has {header}")
            for lineno, row in enumerate(reader, start=2):
                clean = {k.strip(): v for k, v in row.items() if k is not None}
                try:
                    stamps.append(_parse_timestamp(clean["timestamp"], default_tz))
                    values.append(float(clean["power_kw"]))
                except (TypeError, ValueError) as exc:
                    raise DataError(f"{path}:{lineno}: {exc}") from exc
    except OSError as exc:
        raise DataError(f"{path}: {exc}") from exc
    if not stamps:
        raise DataError(f"{path}: no rows")
    for lineno, (a, b) in enumerate(itertools.pairwise(stamps), start=3):
        if (b - a).total_seconds() != STEP_S:
            raise DataError(f"{path}:{lineno}: steps must be 15 minutes, found {b - a} after {a.isoformat()}")
    array = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(array)):
        raise DataError(f"{path}: values must be finite numbers")
    return stamps[0], array


def series_from_csv(load_path: Path, pv_path: Path | None, name: str | None = None) -> SiteSeries:
    """Load (and PV, else none) from CSV files; only the span both cover is kept."""
    load_start, load = read_power_csv(load_path)
    if pv_path is None:
        return SiteSeries(name or load_path.stem, load_start, load, np.zeros_like(load))
    pv_start, pv = read_power_csv(pv_path, load_start.tzinfo or dt.timezone.utc)
    offset_steps = (pv_start - load_start).total_seconds() / STEP_S
    if offset_steps != round(offset_steps):
        raise DataError(f"{pv_path}: its quarters do not line up with {load_path}'s")
    shift = round(offset_steps)
    start_step = max(0, shift)  # in the load's steps
    end_step = min(load.size, shift + pv.size)
    if end_step <= start_step:
        raise DataError(f"{load_path} and {pv_path} do not overlap")
    return SiteSeries(name or load_path.stem, load_start + dt.timedelta(seconds=STEP_S * start_step),
                      load[start_step:end_step].copy(), pv[start_step - shift:end_step - shift].copy())


def write_power_csv(path: Path, start: dt.datetime, power_kw: np.ndarray) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "power_kw"])
        for i, value in enumerate(power_kw):
            writer.writerow([(start + dt.timedelta(seconds=STEP_S * i)).isoformat(), f"{value:.4f}"])


# ---------------------------------------------------------------- load: BDEW profile with seeded noise


@dataclass(frozen=True)
class LoadNoise:
    """Multiplicative noise on a standard profile, and random extra loads (a machine, a heat pump, a charger).

    - day factor: one factor per calendar day, correlated from day to day (weather, occupancy);
    - intraday: an AR(1) series over quarters (who is in, what runs);
    - events: extra loads starting at random in working hours, of random size and duration; they are
      what sets many real monthly peaks and no profile predicts them.
    """

    day_sigma: float = 0.08
    day_correlation: float = 0.6
    quarter_sigma: float = 0.05
    quarter_tau_h: float = 1.0
    events_per_day: float = 0.25
    event_kw_range: tuple[float, float] = (0.05, 0.20)  # of the profile's peak
    event_hours_range: tuple[float, float] = (0.5, 2.0)


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """A stationary AR(1) series with unit variance."""
    shocks = rng.standard_normal(n) * math.sqrt(1.0 - phi * phi)
    out = np.empty(n)
    out[0] = rng.standard_normal()
    for k in range(1, n):
        out[k] = phi * out[k - 1] + shocks[k]
    return out


def noisy_load(profile_kw: np.ndarray, seed: int, noise: LoadNoise) -> np.ndarray:
    """The profile (starting at midnight) times day and quarter noise, plus random events; never negative."""
    rng = np.random.default_rng([seed, 0xB0])
    days = math.ceil(profile_kw.size / QUARTERS_PER_DAY)
    day_factor = 1.0 + noise.day_sigma * _ar1(rng, days, noise.day_correlation)
    per_step_day = np.repeat(day_factor, QUARTERS_PER_DAY)[: profile_kw.size]
    phi = math.exp(-STEP_H / noise.quarter_tau_h)
    quarter_factor = 1.0 + noise.quarter_sigma * _ar1(rng, profile_kw.size, phi)
    load = profile_kw * np.clip(per_step_day * quarter_factor, 0.3, None)
    peak = float(profile_kw.max())
    for day in range(days):
        for _ in range(rng.poisson(noise.events_per_day)):
            start = day * QUARTERS_PER_DAY + int(rng.integers(6 * 4, 20 * 4))
            length = max(1, round(rng.uniform(*noise.event_hours_range) * 4))
            load[start:start + length] += rng.uniform(*noise.event_kw_range) * peak
    clipped: np.ndarray = np.clip(load, 0.0, None)
    return clipped


def bdew_profile_kw(slp: str, annual_kwh: float, year: int) -> np.ndarray:
    """A BDEW standard load profile from demandlib (the simulator's function), 15-minute means from Jan 1."""
    from energy_edge.sim.profiles import ProfileError, demandlib_load
    from energy_edge.sim.scenario import ProfileSpec

    try:
        profile = demandlib_load(ProfileSpec(source="demandlib", slp=slp, annual_kwh=annual_kwh), year)
    except ProfileError as exc:
        raise DataError(str(exc)) from exc
    return np.asarray(profile.values, dtype=float)


# ---------------------------------------------------------------- PV from a weather file


@dataclass(frozen=True)
class Weather:
    """Hourly weather in local standard time, from Jan 1 00:00: irradiance (W/m2) and air temperature."""

    name: str
    latitude: float
    longitude: float
    utc_offset_h: float
    ghi_w_m2: np.ndarray
    dhi_w_m2: np.ndarray
    dni_w_m2: np.ndarray | None  # None: derived from GHI, DHI and the sun's height
    temp_air_c: np.ndarray


def _dms(text: str) -> float:
    degrees, _, minutes = text.partition("°")
    return float(degrees) + float(minutes.strip("'NOEWS ") or 0) / 60.0


def read_dwd_try(region: int) -> Weather:
    """A DWD test reference year (TRY 2010) that demandlib ships; times are CET, hour-ending."""
    import demandlib.vdi

    path = Path(demandlib.vdi.__file__).parent / "resources_weather" / f"TRY2010_{region:02d}_Jahr.dat"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(f"no DWD TRY region {region}: {exc}") from exc
    station = next((ln.split(":", 1)[1].split("WMO")[0].strip() for ln in lines if ln.startswith("Station")), "")
    position = next(ln for ln in lines if ln.startswith("Lage"))
    # "Lage: 52°23'N <- B.  13°04'O <- L.    81 Meter über NN"
    parts = position.split(":", 1)[1].split("<-")
    latitude, longitude = _dms(parts[0].strip()), _dms(parts[1].split(".", 1)[1].strip())
    rows = [ln.split() for ln in lines[lines.index("***") + 1:] if ln.strip()]
    table = np.asarray([[float(x) for x in row[:19]] for row in rows])
    direct_horizontal, diffuse = table[:, 13], table[:, 14]
    return Weather(f"DWD TRY {region:02d} {station}", latitude, longitude, 1.0, direct_horizontal + diffuse,
                   diffuse, None, table[:, 8])


def read_pvlib_tmy(file_name: str) -> Weather:
    """A TMY2 or TMY3 file that pvlib ships (e.g. 723170TYA.CSV, 703165TY.csv, 12839.tm2); hour-ending."""
    import pvlib

    path = Path(pvlib.__file__).parent / "data" / file_name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if file_name.lower().endswith(".tm2"):
            data, meta = pvlib.iotools.read_tmy2(str(path))
            # TMY2 gives the dry-bulb temperature in tenths of a degree
            ghi, dni, dhi, temp = data["GHI"], data["DNI"], data["DHI"], data["DryBulb"] / 10.0
            name = f"TMY2 {meta['City']}"
        else:
            data, meta = pvlib.iotools.read_tmy3(str(path), map_variables=True)
            ghi, dni, dhi, temp = data["ghi"], data["dni"], data["dhi"], data["temp_air"]
            name = f"TMY3 {str(meta['Name']).strip(chr(34))}"
    return Weather(name, float(meta["latitude"]), float(meta["longitude"]), float(meta["TZ"]),
                   ghi.to_numpy(dtype=float), dhi.to_numpy(dtype=float), dni.to_numpy(dtype=float),
                   temp.to_numpy(dtype=float))


def pv_kw(weather: Weather, year: int, kwp: float, tilt_deg: float = 30.0, azimuth_deg: float = 180.0,
          performance_ratio: float = 0.86, temp_coefficient_per_k: float = -0.004) -> np.ndarray:
    """AC power of a `kwp` array as 15-minute means from Jan 1 of `year` (35 040 or 35 136 values).

    Plane-of-array irradiance from pvlib (solar position, isotropic transposition), cell temperature from
    the NOCT rule (+25 K at 800 W/m2), system losses as one performance ratio, inverter clipped at kWp.
    """
    import pandas as pd
    import pvlib

    hours = weather.ghi_w_m2.size
    tz = dt.timezone(dt.timedelta(hours=weather.utc_offset_h))
    # hour-ending values describe the hour before their stamp: place them mid-hour
    mid = pd.DatetimeIndex([dt.datetime(year, 1, 1, tzinfo=tz) + dt.timedelta(minutes=30 + 60 * h)
                            for h in range(hours)])
    location = pvlib.location.Location(weather.latitude, weather.longitude)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sun = location.get_solarposition(mid)
        zenith = sun["apparent_zenith"].to_numpy()
        cos_zenith = np.cos(np.radians(zenith))
        if weather.dni_w_m2 is None:
            dni = np.where(zenith < 87.0, (weather.ghi_w_m2 - weather.dhi_w_m2) / np.maximum(cos_zenith, 0.05), 0.0)
        else:
            dni = weather.dni_w_m2
        poa = pvlib.irradiance.get_total_irradiance(
            tilt_deg, azimuth_deg, zenith, sun["azimuth"].to_numpy(), np.clip(dni, 0.0, 1100.0),
            weather.ghi_w_m2, weather.dhi_w_m2, model="isotropic",
        )["poa_global"]
    poa_w_m2 = np.nan_to_num(np.asarray(poa, dtype=float), nan=0.0).clip(0.0, None)
    cell_c = weather.temp_air_c + poa_w_m2 * 25.0 / 800.0
    hourly_kw = kwp * poa_w_m2 / 1000.0 * performance_ratio * (1.0 + temp_coefficient_per_k * (cell_c - 25.0))
    hourly_kw = np.clip(hourly_kw, 0.0, kwp)
    # quarter midpoints, interpolated between mid-hour values
    quarters = (366 if _leap(year) else 365) * QUARTERS_PER_DAY
    t_hours = (np.arange(quarters) + 0.5) * STEP_H
    hour_mid = np.arange(hours) + 0.5
    out: np.ndarray = np.interp(t_hours, hour_mid, hourly_kw, left=0.0, right=0.0)
    return out


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# ---------------------------------------------------------------- built-in scenarios


@dataclass(frozen=True)
class BatteryDefaults:
    capacity_kwh: float = 200.0
    power_kw: float = 100.0
    soc_min_pct: float = 5.0
    soc_max_pct: float = 95.0
    round_trip_efficiency: float = 0.90


@dataclass(frozen=True)
class ScenarioSpec:
    description: str
    slp: str  # BDEW profile name in demandlib
    annual_kwh: float
    weather: str  # "try:NN" (demandlib's DWD TRY region) or "tmy:FILE" (pvlib's data)
    pv_kwp: float
    battery: BatteryDefaults = BatteryDefaults()
    noise: LoadNoise = LoadNoise()
    year: int = 2025


SCENARIOS: dict[str, ScenarioSpec] = {
    "commercial": ScenarioSpec("commercial site, BDEW G0 500 MWh/a, 200 kWp PV (DWD TRY 04 Potsdam), 200 kWh/100 kW",
                               "g0", 500_000, "try:04", 200.0),
    "office-g1": ScenarioSpec("office on weekdays, BDEW G1 400 MWh/a, 150 kWp PV (DWD TRY 12 Mannheim), "
                              "150 kWh/75 kW", "g1", 400_000, "try:12", 150.0, BatteryDefaults(150.0, 75.0)),
    "shop-g25": ScenarioSpec("commercial 2025 profile, BDEW G25 600 MWh/a, 250 kWp PV (DWD TRY 13 Freiburg), "
                             "300 kWh/100 kW", "g25", 600_000, "try:13", 250.0, BatteryDefaults(300.0, 100.0)),
    "households-h0": ScenarioSpec("60 households, BDEW H0 210 MWh/a, 120 kWp PV (DWD TRY 07 Essen), "
                                  "120 kWh/40 kW", "h0", 210_000, "try:07", 120.0, BatteryDefaults(120.0, 40.0)),
    "farm-l0": ScenarioSpec("farm, BDEW L0 300 MWh/a, 200 kWp PV (DWD TRY 10 Hof), 100 kWh/50 kW, 85 %",
                            "l0", 300_000, "try:10", 200.0, BatteryDefaults(100.0, 50.0, 10.0, 90.0, 0.85)),
    "commercial-us": ScenarioSpec("commercial, BDEW G0 500 MWh/a, 200 kWp PV (TMY3 Greensboro NC), "
                                  "400 kWh/100 kW", "g0", 500_000, "tmy:723170TYA.CSV", 200.0,
                                  BatteryDefaults(400.0, 100.0)),
    "workshop-g3": ScenarioSpec("continuous trade, BDEW G3 700 MWh/a, 150 kWp PV (TMY2 Miami), 100 kWh/60 kW",
                                "g3", 700_000, "tmy:12839.tm2", 150.0, BatteryDefaults(100.0, 60.0)),
    "households-h25": ScenarioSpec("households 2025 profile, BDEW H25 250 MWh/a, 100 kWp PV (TMY3 Sand Point AK), "
                                   "150 kWh/50 kW", "h25", 250_000, "tmy:703165TY.csv", 100.0,
                                   BatteryDefaults(150.0, 50.0)),
}


def load_weather(source: str) -> Weather:
    kind, _, name = source.partition(":")
    if kind == "try":
        return read_dwd_try(int(name))
    if kind == "tmy":
        return read_pvlib_tmy(name)
    raise DataError(f"unknown weather source {source!r} (try:NN or tmy:FILE)")


# The benchmark's runs: six seeds of the built-in scenario (one year of one seed moves by ±0.05 with any small
# change), one of every other. The controller's planner settings were chosen on TUNING_RUNS only; every other
# run is held out.
TUNING_RUNS = frozenset({("commercial", 1), ("commercial", 4), ("commercial", 5), ("commercial", 6)})


def benchmark_runs(names: list[str] | None = None) -> list[tuple[str, int]]:
    """(scenario, seed) of the benchmark's runs, for `names` (default: every built-in scenario)."""
    return [(name, seed) for name in (names or list(SCENARIOS))
            for seed in ([1, 2, 3, 4, 5, 6] if name == "commercial" else [1])]


def build_scenario(name: str, seed: int) -> SiteSeries:
    """The scenario's year: noisy BDEW load and PV from its weather, in the local standard time of CET."""
    try:
        spec = SCENARIOS[name]
    except KeyError:
        raise DataError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    profile = bdew_profile_kw(spec.slp, spec.annual_kwh, spec.year)
    load = noisy_load(profile, seed, spec.noise)
    pv = pv_kw(load_weather(spec.weather), spec.year, spec.pv_kwp)[: load.size]
    # Weather files are in the local standard time of their own site; the load profile is German local
    # standard time. Both are paired by wall-clock hour, as if the site stood where the weather was taken.
    tz = dt.timezone(dt.timedelta(hours=1))
    return SiteSeries(f"{name} (seed {seed})", dt.datetime(spec.year, 1, 1, tzinfo=tz), load, pv)
