"""An electric hot-water boiler on the vendor map: thermostat setpoint, enable and a heater power limit.

Safe state: enabled, thermostat at the idle setpoint, heater limit at the rating, so the boiler
keeps the water hot on its own when the controller is gone.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from boiler_module.config import BoilerSettings
from boiler_module.registers import STATES
from energy_edge_base.asset import AssetDevice, AssetModule, clamp
from energy_edge_base.contract import BoilerTelemetry, utc_now
from energy_edge_base.devices import load_device_type
from energy_edge_base.liveness import Liveness
from energy_edge_base.methods import MethodError
from energy_edge_base.modbus import ModbusTransport, RegisterMap


class BoilerDevice(AssetDevice[BoilerSettings]):
    """A boiler on the map of its `device_type` data file (the vendor map v1 by default)."""

    def __init__(self, settings: BoilerSettings, module: AssetModule[Any, Any]) -> None:
        super().__init__(settings, module)
        device_type = load_device_type(settings.device_type)
        self.map = device_type.register_map()
        self.liveness = Liveness(device_type.liveness_spec())

    async def register_map(self, transport: ModbusTransport) -> RegisterMap:
        return self.map

    def _on_step(self, name: str, value: float) -> float:
        """`value` rounded to what the register holds (0.1 K on vendor map v1, 0.5 K on others)."""
        step = self.map[name].resolution()
        return round(round(value / step) * step, 6) if step > 0 else value

    @property
    def rated_kw(self) -> float:
        rated = self.settings.rated_kw or self.values.get("rated_power_kw")
        if not isinstance(rated, (int, float)) or rated <= 0:
            raise MethodError(503, f"{self.asset_id}: heater rating unknown", asset_id=self.asset_id)
        return float(rated)

    def temperature_band_c(self) -> tuple[float, float]:
        low, high = self.values.get("min_temp_c"), self.values.get("max_temp_c")
        if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
            raise MethodError(503, f"{self.asset_id}: temperature limits unknown", asset_id=self.asset_id)
        return float(low), float(high)

    async def set_temperature(self, setpoint_c: float) -> tuple[float, dict[str, Any]]:
        await self.ensure_values()
        low, high = self.temperature_band_c()
        applied = self._on_step("setpoint_c", clamp(setpoint_c, low, high))
        read_back = {"setpoint_c": await self.write("setpoint_c", applied)}
        self.note_command(active=abs(applied - self.settings.idle_setpoint_c) > 0.05)
        return applied, read_back

    async def start(self, power_kw: float | None) -> tuple[float, dict[str, Any]]:
        await self.ensure_values()
        applied = round(clamp(power_kw if power_kw is not None else self.rated_kw, 0.0, self.rated_kw), 1)
        read_back = {
            "power_limit_kw": await self.write("power_limit_kw", applied),
            "enable": await self.write("enable", 1),
        }
        self.setpoint_kw = -applied  # drawn from the site bus
        self.note_command(active=applied < self.rated_kw)
        return applied, read_back

    async def stop(self) -> dict[str, Any]:
        await self.ensure_values()
        self.setpoint_kw = 0.0
        self.note_command(active=True)
        return {"enable": await self.write("enable", 0)}

    async def reset(self) -> dict[str, Any]:
        await self.ensure_values()
        return {"reset": await self.write("reset", 1)}

    async def safe_state(self) -> None:
        await self.ensure_values()
        low, high = self.temperature_band_c()
        await self.write("setpoint_c", self._on_step("setpoint_c", clamp(self.settings.idle_setpoint_c, low, high)))
        await self.write("power_limit_kw", round(self.rated_kw, 1))
        await self.write("enable", 1)
        self.setpoint_kw = None

    def telemetry(self, site_id: str) -> BaseModel:
        v = self.values if self.online else {}
        heater_kw = v.get("heater_power_kw")
        heater_kw = float(heater_kw) if isinstance(heater_kw, (int, float)) else 0.0
        state = STATES.get(int(v.get("state") or 0), "unknown") if self.online else "offline"
        fault_code = int(v.get("fault_code") or 0) if self.online else 1
        return BoilerTelemetry(
            site_id=site_id,
            asset_id=self.asset_id,
            timestamp=utc_now(),
            power_kw=-heater_kw,  # heating draws from the site bus
            setpoint_kw=self.setpoint_kw,
            online=self.online,
            status=state,
            fault_code=fault_code or (1 if self.fault else None),
            fault=self.fault,
            water_temp_c=_float(v.get("water_temp_c")),
            setpoint_c=_float(v.get("setpoint_c")),
            heater_power_kw=heater_kw,
            state=state if state in (*STATES.values(), "offline") else "fault",
            min_temp_c=_float(v.get("min_temp_c")),
            max_temp_c=_float(v.get("max_temp_c")),
            rated_kw=_float(v.get("rated_power_kw")),
        )


class NordvarmeBoilerDevice(BoilerDevice):
    """Nordvarme EHB (device type boiler_nordvarme): no remote reset, the fault is cleared at the boiler."""

    async def reset(self) -> dict[str, Any]:
        raise MethodError(409, f"{self.asset_id}: a Nordvarme boiler has no remote reset; clear the fault "
                               "at the boiler's panel", asset_id=self.asset_id)


# Boilers whose behaviour differs from BoilerDevice's, by device type; every other boiler type is a BoilerDevice.
DEVICE_CLASSES: dict[str, type[BoilerDevice]] = {"boiler_nordvarme": NordvarmeBoilerDevice}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
