"""The microgrid-controller module: PCC telemetry (with the controller's own PEAK_SHAVING / DER
booleans); set_import_limit, set_peak_shaving, set_der and reset."""

from __future__ import annotations

from pydantic import Field

from energy_edge_base.asset import AssetModule, AssetRequest, CommandResponse
from microgrid_controller_module.config import PccConfig
from microgrid_controller_module.device import PccDevice


class ImportLimitRequest(AssetRequest):
    import_limit_kw: float = Field(ge=0, le=1_000_000, description="Import limit the controller guards, kW.")


class SwitchRequest(AssetRequest):
    enabled: bool = Field(description="On (true) or off (false).")


class PccModule(AssetModule[PccConfig, PccDevice]):
    name = "microgrid-controller"
    config_model = PccConfig
    device_class = PccDevice

    def __init__(self) -> None:
        super().__init__()
        m = self.methods
        m.register("set_import_limit", ImportLimitRequest, CommandResponse, self.set_import_limit,
                   "Set the import limit the site controller guards, kW.")
        m.register("set_peak_shaving", SwitchRequest, CommandResponse, self.set_peak_shaving,
                   "Switch the controller's own peak shaving on or off.")
        m.register("set_der", SwitchRequest, CommandResponse, self.set_der,
                   "Switch the controller's DER participation on or off.")
        m.register("reset", AssetRequest, CommandResponse, self.reset, "Clear a controller fault.")

    async def set_import_limit(self, request: ImportLimitRequest) -> CommandResponse:
        device = self.device(request.asset_id)
        limit_w = round(request.import_limit_kw * 1000)
        read_back = await device.write("import_limit_w", limit_w)
        return CommandResponse(
            asset_id=device.asset_id, command="set_import_limit",
            requested={"import_limit_kw": request.import_limit_kw}, applied={"import_limit_kw": limit_w / 1000},
            clamped=False, read_back={"import_limit_kw": float(read_back) / 1000},
        )

    async def _switch(self, name: str, point: str, request: SwitchRequest) -> CommandResponse:
        device = self.device(request.asset_id)
        read_back = await device.write(point, 1 if request.enabled else 0)
        return CommandResponse(asset_id=device.asset_id, command=name, requested={"enabled": request.enabled},
                               applied={"enabled": request.enabled}, clamped=False,
                               read_back={"enabled": bool(read_back)})

    async def set_peak_shaving(self, request: SwitchRequest) -> CommandResponse:
        return await self._switch("set_peak_shaving", "peak_shaving_enable", request)

    async def set_der(self, request: SwitchRequest) -> CommandResponse:
        return await self._switch("set_der", "der_enable", request)

    async def reset(self, request: AssetRequest) -> CommandResponse:
        device = self.device(request.asset_id)
        read_back = await device.write("reset", 1)
        return CommandResponse(asset_id=device.asset_id, command="reset", requested={}, applied={"reset": 1},
                               clamped=False, read_back={"reset": read_back})
