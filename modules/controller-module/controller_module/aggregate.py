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
        # setpoints the controller wrote, per battery: (wall epoch written, kW)
        self.commands: dict[str, list[tuple[float, float]]] = {}
        # the batteries' measured power, per battery: (wall epoch read, as the telemetry's timestamp says, kW)
        self.readings: dict[str, list[tuple[float, float]]] = {}

    def commanded(self, asset_id: str, written_epoch_s: float, power_kw: float) -> None:
        _keep(self.commands.setdefault(asset_id, []), (written_epoch_s, power_kw))

    def _battery_power_at(self, asset_id: str, measured_kw: float, setpoint_kw: float | None,
                          at_epoch_s: float | None) -> float:
        """The battery's power at the moment the meter was read.

        Meter and batteries are polled by different modules at different moments; adding a battery
        power read after a setpoint change to a meter reading taken before it makes the controller
        chase its own command (and oscillate). So the battery's power is taken as it was when the meter
        was read: its last reading before then, or, when a setpoint was written between that reading and
        the meter's, that setpoint if the battery tracks its setpoints. Without a reading from before the
        meter's (a site's first seconds), the setpoint in force then if tracking, else the newest reading.
        """
        if at_epoch_s is None:
            return measured_kw
        tracking = setpoint_kw is not None and abs(measured_kw - setpoint_kw) <= max(1.0, 0.1 * abs(setpoint_kw))
        read = _last_by(self.readings.get(asset_id, []), at_epoch_s)
        written = _last_by(self.commands.get(asset_id, []), at_epoch_s)
        if written and tracking and (not read or written[0] > read[0]):
            return written[1]
        if read:
            return read[1]
        return measured_kw

    def add(self, body: Any, received_s: float, site_time: dt.datetime) -> bool:
        """Take one telemetry message; False if it is not asset telemetry we understand."""
        if not isinstance(body, dict):
            return False
        asset_id, asset_type = body.get("asset_id"), body.get("asset_type")
        if not isinstance(asset_id, str) or asset_type not in ("battery", "solar", "boiler", "microgrid_controller"):
            return False
        self.latest[asset_id] = Latest(body, received_s)
        if asset_type == "battery" and _num(body.get("power_kw")):
            read_at = _epoch(body.get("timestamp"))
            if read_at is not None:
                _keep(self.readings.setdefault(asset_id, []), (read_at, float(body["power_kw"])))
        if asset_type == "microgrid_controller" and body.get("online") and _num(body.get("grid_import_kw")):
            self.grid_average.add(site_time.timestamp(), float(body["grid_import_kw"]))
        return True

    def site_state(self, now_s: float, site_time: dt.datetime) -> SiteState:
        meters, batteries, solars, boilers = [], [], [], []
        meter_read_at = self._meter_reading_epoch()
        for asset_id, latest in sorted(self.latest.items()):
            b, age = latest.body, now_s - latest.received_s
            online = bool(b.get("online"))
            kind = b.get("asset_type")
            if kind == "battery":
                power = self._battery_power_at(asset_id, _f(b, "power_kw"), _opt(b, "setpoint_kw"), meter_read_at)
                batteries.append(BatteryView(
                    asset_id, online, power, _opt(b, "soc_pct"), _opt(b, "capacity_kwh"),
                    _f(b, "max_charge_kw"), _f(b, "max_discharge_kw"), age, _fault(b),
                ))
            elif kind == "solar":
                solars.append(SolarView(asset_id, online, _f(b, "power_kw"), _opt(b, "rated_kw"),
                                        _opt(b, "power_limit_pct"), age))
            elif kind == "boiler":
                boilers.append(BoilerView(asset_id, online, _f(b, "power_kw"), _opt(b, "water_temp_c"),
                                          _opt(b, "min_temp_c"), _opt(b, "max_temp_c"), _opt(b, "rated_kw"), age))
            elif kind == "microgrid_controller":
                meters.append(MeterView(asset_id, online, _f(b, "grid_import_kw"), b.get("peak_shaving_active"),
                                        b.get("der_active"), _opt(b, "import_limit_kw"), age, _fault(b)))
        meter = min(meters, key=lambda m: m.age_s) if meters else None
        return SiteState(
            now=site_time, meter=meter, batteries=tuple(batteries), solars=tuple(solars), boilers=tuple(boilers),
            grid_import_avg_15min_kw=self.grid_average.average(site_time.timestamp()),
        )


    def _meter_reading_epoch(self) -> float | None:
        meters = [m.body for m in self.latest.values() if m.body.get("asset_type") == "microgrid_controller"]
        stamps = [at for at in (_epoch(m.get("timestamp")) for m in meters) if at is not None]
        return max(stamps) if stamps else None


LOG_ENTRIES = 50  # per battery: a meter reading is at most a few seconds older than the newest entries


def _keep(log: list[tuple[float, float]], entry: tuple[float, float]) -> None:
    """Append to a time-ordered (epoch, kW) log, keeping its newest LOG_ENTRIES."""
    log.append(entry)
    del log[:-LOG_ENTRIES]


def _last_by(log: list[tuple[float, float]], at_epoch_s: float) -> tuple[float, float] | None:
    """The newest (epoch, kW) entry at or before `at_epoch_s` of a log kept in time order."""
    for entry in reversed(log):
        if entry[0] <= at_epoch_s:
            return entry
    return None


def _epoch(stamp: Any) -> float | None:
    """Wall epoch seconds of an ISO 8601 telemetry timestamp; None if absent or unreadable."""
    if not isinstance(stamp, str):
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _fault(body: dict[str, Any]) -> str | None:
    """The fault an asset reports, if any (text, else its code)."""
    if body.get("fault_code") is None and not body.get("fault"):
        return None
    return str(body.get("fault") or f"fault code {body.get('fault_code')}")


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _f(body: dict[str, Any], key: str) -> float:
    value = _opt(body, key)
    return 0.0 if value is None else value


def _opt(body: dict[str, Any], key: str) -> float | None:
    value: Any = body.get(key)
    return float(value) if _num(value) else None
