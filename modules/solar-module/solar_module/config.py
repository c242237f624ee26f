"""Twin configuration of the solar module."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from energy_edge_base.asset import AssetModuleConfig, DeviceSettings


class SolarSettings(DeviceSettings):
    model_config = ConfigDict(extra="forbid", title="solar inverter")
    rated_kw: float | None = Field(
        None, gt=0, le=100_000, description="AC rating, kW (default: the inverter's nameplate WRtg)."
    )
    limit_revert_s: int = Field(
        0, ge=0, le=65_535,
        description="Revert timer written with every power limit, seconds (0 = the limit holds until changed).",
    )


class SolarConfig(AssetModuleConfig):
    model_config = ConfigDict(extra="forbid", title="solar module configuration")
    devices: list[SolarSettings] = Field(default_factory=list, description="Inverters this module drives.")
