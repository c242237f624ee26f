"""The controller's configuration (its twin's desired properties)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller_module.core.tariff import BUILT_IN, DEFAULT_TARIFF_NAME, Tariff, default_tariff, resolve

AssetTypeName = Literal["solar", "battery", "boiler", "microgrid_controller"]


class ControllerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="controller module configuration")

    site_id: str = Field("site-1", min_length=1, description="Site this controller runs.")
    cycle_s: float = Field(1.0, ge=0.1, le=60, description="Control cycle, seconds.")
    # peak shaving
    peak_shaving_enabled: bool = Field(True, description="Keep the 15-minute average grid import under the limit.")
    import_limit_kw: float | None = Field(
        None, ge=0, le=1_000_000,
        description="Contracted import limit, kW. None: plan it from the forecast and the month's peak.",
    )
    rule_threshold_kw: float | None = Field(
        None, ge=0, le=1_000_000,
        description=("Planned mode without history yet: a fixed threshold (the rule), kW. None: the month's peak, "
                     "shaved no faster than the batteries' energy lasts until midnight."),
    )
    tariff: Tariff = Field(
        default_factory=default_tariff,
        description=(f"How import is billed: a built-in tariff's name ({', '.join(BUILT_IN)}) or a tariff "
                     f"object. The planned limit is its billed demand; default {DEFAULT_TARIFF_NAME!r} "
                     "(the largest 15-minute mean import of each calendar month)."),
    )
    limit_margin_kw: float = Field(2.0, ge=0, le=10_000, description="Aim this far below the limit, kW.")
    reserve_soc_pct: float = Field(
        30.0, ge=0, le=100, description="State of charge kept for peaks; balancing does not discharge below it, %."
    )
    min_soc_pct: float = Field(5.0, ge=0, le=100, description="Peak shaving discharges down to this, %.")
    max_soc_pct: float = Field(95.0, ge=0, le=100, description="Charging stops here, %.")
    recharge_kw: float = Field(
        20.0, ge=0, le=1_000_000, description="Grid charging power used to refill the reserve below the limit, kW."
    )
    # balancing
    balancing_enabled: bool = Field(True, description="Self-consumption: steer grid import toward grid_setpoint_kw.")
    grid_setpoint_kw: float = Field(0.0, ge=-1_000_000, le=1_000_000, description="Balancing target, kW import.")
    deadband_kw: float = Field(1.0, ge=0, le=10_000, description="Balancing ignores errors smaller than this, kW.")
    hysteresis_kw: float = Field(
        3.0, ge=0, le=10_000, description="Balancing changes between charge and discharge only past this, kW."
    )
    ramp_kw_per_s: float = Field(20.0, gt=0, le=1_000_000, description="Balancing setpoint ramp limit, kW/s.")
    # energy shifting (core/shifting.py)
    energy_shifting_enabled: bool = Field(
        False,
        description=("Use the battery energy the planned peaks do not need on the energy bill: store PV surplus "
                     "when export pays less than import, cover import in expensive hours, fill in the cheapest "
                     "hours of a time-of-use tariff; the grid refills only the peak reserve. Off: the battery "
                     "is kept for peaks (and balancing)."),
    )
    shifting_reserve_factor: float = Field(
        1.0, ge=1.0, le=10.0,
        description=("Energy shifting keeps this multiple of the energy the forecast says the peaks need until "
                     "the end of the plan's horizon (the reserve margin against the planned limit; the forecast "
                     "is an upper envelope already). 1.0 measured best on the bill, with the peaks kept."),
    )
    shifting_billed_share: float = Field(
        0.0, ge=0.0, le=1.0,
        description=("With demand charges that count at different times (an on-peak window beside the all-hours "
                     "peak), the share of the way from each charge's plan up to what that charge bills already "
                     "at which energy shifting sizes its reserve: 0 keeps the battery for the plan even when a "
                     "higher peak is billed (the limit held is then the billed one), 1 spends everything above "
                     "the billed peaks. 0.25 earned most on the tuning runs (us-tou) and on sites with a large "
                     "battery for their dear hours, but lost up to a third of the saving on others: a site's "
                     "choice, measured in benchmarks/README.md."),
    )
    # export limit
    max_export_kw: float | None = Field(
        None, ge=0, le=1_000_000, description="Largest export allowed, kW; PV is curtailed beyond it. None: no limit."
    )
    # boiler
    boiler_enabled: bool = Field(True, description="Use the boiler to soak up PV surplus.")
    boiler_normal_setpoint_c: float = Field(55.0, ge=0, le=120, description="Thermostat setpoint without surplus, °C.")
    boiler_soak_setpoint_c: float = Field(80.0, ge=0, le=120, description="Setpoint while soaking up PV, °C.")
    # fail-safe
    meter_stale_s: float = Field(
        10.0, gt=0, le=3600, description="Meter data older than this puts the batteries on hold, seconds."
    )
    asset_stale_s: float = Field(
        30.0, gt=0, le=3600, description="Asset telemetry older than this leaves the asset out of allocation, s."
    )
    command_refresh_s: float = Field(
        20.0, gt=0, le=3600, description="Re-send unchanged setpoints this often (keeps asset watchdogs fed), s."
    )
    command_deadband_kw: float = Field(0.5, ge=0, le=10_000, description="Smaller setpoint changes are not sent, kW.")
    # the asset modules the controller commands, by asset type
    asset_modules: dict[str, str] = Field(
        default_factory=lambda: {"battery": "battery", "solar": "solar", "boiler": "boiler",
                                 "microgrid_controller": "microgrid-controller"},
        description="IoT Edge module id that drives each asset type.",
    )
    method_timeout_s: float = Field(5.0, ge=5, le=60, description="Response timeout of a command, seconds.")
    # what the controller believes
    assets: dict[AssetTypeName, list[str]] | None = Field(
        None,
        description="The site's assets by type (the asset ids the asset modules drive). Telemetry of any other "
        "asset is refused. None: every asset that its type's module (asset_modules) reports is accepted.",
    )
    clock_skew_s: float = Field(
        5.0, gt=0, le=3600,
        description="Telemetry stamped further than this from the module's clock (older, or in the future) is "
        "refused, seconds.",
    )
    # reporting
    summary_interval_s: float = Field(60.0, ge=1, le=86_400, description="Site summary upstream every, seconds.")
    capability_refresh_s: float = Field(
        900.0, ge=10, le=86_400, description="Capability status is re-sent upstream at least this often, seconds."
    )

    @field_validator("tariff", mode="before")
    @classmethod
    def _tariff_by_name(cls, value: Any) -> Any:
        return resolve(value)

    @model_validator(mode="after")
    def _soc_order(self) -> ControllerConfig:
        if not self.min_soc_pct <= self.reserve_soc_pct <= self.max_soc_pct:
            raise ValueError("need min_soc_pct <= reserve_soc_pct <= max_soc_pct")
        return self

    @model_validator(mode="after")
    def _asset_ids(self) -> ControllerConfig:
        seen: set[str] = set()
        for kind, ids in (self.assets or {}).items():
            for asset_id in ids:
                if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", asset_id):
                    raise ValueError(f"assets.{kind}: {asset_id!r} is not an asset id")
                if asset_id in seen:
                    raise ValueError(f"assets.{kind}: {asset_id!r} is listed twice")
                seen.add(asset_id)
        return self

    def allows(self, asset_type: str, asset_id: str) -> bool:
        """Is this asset part of the site's configuration?"""
        return self.assets is None or asset_id in self.assets.get(asset_type, [])  # type: ignore[call-overload]
