"""Aggregation: asset telemetry (as it arrives by route) → the `SiteState` the core decides on.

Keeps the latest message per asset, as the contract's model (`energy_edge_base.contract`), with the time it
arrived; ages come from the module's clock. Also keeps the 15-minute rolling average of grid import.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from controller_module.core.state import (
    BatteryView,
    BoilerView,
    MeterView,
    SiteState,
    SolarView,
    TimeAverage,
)
from energy_edge_base.contract import (
    BatteryTelemetry,
    BoilerTelemetry,
    MicrogridControllerTelemetry,
    SolarTelemetry,
    Telemetry,
    parse_message,
)


@dataclass
class Latest:
    telemetry: Telemetry  # one of the contract's telemetry models (BatteryTelemetry, ...)
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

    def add(self, message: Telemetry | Mapping[str, Any] | str | bytes, received_s: float,
            site_time: dt.datetime) -> bool:
        """Take one telemetry message: a contract model, or a body the contract's models parse; False if it is
        not asset telemetry of the contract."""
        if not isinstance(message, Telemetry):
            try:
                parsed = parse_message(message)
            except (ValidationError, TypeError, ValueError):
                return False
            if not isinstance(parsed, Telemetry):
                return False
            message = parsed
        self.latest[message.asset_id] = Latest(message, received_s)
        if isinstance(message, BatteryTelemetry):
            _keep(self.readings.setdefault(message.asset_id, []), (message.timestamp.timestamp(),
                                                                   float(message.power_kw)))
        if isinstance(message, MicrogridControllerTelemetry) and message.online:
            self.grid_average.add(site_time.timestamp(), float(message.grid_import_kw))
        return True

    def site_state(self, now_s: float, site_time: dt.datetime) -> SiteState:
        meters, batteries, solars, boilers = [], [], [], []
        meter_read_at = self._meter_reading_epoch()
        for asset_id, latest in sorted(self.latest.items()):
            t, age = latest.telemetry, now_s - latest.received_s
            if isinstance(t, BatteryTelemetry):
                power = self._battery_power_at(asset_id, float(t.power_kw), _opt(t.setpoint_kw), meter_read_at)
                batteries.append(BatteryView(
                    asset_id, t.online, power, _opt(t.soc_pct), _opt(t.capacity_kwh), float(t.max_charge_kw),
                    float(t.max_discharge_kw), age, _fault(t),
                ))
            elif isinstance(t, SolarTelemetry):
                solars.append(SolarView(asset_id, t.online, float(t.power_kw), _opt(t.rated_kw),
                                        _opt(t.power_limit_pct), age))
            elif isinstance(t, BoilerTelemetry):
                boilers.append(BoilerView(asset_id, t.online, float(t.power_kw), _opt(t.water_temp_c),
                                          _opt(t.min_temp_c), _opt(t.max_temp_c), _opt(t.rated_kw), age))
            elif isinstance(t, MicrogridControllerTelemetry):
                meters.append(MeterView(asset_id, t.online, float(t.grid_import_kw), t.peak_shaving_active,
                                        t.der_active, _opt(t.import_limit_kw), age, _fault(t)))
        meter = min(meters, key=lambda m: m.age_s) if meters else None
        return SiteState(
            now=site_time, meter=meter, batteries=tuple(batteries), solars=tuple(solars), boilers=tuple(boilers),
            grid_import_avg_15min_kw=self.grid_average.average(site_time.timestamp()),
        )

    def _meter_reading_epoch(self) -> float | None:
        stamps = [latest.telemetry.timestamp.timestamp() for latest in self.latest.values()
                  if isinstance(latest.telemetry, MicrogridControllerTelemetry)]
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


def _fault(telemetry: Telemetry) -> str | None:
    """The fault an asset reports, if any (text, else its code)."""
    if telemetry.fault_code is None and not telemetry.fault:
        return None
    return str(telemetry.fault or f"fault code {telemetry.fault_code}")


def _opt(value: float | None) -> float | None:
    return None if value is None else float(value)
