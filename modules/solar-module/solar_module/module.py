"""The solar module: telemetry per inverter; start, stop, output limit and reset."""

from __future__ import annotations

from pydantic import Field, model_validator

from energy_edge_base.asset import AssetModule, AssetRequest, CommandResponse
from solar_module.config import SolarConfig
from solar_module.device import SolarDevice


class OutputRequest(AssetRequest):
    power_kw: float | None = Field(None, ge=0, le=1_000_000, description="Output limit, kW.")
    percent: float | None = Field(None, ge=0, le=100, description="Output limit, % of the AC rating.")

    @model_validator(mode="after")
    def _one_of(self) -> OutputRequest:
        if (self.power_kw is None) == (self.percent is None):
            raise ValueError("give exactly one of power_kw and percent")
        return self


class SolarModule(AssetModule[SolarConfig, SolarDevice]):
    name = "solar"
    config_model = SolarConfig
    device_class = SolarDevice

    def __init__(self) -> None:
        super().__init__()
        m = self.methods
        m.register("set_output", OutputRequest, CommandResponse, self.set_output,
                   "Limit AC output to power_kw or percent of the rating (curtailment).")
        m.register_batch("set_outputs", "set_output",
                         "set_output for many inverters in one call: {commands: [{asset_id, power_kw | percent}, "
                         "...]}, one result per command.")
        m.register("start", AssetRequest, CommandResponse, self.start, "Connect the inverter to the grid.")
        m.register("stop", AssetRequest, CommandResponse, self.stop, "Disconnect the inverter.")
        m.register("reset", AssetRequest, CommandResponse, self.reset,
                   "Re-discover, lift the output limit and connect.")

    async def set_output(self, request: OutputRequest) -> CommandResponse:
        device = self.device(request.asset_id)
        if request.percent is not None:
            requested = {"percent": request.percent}
            wanted_pct = request.percent
        else:
            assert request.power_kw is not None
            requested = {"power_kw": request.power_kw}
            wanted_pct = device.kw_to_pct(request.power_kw)
        applied_pct, read_back = await device.set_limit_pct(wanted_pct)
        clamped = abs(applied_pct - wanted_pct) > 0.01
        applied = {"percent": applied_pct, "power_kw": device.setpoint_kw}
        return CommandResponse(asset_id=device.asset_id, command="set_output", requested=requested,
                               applied=applied, clamped=clamped, read_back=read_back,
                               message="clamped to the rating" if clamped else "")

    async def _connect(self, name: str, request: AssetRequest, connected: bool) -> CommandResponse:
        device = self.device(request.asset_id)
        read_back = await device.set_connected(connected)
        return CommandResponse(asset_id=device.asset_id, command=name, requested={"connected": connected},
                               applied={"connected": connected}, clamped=False, read_back=read_back)

    async def start(self, request: AssetRequest) -> CommandResponse:
        return await self._connect("start", request, True)

    async def stop(self, request: AssetRequest) -> CommandResponse:
        return await self._connect("stop", request, False)

    async def reset(self, request: AssetRequest) -> CommandResponse:
        device = self.device(request.asset_id)
        await device.close()
        read_back = {**await device.clear_limit(), **await device.set_connected(True)}
        return CommandResponse(asset_id=device.asset_id, command="reset", requested={}, applied={"limit": None,
                               "connected": True}, clamped=False, read_back=read_back,
                               message="re-discovered, limit lifted, connected")
