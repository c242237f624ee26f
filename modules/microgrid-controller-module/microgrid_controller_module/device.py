"""The site's microgrid controller / PCC meter, over Modbus TCP or MQTT.

Both transports fill `values` with the same point names (registers.py), so telemetry and commands
don't care which one is in use.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from pydantic import BaseModel

from energy_edge_base.asset import AssetDevice
from energy_edge_base.contract import MicrogridControllerTelemetry, utc_now
from energy_edge_base.methods import MethodError
from energy_edge_base.modbus import DeviceUnavailable, ModbusTransport, RegisterMap
from microgrid_controller_module.config import PccSettings
from microgrid_controller_module.registers import (
    PCC_LIVENESS,
    PCC_MAP,
    PCC_TOPICS,
    STATUS_DER,
    STATUS_GRID_CONNECTED,
    STATUS_PEAK_SHAVING,
)

log = logging.getLogger("microgrid_controller_module")


class MqttLink:
    """Subscribes to the controller's topics; keeps the last value of each point with its age."""

    def __init__(self, settings: PccSettings) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix.rstrip("/")
        self.by_topic = {f"{self.prefix}/{p.topic}": p for p in PCC_TOPICS}
        self.values: dict[str, float] = {}
        self.updated_s: float | None = None
        self._lock = threading.Lock()
        self._changed: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.client = paho.Client(client_id=f"energy-edge-{settings.asset_id}", protocol=paho.MQTTv311)
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 30)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: int) -> None:
        if rc == 0:
            client.subscribe(f"{self.prefix}/#", qos=1)
        else:
            log.warning("%s: MQTT broker refused the connection (rc %d)", self.settings.asset_id, rc)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        point = self.by_topic.get(message.topic)
        if point is None:
            return
        try:
            payload = json.loads(message.payload)
            value = float(payload["value"] if isinstance(payload, dict) else payload)
        except (ValueError, KeyError, TypeError):
            log.warning("%s: unreadable payload on %s", self.settings.asset_id, message.topic)
            return
        with self._lock:
            self.values[point.name] = value
            self.updated_s = time.monotonic()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._notify, point.name)

    def _notify(self, name: str) -> None:
        event = self._changed.get(name)
        if event is not None:
            event.set()

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            fresh = self.updated_s is not None and time.monotonic() - self.updated_s <= self.settings.stale_after_s
            if not fresh:
                raise DeviceUnavailable(self.settings.asset_id, "no MQTT data from the controller")
            return dict(self.values)

    async def write(self, name: str, value: float) -> float:
        """Publish a command and wait for the controller to confirm the new value."""
        point = next(p for p in PCC_TOPICS if p.name == name)
        event = self._changed.setdefault(name, asyncio.Event())
        event.clear()
        info = self.client.publish(f"{self.prefix}/set/{point.topic}", json.dumps({"value": value}), qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise DeviceUnavailable(self.settings.asset_id, f"MQTT publish failed (rc {info.rc})")
        try:
            await asyncio.wait_for(self._confirmed(name, value, event), self.settings.timeout_s)  # request timeout
        except asyncio.TimeoutError as exc:
            raise DeviceUnavailable(self.settings.asset_id, f"controller did not confirm {name}") from exc
        with self._lock:
            return self.values[name]

    async def _confirmed(self, name: str, value: float, event: asyncio.Event) -> None:
        """Until the controller publishes the commanded value: a periodic publish of the old value, or one
        still in flight from before the command, is not a confirmation."""
        while True:
            await event.wait()
            event.clear()
            with self._lock:
                if math.isclose(self.values.get(name, math.nan), value, rel_tol=1e-6, abs_tol=1e-6):
                    return


class PccDevice(AssetDevice[PccSettings]):
    liveness_points = PCC_LIVENESS

    def __init__(self, settings: PccSettings, module: Any) -> None:
        super().__init__(settings, module)
        self.mqtt: MqttLink | None = None

    async def register_map(self, transport: ModbusTransport) -> RegisterMap:
        return PCC_MAP

    async def poll(self) -> None:
        if self.settings.protocol == "modbus":
            await super().poll()
            return
        if self.mqtt is None:
            self.mqtt = MqttLink(self.settings)
            self.mqtt.start()
        self.values = self.mqtt.snapshot()

    async def write(self, name: str, value: Any) -> Any:
        if self.settings.protocol == "modbus":
            return await super().write(name, value)
        if self.mqtt is None:
            raise MethodError(503, f"{self.asset_id} is offline: not connected yet", asset_id=self.asset_id)
        try:
            return await self.mqtt.write(name, float(value))
        except DeviceUnavailable as exc:
            raise MethodError(503, f"{self.asset_id}: {exc}", asset_id=self.asset_id) from exc

    async def close(self) -> None:
        if self.mqtt is not None:
            self.mqtt.stop()
            self.mqtt = None
        await super().close()

    def status_bits(self) -> int:
        return int(self.values.get("status") or 0)

    def telemetry(self, site_id: str) -> BaseModel:
        v = self.values if self.online else {}
        status = self.status_bits() if self.online else 0
        grid_w = v.get("grid_import_w")
        load_w = v.get("site_load_w")
        limit_w = v.get("import_limit_w")
        grid_kw = grid_w / 1000 if isinstance(grid_w, (int, float)) else 0.0
        return MicrogridControllerTelemetry(
            site_id=site_id,
            asset_id=self.asset_id,
            timestamp=utc_now(),
            power_kw=grid_kw,  # the grid as a source on the site bus: import delivers power (+)
            setpoint_kw=None,
            online=self.online,
            status=("grid_connected" if status & STATUS_GRID_CONNECTED else "islanded") if self.online else "offline",
            fault_code=int(v.get("fault_code") or 0) or (1 if self.fault else None),
            fault=self.fault,
            grid_import_kw=grid_kw,
            site_load_kw=load_w / 1000 if isinstance(load_w, (int, float)) else None,
            frequency_hz=_float(v.get("frequency_hz")),
            voltage_v=_float(v.get("voltage_v")),
            peak_shaving_active=bool(status & STATUS_PEAK_SHAVING) if self.online else None,
            der_active=bool(status & STATUS_DER) if self.online else None,
            import_limit_kw=limit_w / 1000 if isinstance(limit_w, (int, float)) else None,
        )


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
