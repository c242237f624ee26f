"""Twin configuration of the microgrid-controller module."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from energy_edge_base.asset import AssetModuleConfig, DeviceSettings


class PccSettings(DeviceSettings):
    model_config = ConfigDict(extra="forbid", title="microgrid controller device")
    protocol: Literal["modbus", "mqtt"] = Field("modbus", description="How the controller publishes its data.")
    port: int = Field(502, ge=1, le=65535, description="Modbus TCP port, or the MQTT broker's port.")
    topic_prefix: str = Field("pcc", min_length=1, description="MQTT: prefix of the controller's topics.")
    mqtt_username: str | None = Field(None, description="MQTT: user name, if the broker needs one.")
    mqtt_password: str | None = Field(None, description="MQTT: password, if the broker needs one.")
    stale_after_s: float = Field(
        10.0, gt=0, le=3600, description="MQTT: a controller silent for this long is reported offline, seconds."
    )

    @model_validator(mode="after")
    def _prefix(self) -> PccSettings:
        if "#" in self.topic_prefix or "+" in self.topic_prefix:
            raise ValueError("topic_prefix may not contain MQTT wildcards")
        return self

class PccConfig(AssetModuleConfig):
    model_config = ConfigDict(extra="forbid", title="microgrid-controller module configuration")
    devices: list[PccSettings] = Field(default_factory=list, description="Site controllers / PCC meters.")
