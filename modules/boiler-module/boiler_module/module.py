"""The boiler module: telemetry per boiler; start (with a heater power limit), stop, set_temperature, reset."""

from __future__ import annotations

from pydantic import Field

from boiler_module.config import BoilerConfig, BoilerSettings
from boiler_module.device import DEVICE_CLASSES, BoilerDevice
from energy_edge_base.asset import AssetModule, AssetRequest, CommandResponse


class StartRequest(AssetRequest):
    power_kw: float | None = Field(None, ge=0, le=100_000,
                                   description="Heater power limit, kW (default: the rating).")


class TemperatureRequest(AssetRequest):
    setpoint_c: float = Field(ge=-50, le=150, description="Water temperature setpoint, °C.")


class BoilerModule(AssetModule[BoilerConfig, BoilerDevice]):
    name = "boiler"
    config_model = BoilerConfig
    device_class = BoilerDevice

    def make_device(self, settings: BoilerSettings) -> BoilerDevice:
        # a vendor whose behaviour differs has its own small class; the others differ only in their data file
        return DEVICE_CLASSES.get(settings.device_type, BoilerDevice)(settings, self)

    def __init__(self) -> None:
        super().__init__()
        m = self.methods
        m.register("start", StartRequest, CommandResponse, self.start,
                   "Enable heating with a heater power limit (default: full rating).")
        m.register("stop", AssetRequest, CommandResponse, self.stop, "Disable heating (standby).")
        m.register("set_temperature", TemperatureRequest, CommandResponse, self.set_temperature,
                   "Set the water temperature setpoint, clamped to the device's band.")
        m.register("reset", AssetRequest, CommandResponse, self.reset, "Clear a device fault.")

    async def start(self, request: StartRequest) -> CommandResponse:
        device = self.device(request.asset_id)
        applied, read_back = await device.start(request.power_kw)
        clamped = request.power_kw is not None and abs(applied - request.power_kw) > 0.05
        return CommandResponse(asset_id=device.asset_id, command="start", requested={"power_kw": request.power_kw},
                               applied={"power_kw": applied}, clamped=clamped, read_back=read_back,
                               message="clamped to the rating" if clamped else "")

    async def stop(self, request: AssetRequest) -> CommandResponse:
        device = self.device(request.asset_id)
        read_back = await device.stop()
        return CommandResponse(asset_id=device.asset_id, command="stop", requested={}, applied={"enable": 0},
                               clamped=False, read_back=read_back)

    async def set_temperature(self, request: TemperatureRequest) -> CommandResponse:
        device = self.device(request.asset_id)
        applied, read_back = await device.set_temperature(request.setpoint_c)
        clamped = abs(applied - request.setpoint_c) > 0.05
        return CommandResponse(asset_id=device.asset_id, command="set_temperature",
                               requested={"setpoint_c": request.setpoint_c}, applied={"setpoint_c": applied},
                               clamped=clamped, read_back=read_back,
                               message="clamped to the device's temperature band" if clamped else "")

    async def reset(self, request: AssetRequest) -> CommandResponse:
        device = self.device(request.asset_id)
        read_back = await device.reset()
        return CommandResponse(asset_id=device.asset_id, command="reset", requested={}, applied={"reset": 1},
                               clamped=False, read_back=read_back)
