"""The battery module: telemetry per battery, and power commands clamped to each battery's ratings."""

from __future__ import annotations

from pydantic import Field

from battery_module.config import BatteryConfig
from battery_module.device import BatteryDevice
from energy_edge_base.asset import AssetModule, AssetRequest, CommandResponse


class PowerRequest(AssetRequest):
    power_kw: float = Field(gt=0, le=1_000_000, description="Charge or discharge power, kW (magnitude).")


class SignedPowerRequest(AssetRequest):
    power_kw: float = Field(
        ge=-1_000_000, le=1_000_000, description="Setpoint, kW: + = discharge to the site bus, − = charge."
    )


class BatteryModule(AssetModule[BatteryConfig, BatteryDevice]):
    name = "battery"
    config_model = BatteryConfig
    device_class = BatteryDevice

    def __init__(self) -> None:
        super().__init__()
        m = self.methods
        m.register("set_power", SignedPowerRequest, CommandResponse, self.set_power,
                   "Set the power setpoint, kW (+ discharge, − charge), clamped to the ratings.")
        m.register_batch("set_powers", "set_power",
                         "set_power for many batteries in one call: {commands: [{asset_id, power_kw}, ...]}, "
                         "one result per command.")
        m.register("start_charging", PowerRequest, CommandResponse, self.start_charging, "Charge at power_kw.")
        m.register("start_discharging", PowerRequest, CommandResponse, self.start_discharging,
                   "Discharge at power_kw.")
        m.register("stop", AssetRequest, CommandResponse, self.stop, "Hold: 0 kW.")
        m.register("reset", AssetRequest, CommandResponse, self.reset,
                   "Re-discover the device and return it to idle.")

    async def _command(self, name: str, asset_id: str | None, power_kw: float) -> CommandResponse:
        device = self.device(asset_id)
        applied_kw, read_back = await device.set_power(power_kw)
        clamped = abs(applied_kw - power_kw) > 1e-9
        return CommandResponse(
            asset_id=device.asset_id, command=name, requested={"power_kw": power_kw},
            applied={"power_kw": applied_kw}, clamped=clamped, read_back=read_back,
            message=f"clamped to the rating ({applied_kw:g} kW)" if clamped else "",
        )

    async def set_power(self, request: SignedPowerRequest) -> CommandResponse:
        return await self._command("set_power", request.asset_id, request.power_kw)

    async def start_charging(self, request: PowerRequest) -> CommandResponse:
        return await self._command("start_charging", request.asset_id, -request.power_kw)

    async def start_discharging(self, request: PowerRequest) -> CommandResponse:
        return await self._command("start_discharging", request.asset_id, request.power_kw)

    async def stop(self, request: AssetRequest) -> CommandResponse:
        return await self._command("stop", request.asset_id, 0.0)

    async def reset(self, request: AssetRequest) -> CommandResponse:
        device = self.device(request.asset_id)
        await device.close()
        response = await self._command("reset", request.asset_id, 0.0)
        return response.model_copy(update={"message": "re-discovered and idle"})
