"""Twin configuration of the battery module."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from energy_edge_base.asset import AssetModuleConfig, DeviceSettings


class BatterySettings(DeviceSettings):
    model_config = ConfigDict(extra="forbid", title="battery device")
    capacity_kwh: float | None = Field(
        None, gt=0, le=100_000, description="Usable capacity, kWh (default: the device's nameplate)."
    )
    max_charge_kw: float | None = Field(
        None, gt=0, le=100_000, description="Charge power limit, kW (default: the device's WChaMax)."
    )
    max_discharge_kw: float | None = Field(
        None, gt=0, le=100_000, description="Discharge power limit, kW (default: the device's WChaMax)."
    )
    revert_s: int = Field(
        0, ge=0, le=65_535,
        description="Device-side revert timer written with every setpoint, seconds (0 = the device's default).",
    )


class BatteryConfig(AssetModuleConfig):
    model_config = ConfigDict(extra="forbid", title="battery module configuration")
    watchdog_s: float = Field(
        60.0, ge=0, le=86_400,
        description="Return a battery to idle when no command arrived for this long, seconds (0 = off).",
    )
    devices: list[BatterySettings] = Field(default_factory=list, description="Batteries this module drives.")
