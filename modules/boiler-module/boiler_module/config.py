"""Twin configuration of the boiler module."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from energy_edge_base.asset import AssetModuleConfig, DeviceSettings


class BoilerSettings(DeviceSettings):
    model_config = ConfigDict(extra="forbid", title="boiler device")
    rated_kw: float | None = Field(None, gt=0, le=100_000, description="Heater rating, kW (default: the device's).")
    idle_setpoint_c: float = Field(
        55.0, ge=0, le=120, description="Setpoint the boiler returns to in its safe state, °C."
    )


class BoilerConfig(AssetModuleConfig):
    model_config = ConfigDict(extra="forbid", title="boiler module configuration")
    watchdog_s: float = Field(
        300.0, ge=0, le=86_400,
        description="Return a boiler to its idle setpoint when no command arrived for this long, seconds (0 = off).",
    )
    devices: list[BoilerSettings] = Field(default_factory=list, description="Boilers this module drives.")
