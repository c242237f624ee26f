"""A SunSpec PV inverter: discovery, telemetry, connect/disconnect and the active power limit (model 123)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from energy_edge_base.asset import AssetDevice, clamp
from energy_edge_base.contract import SolarTelemetry, utc_now
from energy_edge_base.methods import MethodError
from energy_edge_base.modbus import ModbusTransport, RegisterMap
from energy_edge_base.sunspec import AC_ENERGY_LIVENESS, discover_map
from solar_module.config import SolarSettings

MODELS = (1, 103, 120, 123)
REQUIRED_MODELS = (103, 123)
# SunSpec 103 St
OPERATING_STATE = {1: "off", 2: "sleeping", 3: "starting", 4: "mppt", 5: "throttled", 6: "shutting_down",
                   7: "fault", 8: "standby"}


class SolarDevice(AssetDevice[SolarSettings]):
    liveness_points = AC_ENERGY_LIVENESS

    async def register_map(self, transport: ModbusTransport) -> RegisterMap:
        return await discover_map(transport, f"solar {self.asset_id}", MODELS, REQUIRED_MODELS)

    @property
    def rated_kw(self) -> float | None:
        if self.settings.rated_kw:
            return self.settings.rated_kw
        value = self.values.get("rated_power_w")
        return value / 1000 if isinstance(value, (int, float)) and value > 0 else None

    async def set_limit_pct(self, limit_pct: float) -> tuple[float, dict[str, Any]]:
        """Limit output to a % of the rating; 100 % lifts the limit (WMaxLim_Ena = 0)."""
        await self.ensure_values()
        applied_pct = round(clamp(limit_pct, 0.0, 100.0), 2)
        if applied_pct >= 100:
            return 100.0, await self.clear_limit()
        if self.settings.limit_revert_s:
            await self.write("power_limit_revert_s", self.settings.limit_revert_s)
        read_back = {
            "power_limit_pct": await self.write("power_limit_pct", applied_pct),
            "power_limit_enable": await self.write("power_limit_enable", 1),
        }
        rated = self.rated_kw
        self.setpoint_kw = round(applied_pct / 100 * rated, 3) if rated else None
        return applied_pct, read_back

    async def set_connected(self, connected: bool) -> dict[str, Any]:
        await self.ensure_values()
        return {"connect": await self.write("connect", 1 if connected else 0)}

    async def clear_limit(self) -> dict[str, Any]:
        await self.ensure_values()
        self.setpoint_kw = None
        return {"power_limit_enable": await self.write("power_limit_enable", 0)}

    def kw_to_pct(self, power_kw: float) -> float:
        rated = self.rated_kw
        if not rated:
            raise MethodError(503, f"{self.asset_id}: rating unknown (set rated_kw or read the nameplate)",
                              asset_id=self.asset_id)
        return power_kw / rated * 100

    def telemetry(self, site_id: str) -> BaseModel:
        v = self.values if self.online else {}
        ac_power_w = v.get("ac_power_w")
        ac_power_kw = ac_power_w / 1000 if isinstance(ac_power_w, (int, float)) else 0.0
        limit_enabled = v.get("power_limit_enable") == 1
        limit_pct = v.get("power_limit_pct") if limit_enabled else 100.0
        state = OPERATING_STATE.get(int(v.get("operating_state") or 0), "unknown") if self.online else "offline"
        return SolarTelemetry(
            site_id=site_id,
            asset_id=self.asset_id,
            timestamp=utc_now(),
            power_kw=ac_power_kw,
            setpoint_kw=self.setpoint_kw,
            online=self.online,
            status=state,
            fault_code=None if self.online and not self.fault else 1,
            fault=self.fault,
            ac_power_kw=ac_power_kw,
            irradiance_w_m2=None,  # inverters report no irradiance; a site sensor would
            power_limit_pct=float(limit_pct) if isinstance(limit_pct, (int, float)) else None,
            curtailed=bool(limit_enabled and isinstance(limit_pct, (int, float)) and limit_pct < 100),
            rated_kw=self.rated_kw,
        )
