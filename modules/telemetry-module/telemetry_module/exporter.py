"""Site telemetry as Prometheus metrics: the latest message per asset, turned into metric families
at scrape time (so staleness is current and assets that left the site vanish).

Names follow Prometheus conventions: base units in the name (watts, joules, celsius, hertz, volts,
seconds, ratios 0..1), `_total` for counters, labels `site_id`, `asset_id`, `asset_type` and a few
bounded ones (`capability`, `mode`). The telemetry fields map to metrics through one table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from energy_edge_base.contract import BaseMessage, CapabilityStatus, SiteSummary, Telemetry, parse_message

ASSET_LABELS = ["site_id", "asset_id", "asset_type"]
MODES = ("fail_safe", "dispatch", "peak_shaving", "balancing", "idle")
CAPABILITIES = ("PEAK_SHAVING", "DER")
M = TypeVar("M", bound=BaseMessage)


@dataclass(frozen=True)
class Point:
    field: str  # field of the asset type's telemetry model (energy_edge_base.contract)
    metric: str
    help: str
    scale: float = 1.0  # field unit → base unit
    asset_type: str | None = None  # None: every asset type


POINTS: tuple[Point, ...] = (
    Point("power_kw", "energy_edge_asset_power_watts", "Power delivered to the site bus (+) or drawn from it (−).",
          1e3),
    Point("setpoint_kw", "energy_edge_asset_setpoint_watts", "Setpoint in force (+ deliver, − draw).", 1e3),
    Point("online", "energy_edge_asset_online", "1 when the module reached the device on its last poll."),
    Point("soc_pct", "energy_edge_battery_state_of_charge_ratio", "State of charge, 0..1.", 0.01, "battery"),
    Point("soh_pct", "energy_edge_battery_state_of_health_ratio", "State of health, 0..1.", 0.01, "battery"),
    Point("energy_kwh", "energy_edge_battery_stored_energy_joules", "Energy stored now.", 3.6e6, "battery"),
    Point("capacity_kwh", "energy_edge_battery_capacity_joules", "Usable capacity.", 3.6e6, "battery"),
    Point("max_charge_kw", "energy_edge_battery_max_charge_watts", "Charge power limit.", 1e3, "battery"),
    Point("max_discharge_kw", "energy_edge_battery_max_discharge_watts", "Discharge power limit.", 1e3, "battery"),
    Point("power_limit_pct", "energy_edge_solar_power_limit_ratio", "Active power limit, share of the rating.", 0.01,
          "solar"),
    Point("curtailed", "energy_edge_solar_curtailed", "1 while the output is limited below the rating.", 1, "solar"),
    Point("water_temp_c", "energy_edge_boiler_water_temperature_celsius", "Tank water temperature.", 1, "boiler"),
    Point("setpoint_c", "energy_edge_boiler_setpoint_celsius", "Water temperature setpoint.", 1, "boiler"),
    Point("min_temp_c", "energy_edge_boiler_min_temperature_celsius", "Lowest allowed water temperature.", 1,
          "boiler"),
    Point("heater_power_kw", "energy_edge_boiler_heater_power_watts", "Electric power the heater draws.", 1e3,
          "boiler"),
    Point("grid_import_kw", "energy_edge_grid_import_watts", "Power at the point of common coupling, + import.", 1e3,
          "microgrid_controller"),
    Point("site_load_kw", "energy_edge_site_load_watts", "Site consumption.", 1e3, "microgrid_controller"),
    Point("frequency_hz", "energy_edge_grid_frequency_hertz", "Grid frequency.", 1, "microgrid_controller"),
    Point("voltage_v", "energy_edge_grid_voltage_volts", "Voltage at the point of common coupling.", 1,
          "microgrid_controller"),
    Point("import_limit_kw", "energy_edge_meter_import_limit_watts", "Import limit the site controller guards.", 1e3,
          "microgrid_controller"),
    Point("peak_shaving_active", "energy_edge_meter_peak_shaving_active", "The site controller's PEAK_SHAVING boolean.",
          1, "microgrid_controller"),
    Point("der_active", "energy_edge_meter_der_active", "The site controller's DER boolean.", 1,
          "microgrid_controller"),
)


@dataclass
class Seen(Generic[M]):
    message: M  # as the contract's model parsed it
    at_s: float  # wall clock, when it arrived


class SiteState:
    """What the exporter knows: latest telemetry per asset, the controller's latest summary and capabilities."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self.assets: dict[str, Seen[Telemetry]] = {}
        self.summary: Seen[SiteSummary] | None = None
        self.capabilities: dict[str, Seen[CapabilityStatus]] = {}
        self.messages: dict[str, int] = {}
        self.invalid = 0

    def take(self, body: Any, assets: Mapping[Any, list[str]] | None = None) -> bool:
        """One routed message; False (and counted) when it is not something the exporter reads: it breaks the
        contract (parsed with its models, so no NaN or string reaches a metric), or it is telemetry of an asset
        not in `assets` (when given)."""
        try:
            message = parse_message(body)
        except (ValidationError, TypeError, ValueError):
            self.invalid += 1
            return False
        now = self.clock()
        if isinstance(message, Telemetry):
            if assets is not None and message.asset_id not in assets.get(message.asset_type, []):
                self.invalid += 1
                return False
            self.assets[message.asset_id] = Seen(message, now)
            self.messages[message.asset_type] = self.messages.get(message.asset_type, 0) + 1
        elif isinstance(message, SiteSummary):
            self.summary = Seen(message, now)
            self.messages["siteSummary"] = self.messages.get("siteSummary", 0) + 1
        elif isinstance(message, CapabilityStatus) and message.capability in CAPABILITIES:
            self.capabilities[message.capability] = Seen(message, now)
            self.messages["capabilityStatus"] = self.messages.get("capabilityStatus", 0) + 1
        else:
            self.invalid += 1
            return False
        return True

    def stale(self, after_s: float) -> list[str]:
        now = self.clock()
        return sorted(a for a, seen in self.assets.items() if now - seen.at_s > after_s)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


class SiteCollector(Collector):
    def __init__(self, state: SiteState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        now = state.clock()
        families = {p.metric: GaugeMetricFamily(p.metric, p.help, labels=ASSET_LABELS) for p in POINTS}
        age = GaugeMetricFamily("energy_edge_asset_telemetry_age_seconds",
                                "Seconds since the asset's last telemetry reached the exporter.", labels=ASSET_LABELS)
        for asset_id, seen in sorted(state.assets.items()):
            telemetry = seen.message
            labels = [telemetry.site_id, asset_id, telemetry.asset_type]
            age.add_metric(labels, max(0.0, now - seen.at_s))
            for point in POINTS:
                if point.asset_type not in (None, telemetry.asset_type):
                    continue
                value = _number(getattr(telemetry, point.field))
                if value is not None:
                    families[point.metric].add_metric(labels, value * point.scale)
        yield from families.values()
        yield age
        counter = CounterMetricFamily("energy_edge_telemetry_messages", "Messages the exporter took, by kind.",
                                      labels=["kind"])
        for kind, count in sorted(state.messages.items()):
            counter.add_metric([kind], count)
        yield counter
        invalid = CounterMetricFamily("energy_edge_telemetry_invalid_messages",
                                      "Routed messages the exporter could not read.")
        invalid.add_metric([], state.invalid)
        yield invalid
        yield from self._controller(now)

    def _controller(self, now: float) -> Iterator[Metric]:
        state = self.state
        site_labels = ["site_id"]
        mode = GaugeMetricFamily("energy_edge_controller_mode", "1 for the controller's current mode.",
                                 labels=[*site_labels, "mode"])
        limit = GaugeMetricFamily("energy_edge_controller_import_limit_watts", "Import limit the controller guards.",
                                  labels=site_labels)
        margin = GaugeMetricFamily("energy_edge_controller_margin_watts",
                                   "Limit minus the 15-minute average import: how close the site runs.",
                                   labels=site_labels)
        average = GaugeMetricFamily("energy_edge_grid_import_average_watts",
                                    "Average grid import over the controller's last summary window.",
                                    labels=site_labels)
        peak = GaugeMetricFamily("energy_edge_grid_import_window_max_watts",
                                 "Highest grid import in the controller's last summary window.", labels=site_labels)
        summary_age = GaugeMetricFamily("energy_edge_controller_report_age_seconds",
                                        "Seconds since the controller last reported its site summary.",
                                        labels=site_labels)
        if state.summary is not None:
            summary = state.summary.message
            site = [summary.site_id]
            for name in MODES:
                mode.add_metric([*site, name], 1.0 if summary.mode == name else 0.0)
            for family, value_kw in ((limit, summary.import_limit_kw), (margin, summary.margin_kw),
                                     (average, summary.grid_import_avg_kw), (peak, summary.grid_import_max_kw)):
                value = _number(value_kw)
                if value is not None:
                    family.add_metric(site, value * 1e3)
            summary_age.add_metric(site, max(0.0, now - state.summary.at_s))
        yield from (mode, limit, margin, average, peak, summary_age)
        active = GaugeMetricFamily("energy_edge_capability_active", "1 when the capability is ON.",
                                   labels=["site_id", "capability"])
        conflict = GaugeMetricFamily("energy_edge_capability_conflict",
                                     "1 when more than one source reports the capability active.",
                                     labels=["site_id", "capability"])
        for name, seen in sorted(state.capabilities.items()):
            capability = seen.message
            labels = [capability.site_id, name]
            active.add_metric(labels, 1.0 if capability.state == "ON" else 0.0)
            conflict.add_metric(labels, 1.0 if capability.conflict else 0.0)
        yield active
        yield conflict
