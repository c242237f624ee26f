"""What every asset module shares: a list of devices from the twin, one poll loop, telemetry per
device, offline handling with backoff, a command watchdog, and method plumbing.

An asset module (solar, battery, boiler, microgrid-controller) supplies only its domain: the
device settings model, how to find its register map, how register values become telemetry, what
its safe state is, and its methods. This file is the one generic piece that drives them.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from energy_edge_base.config import ConfigRejected
from energy_edge_base.contract import application_properties
from energy_edge_base.methods import MethodError
from energy_edge_base.modbus import (
    BackoffPolicy,
    DeviceRejected,
    DeviceUnavailable,
    ModbusPoller,
    ModbusTransport,
    RegisterMap,
    RegisterValueError,
    WriteVerificationError,
)
from energy_edge_base.modbus.poller import PymodbusTcpTransport
from energy_edge_base.runtime import EdgeModule

log = logging.getLogger("energy_edge_base.asset")

TELEMETRY_OUTPUT = "telemetry"
EVENTS_OUTPUT = "events"


class DeviceSettings(BaseModel):
    """Where one device is and how to reach it. Modules extend this with ratings."""

    model_config = ConfigDict(extra="forbid")
    asset_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Unique id of the asset on the site.")
    host: str = Field(min_length=1, description="Modbus TCP host name or address of the device.")
    port: int = Field(502, ge=1, le=65535, description="Modbus TCP port.")
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id.")
    timeout_s: float = Field(2.0, gt=0, le=30, description="Timeout of one Modbus request, seconds.")


class AssetModuleConfig(BaseModel):
    """Settings every asset module has; modules add `devices: list[TheirDeviceSettings]`."""

    model_config = ConfigDict(extra="forbid")
    site_id: str = Field("site-1", min_length=1, description="Site the assets belong to.")
    poll_interval_s: float = Field(1.0, ge=0.1, le=3600, description="Interval between device polls, seconds.")
    watchdog_s: float = Field(
        0.0, ge=0, le=86_400,
        description="Return a device to its safe state when no command arrived for this long, seconds (0 = off).",
    )
    devices: list[Any] = Field(default_factory=list)


S = TypeVar("S", bound=DeviceSettings)
C = TypeVar("C", bound=AssetModuleConfig)


class AssetDevice(abc.ABC, Generic[S]):
    """One device: its poller, last values, online state and command bookkeeping."""

    def __init__(self, settings: S, module: AssetModule[Any, Any]) -> None:
        self.settings = settings
        self.module = module
        self.poller: ModbusPoller | None = None
        self.values: dict[str, Any] = {}
        self.online = False
        self.fault: str | None = None
        self.fault_code: int | None = None
        self.setpoint_kw: float | None = None  # what the last command asked of the device (+ deliver)
        self.commanded = False  # a command other than idle is in force (the watchdog watches it)
        self.last_command_s: float = time.monotonic()
        self._backoff = BackoffPolicy()
        self._failures = 0
        self._retry_at_s = 0.0

    @property
    def asset_id(self) -> str:
        return self.settings.asset_id

    # ------------------------------------------------------------ what modules provide

    @abc.abstractmethod
    async def register_map(self, transport: ModbusTransport) -> RegisterMap:
        """The device's map: static, or discovered over `transport` (SunSpec)."""

    @abc.abstractmethod
    def telemetry(self, site_id: str) -> BaseModel:
        """Telemetry from `self.values` (also called while offline, with `self.online` False)."""

    async def safe_state(self) -> None:
        """Put the device in its safe state (idle). Default: nothing to do."""
        return None

    def make_transport(self) -> ModbusTransport:
        """The device boundary: Modbus TCP; unit tests substitute a FakeModbusDevice here."""
        s = self.settings
        return PymodbusTcpTransport(s.host, s.port, s.unit_id, s.timeout_s)

    # ------------------------------------------------------------ I/O

    async def connect(self) -> ModbusPoller:
        if self.poller is not None:
            return self.poller
        now = time.monotonic()
        if now < self._retry_at_s:
            raise DeviceUnavailable(self.asset_id, "backing off", retry_in_s=self._retry_at_s - now)
        s = self.settings
        transport = self.make_transport()
        try:
            await transport.connect()
            register_map = await self.register_map(transport)
        except Exception as exc:
            await transport.close()
            self._failures += 1
            self._retry_at_s = now + self._backoff.delay_s(self._failures)
            if isinstance(exc, DeviceUnavailable):
                raise
            raise DeviceUnavailable(self.asset_id, f"discovery failed: {exc}") from exc
        self._failures = 0
        self.poller = ModbusPoller(s.host, s.port, s.unit_id, register_map, s.timeout_s, transport=transport)
        return self.poller

    async def poll(self) -> None:
        poller = await self.connect()
        self.values = dict(await poller.read_all())

    async def ensure_values(self) -> None:
        """Make sure ratings and limits were read once (a command may come before the first poll)."""
        if self.poller is not None and self.values:
            return
        try:
            await self.poll()
        except DeviceUnavailable as exc:
            raise MethodError(503, f"{self.asset_id} is offline: {exc}", asset_id=self.asset_id) from exc
        except DeviceRejected as exc:
            raise MethodError(502, f"{self.asset_id} refused the read: {exc}", asset_id=self.asset_id) from exc

    async def write(self, name: str, value: Any) -> Any:
        """Write one register and return the read-back; errors become method answers."""
        with self._write_errors_as_method_errors():
            poller = await self.connect()
            return await poller.write(name, value)

    async def write_many(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Write adjacent registers in one request and return ``{name: read-back}``; errors as `write`."""
        with self._write_errors_as_method_errors():
            poller = await self.connect()
            return await poller.write_many(values)

    @contextmanager
    def _write_errors_as_method_errors(self) -> Iterator[None]:
        # offline → 503 (retry later), device refused or did not keep the value → 502, bad request → 400
        try:
            yield
        except DeviceUnavailable as exc:
            raise MethodError(503, f"{self.asset_id} is offline: {exc}", asset_id=self.asset_id) from exc
        except DeviceRejected as exc:
            raise MethodError(502, f"{self.asset_id} refused the write: {exc}", asset_id=self.asset_id) from exc
        except WriteVerificationError as exc:
            raise MethodError(502, f"{self.asset_id}: {exc}", asset_id=self.asset_id) from exc
        except RegisterValueError as exc:
            raise MethodError(400, str(exc), asset_id=self.asset_id) from exc

    def note_command(self, active: bool) -> None:
        self.commanded = active
        self.last_command_s = time.monotonic()

    async def close(self) -> None:
        if self.poller is not None:
            await self.poller.close()
            self.poller = None


D = TypeVar("D", bound=AssetDevice[Any])


class AssetModule(EdgeModule[C], Generic[C, D]):
    """Polls every configured device each interval and sends one telemetry message per device."""

    device_class: ClassVar[type[AssetDevice[Any]]]

    def __init__(self) -> None:
        super().__init__()
        self.devices: dict[str, D] = {}
        self._devices_lock = asyncio.Lock()

    async def apply_config(self, config: C) -> None:
        ids = [d.asset_id for d in config.devices]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigRejected(f"duplicate asset_id {', '.join(duplicates)}", "devices")
        async with self._devices_lock:
            wanted = {d.asset_id: d for d in config.devices}
            for asset_id, device in list(self.devices.items()):
                if asset_id not in wanted or wanted[asset_id] != device.settings:
                    await device.close()
                    del self.devices[asset_id]
            for asset_id, settings in wanted.items():
                if asset_id not in self.devices:
                    self.devices[asset_id] = self.device_class(settings, self)  # type: ignore[assignment]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            async with self._devices_lock:
                devices = list(self.devices.values())
                await asyncio.gather(*(self._poll(d) for d in devices))
                await self._check_watchdogs(devices)
            await asyncio.sleep(max(0.0, self.config.poll_interval_s - (loop.time() - started)))

    async def _poll(self, device: D) -> None:
        started = time.perf_counter()
        labels = {"asset_id": device.asset_id}
        try:
            await device.poll()
        except DeviceUnavailable as exc:
            if device.online or device.fault is None:
                log.warning("%s offline: %s", device.asset_id, exc, extra=labels)
            device.online = False
            device.fault = f"unreachable: {exc}"
            self.metrics.device_errors.labels(kind="unavailable", **labels).inc()
        except DeviceRejected as exc:
            log.warning("%s answered with a Modbus exception: %s", device.asset_id, exc, extra=labels)
            device.online = True
            device.fault = f"modbus exception {exc.exception_code}"
            self.metrics.device_errors.labels(kind="rejected", **labels).inc()
        except Exception as exc:  # a decoding or mapping bug must not stop the other devices
            log.exception("%s poll failed", device.asset_id, extra=labels)
            device.fault = f"poll failed: {exc}"
            self.metrics.device_errors.labels(kind="internal", **labels).inc()
        else:
            if not device.online:
                log.info("%s online", device.asset_id, extra=labels)
            device.online = True
            device.fault = None
            self.metrics.device_poll_seconds.labels(**labels).observe(time.perf_counter() - started)
        self.metrics.device_online.labels(**labels).set(1 if device.online else 0)
        message = device.telemetry(self.config.site_id)
        self.send(TELEMETRY_OUTPUT, message, application_properties(message))

    async def _check_watchdogs(self, devices: list[D]) -> None:
        limit_s = self.config.watchdog_s
        if not limit_s:
            return
        now = time.monotonic()
        for device in devices:
            if device.commanded and now - device.last_command_s > limit_s:
                log.warning("%s: no command for %.0f s, back to safe state", device.asset_id, limit_s)
                try:
                    await device.safe_state()
                    device.note_command(active=False)
                except MethodError as exc:
                    log.warning("%s: watchdog could not reach the device: %s", device.asset_id, exc)

    async def safe_state(self) -> None:
        for device in list(self.devices.values()):
            try:
                await device.safe_state()
            except Exception as exc:
                log.warning("%s: safe state not confirmed: %s", device.asset_id, exc)
            await device.close()

    def device(self, asset_id: str | None) -> D:
        """The device a method addresses; the only one when `asset_id` is omitted."""
        if asset_id is None:
            if len(self.devices) == 1:
                return next(iter(self.devices.values()))
            raise MethodError(400, "asset_id is required when the module drives several devices",
                              known_assets=sorted(self.devices))
        try:
            return self.devices[asset_id]
        except KeyError:
            raise MethodError(404, f"unknown asset_id {asset_id!r}", known_assets=sorted(self.devices)) from None


class AssetRequest(BaseModel):
    """Base of every asset method request: which device (optional when there is only one)."""

    model_config = ConfigDict(extra="forbid")
    asset_id: str | None = Field(None, description="Device to command; may be omitted when there is only one.")


class CommandResponse(BaseModel):
    """What a command did: requested vs applied (clamped to ratings), and what the device reads back."""

    asset_id: str
    command: str
    requested: dict[str, Any]
    applied: dict[str, Any]
    clamped: bool
    read_back: dict[str, Any]
    message: str = ""


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
