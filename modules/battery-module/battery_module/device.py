"""A SunSpec storage inverter: discovery, telemetry, and the power setpoint through model 124.

Setpoint convention (+ = discharge to the site bus, − = charge), written as SunSpec 124 controls:
StorCtl_Mod bit 1 + OutWRte (% of WChaMax) to discharge, bit 0 + InWRte to charge, 0 to hold.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from battery_module.config import BatterySettings
from energy_edge_base.asset import AssetDevice, clamp
from energy_edge_base.contract import BatteryTelemetry, utc_now
from energy_edge_base.methods import MethodError
from energy_edge_base.modbus import ModbusTransport, RegisterMap
from energy_edge_base.sunspec import AC_ENERGY_LIVENESS, discover_map

MODELS = (1, 103, 120, 124, 713)
REQUIRED_MODELS = (103, 124)
CHARGE_BIT = 0x1
DISCHARGE_BIT = 0x2
# SunSpec 124 ChaSt
CHARGE_STATUS = {1: "off", 2: "empty", 3: "discharging", 4: "charging", 5: "full", 6: "holding", 7: "testing"}


class BatteryDevice(AssetDevice[BatterySettings]):
    liveness_points = AC_ENERGY_LIVENESS

    async def register_map(self, transport: ModbusTransport) -> RegisterMap:
        return await discover_map(transport, f"battery {self.asset_id}", MODELS, REQUIRED_MODELS)

    # ------------------------------------------------------------ ratings (config wins over nameplate)

    def _device_kw(self, name: str) -> float | None:
        value = self.values.get(name)
        return value / 1000 if isinstance(value, (int, float)) and value > 0 else None

    @property
    def rated_kw(self) -> float | None:
        return self._device_kw("max_charge_w")

    @property
    def max_charge_kw(self) -> float:
        return self.settings.max_charge_kw or self.rated_kw or 0.0

    @property
    def max_discharge_kw(self) -> float:
        return self.settings.max_discharge_kw or self.rated_kw or 0.0

    @property
    def capacity_kwh(self) -> float | None:
        if self.settings.capacity_kwh:
            return self.settings.capacity_kwh
        for name in ("capacity_wh", "rated_energy_wh"):
            kwh = self._device_kw(name)
            if kwh:
                return kwh
        return None

    @property
    def soc_pct(self) -> float | None:
        value = self.values.get("soc_pct")
        if value is None:
            value = self.values.get("state_of_charge_pct")
        return float(value) if isinstance(value, (int, float)) else None

    # ------------------------------------------------------------ commands

    async def set_power(self, power_kw: float) -> tuple[float, dict[str, Any]]:
        """Clamp to the ratings, write the 124 controls, return (applied kW, read-back)."""
        await self.ensure_values()  # WChaMax is needed to express the setpoint as a rate
        rated_kw = self.rated_kw
        if not rated_kw:
            raise MethodError(503, f"{self.asset_id}: the device does not report WChaMax", asset_id=self.asset_id)
        applied_kw = clamp(power_kw, -self.max_charge_kw, self.max_discharge_kw)
        rate_pct = round(abs(applied_kw) / rated_kw * 100, 2)
        if self.settings.revert_s:
            await self.write("rate_revert_s", self.settings.revert_s)
        # OutWRte and InWRte are adjacent (124 offsets 12, 13): one FC16 sets both, so the device never
        # holds one new rate and one old one. The order against StorCtl_Mod is what keeps a stop or a
        # reversal from briefly commanding the wrong direction: when starting, the rates go first (the
        # old mode bit now points at a zero rate); when holding, the mode goes to 0 first.
        read_back: dict[str, Any]
        if applied_kw > 0:
            read_back = await self.write_many({"discharge_rate_pct": rate_pct, "charge_rate_pct": 0})
            read_back["storage_control_mode"] = await self.write("storage_control_mode", DISCHARGE_BIT)
        elif applied_kw < 0:
            read_back = await self.write_many({"charge_rate_pct": rate_pct, "discharge_rate_pct": 0})
            read_back["storage_control_mode"] = await self.write("storage_control_mode", CHARGE_BIT)
        else:
            read_back = {"storage_control_mode": await self.write("storage_control_mode", 0)}
            read_back.update(await self.write_many({"discharge_rate_pct": 0, "charge_rate_pct": 0}))
        self.setpoint_kw = applied_kw
        self.note_command(active=applied_kw != 0)
        read_back["setpoint_kw"] = _setpoint_from(read_back, rated_kw)
        return applied_kw, read_back

    async def safe_state(self) -> None:
        await self.set_power(0.0)

    # ------------------------------------------------------------ telemetry

    def telemetry(self, site_id: str) -> BaseModel:
        v = self.values if self.online else {}
        ac_power_w = v.get("ac_power_w")
        capacity_kwh = self.capacity_kwh
        soc_pct = self.soc_pct if self.online else None
        available_wh = v.get("available_energy_wh")
        if isinstance(available_wh, (int, float)):
            energy_kwh: float | None = available_wh / 1000
        elif soc_pct is not None and capacity_kwh:
            energy_kwh = soc_pct / 100 * capacity_kwh
        else:
            energy_kwh = None
        return BatteryTelemetry(
            site_id=site_id,
            asset_id=self.asset_id,
            timestamp=utc_now(),
            power_kw=ac_power_w / 1000 if isinstance(ac_power_w, (int, float)) else 0.0,
            setpoint_kw=self.setpoint_kw,
            online=self.online,
            status=CHARGE_STATUS.get(int(v.get("charge_status") or 0), "unknown") if self.online else "offline",
            fault_code=None if self.online and not self.fault else 1,
            fault=self.fault,
            soc_pct=soc_pct,
            soh_pct=_float(v.get("soh_pct")),
            energy_kwh=energy_kwh,
            capacity_kwh=capacity_kwh,
            max_charge_kw=self.max_charge_kw,
            max_discharge_kw=self.max_discharge_kw,
        )


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _setpoint_from(read_back: dict[str, Any], rated_kw: float) -> float:
    """The setpoint the device now holds, from what it read back (+ = discharge)."""
    mode = int(read_back.get("storage_control_mode") or 0)
    if mode & DISCHARGE_BIT:
        return round(float(read_back.get("discharge_rate_pct") or 0) / 100 * rated_kw, 3)
    if mode & CHARGE_BIT:
        return -round(float(read_back.get("charge_rate_pct") or 0) / 100 * rated_kw, 3)
    return 0.0
