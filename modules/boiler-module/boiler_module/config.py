"""Twin configuration of the boiler module."""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator

from energy_edge_base.asset import AssetModuleConfig, DeviceSettings
from energy_edge_base.devices import device_type_names, load_device_type


class BoilerSettings(DeviceSettings):
    model_config = ConfigDict(extra="forbid", title="boiler device")
    rated_kw: float | None = Field(None, gt=0, le=100_000, description="Heater rating, kW (default: the device's).")
    idle_setpoint_c: float = Field(
        55.0, ge=0, le=120, description="Setpoint the boiler returns to in its safe state, °C."
    )
    device_type: str = Field(
        "boiler", description="The boiler's register map: a device type data file of kind boiler "
        "(energy_edge_base/devices/<type>.json), e.g. boiler or boiler_nordvarme.",
    )

    @field_validator("device_type")
    @classmethod
    def _known_boiler_type(cls, value: str) -> str:
        boilers = [n for n in device_type_names() if load_device_type(n).kind == "boiler"]
        if value not in boilers:
            raise ValueError(f"unknown boiler device type {value!r} (known: {', '.join(boilers)})")
        return value


class BoilerConfig(AssetModuleConfig):
    model_config = ConfigDict(extra="forbid", title="boiler module configuration")
    watchdog_s: float = Field(
        300.0, ge=0, le=86_400,
        description="Return a boiler to its idle setpoint when no command arrived for this long, seconds (0 = off).",
    )
    devices: list[BoilerSettings] = Field(default_factory=list, description="Boilers this module drives.")
