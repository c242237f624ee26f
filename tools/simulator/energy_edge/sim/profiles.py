"""Time series that drive the plant: the site's base load, the PV resource and the boiler's heat demand.

Every profile is periodic: one generated day repeats, a CSV file repeats over its own span. A profile is
matched to the simulation by local wall-clock time (timestamps' UTC offsets are ignored), so a one-day CSV
starting at midnight gives the value for 07:15 at 07:15 of any simulated day.

The synthetic generators are pure numpy and seeded. demandlib, pvlib and pandas are imported only by the
`demandlib` and `pvlib` sources.
"""

from __future__ import annotations

import csv
import math
import warnings
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from energy_edge.sim.scenario import ProfileSpec, Scenario, utc_offset_h

DAY_S = 86400.0
_STEP_S = 60.0  # resolution of the generated profiles


class ProfileError(ValueError):
    """A profile source cannot be read or generated."""


@dataclass(frozen=True)
class Profile:
    """A periodic series: `values[i]` at `times_s[i]` seconds after `origin` (naive wall-clock), linear between."""

    name: str
    unit: str  # "kw" or "w_m2"
    times_s: tuple[float, ...]
    values: tuple[float, ...]
    origin: datetime
    period_s: float
    offset_s: float = 0.0  # where simulated t = 0 falls in the period

    def bind(self, start: datetime) -> Profile:
        """The same profile with simulated t = 0 at `start` (wall-clock)."""
        offset = ((_naive(start) - self.origin).total_seconds()) % self.period_s
        return Profile(self.name, self.unit, self.times_s, self.values, self.origin, self.period_s, offset)

    def at(self, t_s: float) -> float:
        """The value `t_s` simulated seconds after the bound start."""
        xs, vs = self.times_s, self.values
        if len(xs) == 1:
            return vs[0]
        x = (self.offset_s + t_s) % self.period_s
        i = bisect_right(xs, x)
        if i == 0:  # before the first sample: between the last sample (one period earlier) and the first
            x0, v0, x1, v1 = xs[-1] - self.period_s, vs[-1], xs[0], vs[0]
        elif i == len(xs):  # after the last: towards the first sample of the next period
            x0, v0, x1, v1 = xs[-1], vs[-1], xs[0] + self.period_s, vs[0]
        else:
            x0, v0, x1, v1 = xs[i - 1], vs[i - 1], xs[i], vs[i]
        if x1 <= x0:
            return v0
        return v0 + (v1 - v0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class SiteProfiles:
    load: Profile  # kW
    pv: Profile  # W/m2 (irradiance on the modules) or kW (available AC power)
    heat_demand: Profile  # kW thermal


def _naive(when: datetime) -> datetime:
    return when.replace(tzinfo=None)


def _series(name: str, unit: str, origin: datetime, times_s: Any, values: Any, period_s: float | None = None,
            scale: float = 1.0) -> Profile:
    t = np.asarray(times_s, dtype=float)
    v = np.asarray(values, dtype=float) * scale
    if t.size == 0:
        raise ProfileError(f"{name}: no samples")
    if not np.all(np.isfinite(v)):
        raise ProfileError(f"{name}: values must be finite numbers")
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    keep = np.concatenate(([True], np.diff(t) > 0))  # drop repeated timestamps (e.g. a DST fold)
    t, v = t[keep], v[keep]
    t0 = float(t[0])
    origin = origin + timedelta(seconds=t0)
    t = t - t0
    if period_s is None:
        step = float(np.median(np.diff(t))) if t.size > 1 else 1.0
        period_s = float(t[-1]) + step
    return Profile(name, unit, tuple(float(x) for x in t), tuple(float(x) for x in v), origin, float(period_s))


def constant(name: str, unit: str, value: float) -> Profile:
    return Profile(name, unit, (0.0,), (float(value),), datetime(2000, 1, 1), DAY_S)


# ---------------------------------------------------------------- synthetic (numpy only)


def _gauss(h: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    out: np.ndarray = np.exp(-0.5 * ((h - mu) / sigma) ** 2)
    return out


def _ar1(rng: np.random.Generator, n: int, tau_s: float, step_s: float) -> np.ndarray:
    """A stationary AR(1) series with unit variance and time constant tau."""
    phi = math.exp(-step_s / tau_s)
    e = rng.standard_normal(n) * math.sqrt(1 - phi * phi)
    out = np.empty(n)
    out[0] = rng.standard_normal()
    for k in range(1, n):
        out[k] = phi * out[k - 1] + e[k]
    return out


def _day_hours() -> np.ndarray:
    return np.arange(0.0, DAY_S, _STEP_S) / 3600.0


def synthetic_load(day: datetime, min_kw: float, max_kw: float, noise_kw: float, seed: int) -> Profile:
    """A commercial site's weekday: night base, occupancy 06-19 h, peaks around 08 h and 17 h, a lunch dip."""
    h = _day_hours()
    occupancy = 1 / (1 + np.exp(-(h - 6.2) / 0.35)) * 1 / (1 + np.exp(-(20.2 - h) / 0.5))
    shape = 0.55 * occupancy + 0.5 * _gauss(h, 7.7, 0.8) + 0.55 * _gauss(h, 18.4, 0.8) - 0.3 * _gauss(h, 13.0, 1.3)
    shape = (shape - shape.min()) / (shape.max() - shape.min())
    rng = np.random.default_rng([seed, 1])
    kw = min_kw + (max_kw - min_kw) * shape + noise_kw * _ar1(rng, h.size, 300.0, _STEP_S)
    return _series("load", "kw", _naive(day), h * 3600, np.clip(kw, 0, None), DAY_S)


def clear_sky_ghi(h_local: np.ndarray, day_of_year: int, latitude: float, longitude: float,
                  utc_offset: float) -> np.ndarray:
    """Haurwitz clear-sky global horizontal irradiance (W/m2) for local clock hours."""
    b = 2 * math.pi * (day_of_year - 81) / 364
    eot_min = 9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)
    solar_h = h_local + (longitude - 15.0 * utc_offset) / 15.0 + eot_min / 60.0
    decl = math.radians(23.45) * math.sin(2 * math.pi * (284 + day_of_year) / 365)
    lat = math.radians(latitude)
    omega = np.radians(15.0 * (solar_h - 12.0))
    cos_z = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * np.cos(omega)
    ghi = np.where(cos_z > 0.01, 1098.0 * cos_z * np.exp(-0.057 / np.maximum(cos_z, 0.01)), 0.0)
    out: np.ndarray = np.clip(ghi, 0.0, None)
    return out


def synthetic_irradiance(day: datetime, latitude: float, longitude: float, utc_offset: float,
                         cloudiness: float, seed: int) -> Profile:
    """Clear-sky GHI for the day with seeded, smoothly varying cloud attenuation."""
    h = _day_hours()
    ghi = clear_sky_ghi(h, day.timetuple().tm_yday, latitude, longitude, utc_offset)
    rng = np.random.default_rng([seed, 2])
    u = _ar1(rng, h.size, 600.0, _STEP_S)
    attenuation = np.clip(1.0 - cloudiness * (0.5 + 0.5 * u), 0.1, 1.0)
    return _series("pv", "w_m2", _naive(day), h * 3600, ghi * attenuation, DAY_S)


def synthetic_heat(day: datetime, min_kw: float, max_kw: float, seed: int) -> Profile:
    """Hot-water draws: morning, noon and evening peaks on a small base."""
    h = _day_hours()
    shape = 1.0 * _gauss(h, 6.8, 0.7) + 0.6 * _gauss(h, 12.2, 0.8) + 0.9 * _gauss(h, 18.5, 1.0)
    shape = shape / shape.max()
    rng = np.random.default_rng([seed, 3])
    kw = min_kw + (max_kw - min_kw) * shape * (1 + 0.1 * _ar1(rng, h.size, 300.0, _STEP_S))
    return _series("heat_demand", "kw", _naive(day), h * 3600, np.clip(kw, 0, None), DAY_S)


# ---------------------------------------------------------------- CSV


def _parse_time(text: str) -> datetime:
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return _naive(datetime.fromisoformat(text))


def read_csv(path: Path, name: str, columns: list[str], scale: float = 1.0) -> Profile:
    """`timestamp` plus the first of `columns` that the file has; the unit follows the column's suffix."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = [c.strip() for c in reader.fieldnames or []]
            column = next((c for c in columns if c in header), None)
            if "timestamp" not in header or column is None:
                raise ProfileError(f"{path}: needs columns timestamp and one of {', '.join(columns)}; has {header}")
            stamps: list[datetime] = []
            values: list[float] = []
            for lineno, row in enumerate(reader, start=2):
                row = {k.strip(): v for k, v in row.items() if k is not None}
                try:
                    stamps.append(_parse_time(row["timestamp"]))
                    values.append(float(row[column]))
                except (TypeError, ValueError) as exc:
                    raise ProfileError(f"{path}:{lineno}: {exc}") from exc
    except OSError as exc:
        raise ProfileError(f"{path}: {exc}") from exc
    if not stamps:
        raise ProfileError(f"{path}: no rows")
    origin = min(stamps)
    times = [(s - origin).total_seconds() for s in stamps]
    unit = "w_m2" if column.endswith("_w_m2") else "kw"
    return _series(name, unit, origin, times, values, scale=scale)


# ---------------------------------------------------------------- demandlib / pvlib (optional, lazy)


def demandlib_load(spec: ProfileSpec, year: int) -> Profile:
    """A BDEW standard load profile for `year` (15-minute means), scaled to annual_kwh or peak_kw."""
    try:
        import pandas as pd
        from demandlib import bdew
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ProfileError("the demandlib source needs `pip install demandlib==0.2.2`") from exc
    slp = spec.slp.lower()
    profiles25 = {"g25": bdew.G25, "h25": bdew.H25, "l25": bdew.L25, "p25": bdew.P25, "s25": bdew.S25}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if slp in profiles25:
            index = pd.date_range(datetime(year, 1, 1), datetime(year + 1, 1, 1), freq="15min", inclusive="left")
            kw_per_kwh_year = np.asarray(profiles25[slp](index), dtype=float) / 1e6  # given per GWh/a
        else:
            # demandlib 0.2.2's ElecSlp calls warnings.simplefilter("error") for the whole process, which
            # with pandas 3 turns its own deprecation warnings into exceptions. Neutralise that one call and
            # restore every filter afterwards (catch_warnings).
            with mock.patch.object(warnings, "simplefilter"):
                frame = bdew.ElecSlp(year).get_scaled_power_profiles({slp: 1.0})
            if slp not in frame:
                raise ProfileError(f"demandlib has no profile {spec.slp!r}")
            kw_per_kwh_year = frame[slp].to_numpy(dtype=float)
    if spec.annual_kwh is not None:
        kw = kw_per_kwh_year * spec.annual_kwh
    else:
        peak = spec.peak_kw or spec.max_kw or 180.0
        kw = kw_per_kwh_year * (peak / float(kw_per_kwh_year.max()))
    times = 450.0 + 900.0 * np.arange(kw.size)  # interval means, placed mid-interval
    return _series("load", "kw", datetime(year, 1, 1), times, kw, period_s=900.0 * kw.size, scale=spec.scale)


def pvlib_irradiance(spec: ProfileSpec, year: int, base: Scenario) -> Profile:
    """Plane-of-array irradiance (W/m2) from a TMY3 file (pvlib ships 723170TYA.CSV) for a tilted array."""
    try:
        import pvlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ProfileError("the pvlib source needs `pip install pvlib`") from exc
    path = base.resolve(spec.tmy_file)
    if not path.is_file():
        path = Path(pvlib.__file__).parent / "data" / spec.tmy_file
    if not path.is_file():
        raise ProfileError(f"no TMY file {spec.tmy_file!r} (neither a path nor in pvlib/data)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, meta = pvlib.iotools.read_tmy3(str(path), coerce_year=year, map_variables=True)
        data = data.sort_index()
        location = pvlib.location.Location(meta["latitude"], meta["longitude"], altitude=meta.get("altitude", 0))
        mid = data.index - np.timedelta64(30, "m")  # TMY3 values are hour-ending
        solpos = location.get_solarposition(mid)
        poa = pvlib.irradiance.get_total_irradiance(
            spec.tilt_deg, spec.azimuth_deg, solpos["apparent_zenith"].to_numpy(), solpos["azimuth"].to_numpy(),
            data["dni"].to_numpy(dtype=float), data["ghi"].to_numpy(dtype=float),
            data["dhi"].to_numpy(dtype=float),
        )["poa_global"]
    values = np.nan_to_num(np.asarray(poa, dtype=float), nan=0.0).clip(0, None)
    stamps = [ts.to_pydatetime().replace(tzinfo=None) for ts in mid]
    origin = datetime(year, 1, 1)
    times = [(s - origin).total_seconds() for s in stamps]
    return _series("pv", "w_m2", origin, times, values, period_s=3600.0 * len(times), scale=spec.scale)


# ---------------------------------------------------------------- assembly


def build_profile(kind: str, spec: ProfileSpec, scenario: Scenario, seed: int) -> Profile:
    start = scenario.start
    day = _naive(start).replace(hour=0, minute=0, second=0, microsecond=0)
    if spec.source == "constant":
        return constant(kind, "w_m2" if kind == "pv" else "kw", spec.value * spec.scale)
    if spec.source == "csv":
        assert spec.path is not None
        columns = [spec.column] if spec.column else (
            ["pv_kw", "ghi_w_m2", "poa_w_m2"] if kind == "pv" else ["power_kw"])
        return read_csv(scenario.resolve(spec.path), kind, columns, spec.scale)
    if spec.source == "demandlib":
        return demandlib_load(spec, start.year)
    if spec.source == "pvlib":
        return pvlib_irradiance(spec, start.year, scenario)
    # synthetic
    if kind == "load":
        lo, hi = spec.min_kw if spec.min_kw is not None else 60.0, spec.max_kw if spec.max_kw is not None else 180.0
        noise = spec.noise_kw if spec.noise_kw is not None else 0.02 * hi
        p = synthetic_load(day, lo, hi, noise, seed)
    elif kind == "pv":
        p = synthetic_irradiance(day, scenario.latitude, scenario.longitude, utc_offset_h(start), spec.cloudiness,
                                 seed)
    else:
        lo, hi = spec.min_kw if spec.min_kw is not None else 1.0, spec.max_kw if spec.max_kw is not None else 10.0
        p = synthetic_heat(day, lo, hi, seed)
    if spec.scale != 1.0:
        p = _series(p.name, p.unit, p.origin, p.times_s, p.values, p.period_s, spec.scale)
    return p


def build_profiles(scenario: Scenario, seed: int | None = None) -> SiteProfiles:
    """The scenario's three profiles, bound to its start."""
    s = scenario.seed if seed is None else seed
    return SiteProfiles(
        load=build_profile("load", scenario.load, scenario, s).bind(scenario.start),
        pv=build_profile("pv", scenario.pv, scenario, s).bind(scenario.start),
        heat_demand=build_profile("heat_demand", scenario.heat_demand, scenario, s).bind(scenario.start),
    )
