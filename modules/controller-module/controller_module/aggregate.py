"""Aggregation: asset telemetry (as it arrives by route) → the `SiteState` the core decides on.

Keeps the latest message per asset with the time it arrived; ages come from the module's clock.
Also keeps the 15-minute rolling average of grid import.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from controller_module.core.state import (
    BatteryView,
    BoilerView,
    MeterView,
    SiteState,
    SolarView,
    TimeAverage,
)


@dataclass
class Latest:
    body: dict[str, Any]
    received_s: float  # monotonic seconds of the module's clock


class SiteAggregator:
    def __init__(self) -> None:
        self.latest: dict[str, Latest] = {}
        self.grid_average = TimeAverage(900.0)

    def add(self, body: dict[str, Any], received_s: float, site_time: dt.datetime) -> bool:
        """Take one telemetry message; False if it is not asset telemetry we understand."""
        asset_id, asset_type = body.get("asset_id"), body.get("asset_type")
        if not isinstance(asset_id, str) or asset_type not in ("battery", "solar", "boiler", "microgrid_controller"):
            return False
        self.latest[asset_id] = Latest(body, received_s)
        if asset_type == "microgrid_controller" and body.get("online") and _num(body.get("grid_import_kw")):
            self.grid_average.add(site_time.timestamp(), float(body["grid_import_kw"]))
        return True

    def site_state(self, now_s: float, site_time: dt.datetime) -> SiteState:
        meters, batteries, solars, boilers = [], [], [], []
        for asset_id, latest in sorted(self.latest.items()):
            b, age = latest.body, now_s - latest.received_s
            online = bool(b.get("online"))
            kind = b.get("asset_type")
            if kind == "battery":
                batteries.append(BatteryView(
                    asset_id, online, _f(b, "power_kw"), _opt(b, "soc_pct"), _opt(b, "capacity_kwh"),
                    _f(b, "max_charge_kw"), _f(b, "max_discharge_kw"), age,
                ))
            elif kind == "solar":
                solars.append(SolarView(asset_id, online, _f(b, "power_kw"), _opt(b, "rated_kw"),
                                        _opt(b, "power_limit_pct"), age))
            elif kind == "boiler":
                boilers.append(BoilerView(asset_id, online, _f(b, "power_kw"), _opt(b, "water_temp_c"),
                                          _opt(b, "min_temp_c"), _opt(b, "max_temp_c"), _opt(b, "rated_kw"), age))
            elif kind == "microgrid_controller":
                meters.append(MeterView(asset_id, online, _f(b, "grid_import_kw"), b.get("peak_shaving_active"),
                                        b.get("der_active"), _opt(b, "import_limit_kw"), age))
        meter = min(meters, key=lambda m: m.age_s) if meters else None
        return SiteState(
            now=site_time, meter=meter, batteries=tuple(batteries), solars=tuple(solars), boilers=tuple(boilers),
            grid_import_avg_15min_kw=self.grid_average.average(site_time.timestamp()),
        )


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _f(body: dict[str, Any], key: str) -> float:
    value = _opt(body, key)
    return 0.0 if value is None else value


def _opt(body: dict[str, Any], key: str) -> float | None:
    value: Any = body.get(key)
    return float(value) if _num(value) else None
