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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from energy_edge_base.config import ConfigRejected
from energy_edge_base.contract import application_properties
from energy_edge_base.liveness import Liveness, LivenessSpec
from energy_edge_base.methods import MethodError
from energy_edge_base.modbus import (
    BackoffPolicy,
    DeviceHealth,
    DeviceRejected,
    DeviceUnavailable,
    HealthChange,
    ModbusPoller,
    ModbusTransport,
    PollerEvent,
    RegisterMap,
    RegisterValueError,
    WriteVerificationError,
)
from energy_edge_base.modbus.poller import PymodbusTcpTransport
from energy_edge_base.runtime import EdgeModule

log = logging.getLogger("energy_edge_base.asset")

TELEMETRY_OUTPUT = "telemetry"
RELEASE_TIMEOUT_S = 5.0  # a device leaving the configuration gets this long to reach its safe state
RECONNECT_GRACE_S = 1.0  # reconnect attempts are at most one poll interval plus this apart


class DeviceSettings(BaseModel):
    """Where one device is and how to reach it. Modules extend this with ratings."""

    model_config = ConfigDict(extra="forbid")
    asset_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Unique id of the asset on the site.")
    host: str = Field(min_length=1, description="Modbus TCP host name or address of the device.")
    port: int = Field(502, ge=1, le=65535, description="Modbus TCP port.")
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id.")
    timeout_s: float = Field(2.0, gt=0, le=30, description="Timeout of one Modbus request, seconds.")


_DEVICES_MISSING = object()  # marks a document without `devices` (see AssetModuleConfig._devices_explicit)


class AssetModuleConfig(BaseModel):
    """Settings every asset module has; modules add `devices: list[TheirDeviceSettings]`."""

    model_config = ConfigDict(extra="forbid")
    site_id: str = Field("site-1", min_length=1, description="Site the assets belong to.")
    poll_interval_s: float = Field(1.0, ge=0.1, le=3600, description="Interval between device polls, seconds.")
    watchdog_s: float = Field(
        0.0, ge=0, le=86_400,
        description="Return a device to its safe state when no command arrived for this long, seconds (0 = off).",
    )
    frozen_after_s: float = Field(
        3.0, ge=0, le=3600,
        description="A device whose heartbeat or energy counters stop advancing for this long is reported "
        "offline as frozen, seconds (0 = off). Only points the device offers are checked.",
    )
    devices: list[Any] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _devices_explicit(cls, data: Any) -> Any:
        # A null-delete of `devices` in a twin patch would otherwise leave the default (no devices): the
        # module would stop polling, commanding and watching every device. Dropping them all is only ever
        # an explicit `devices: []`. An empty document (no configuration yet) keeps the defaults.
        if isinstance(data, dict) and data and "devices" not in data:
            return {**data, "devices": _DEVICES_MISSING}
        return data

    @field_validator("devices", mode="before")
    @classmethod
    def _devices_given(cls, value: Any) -> Any:
        if value is _DEVICES_MISSING:
            raise ValueError("devices is required (set it to [] to run this module without devices)")
        return value


S = TypeVar("S", bound=DeviceSettings)
C = TypeVar("C", bound=AssetModuleConfig)


class AssetDevice(abc.ABC, Generic[S]):
    """One device: its poller, last values, health (`self.health`, one record written by the poller and the
    poll loop) and command bookkeeping."""

    def __init__(self, settings: S, module: AssetModule[Any, Any]) -> None:
        self.settings = settings
        self.module = module
        self.poller: ModbusPoller | None = None
        self.values: dict[str, Any] = {}
        self.health = DeviceHealth(clock=time.monotonic)
        self.command_fault: str | None = None  # the device refused the last command (cleared by one it takes)
        self.fault_code: int | None = None
        self.liveness = Liveness(self.liveness_points)
        self.setpoint_kw: float | None = None  # what the last command asked of the device (+ deliver)
        self.commanded = False  # a command other than idle is in force (the watchdog watches it)
        self.last_command_s: float = time.monotonic()

    # Points the device offers that prove its values are live (see Liveness); none by default.
    liveness_points: ClassVar[LivenessSpec | None] = None

    @property
    def asset_id(self) -> str:
        return self.settings.asset_id

    @property
    def online(self) -> bool:
        """The last poll gave usable values (read from `health`)."""
        return self.health.online

    @property
    def poll_fault(self) -> str | None:
        """Why the last poll gave no usable values (read from `health`)."""
        return self.health.fault

    @property
    def fault(self) -> str | None:
        """What is wrong, for people: the poll's fault first, else a refused command; None when all is well."""
        return self.poll_fault or self.command_fault

    @property
    def backoff(self) -> BackoffPolicy:
        """Reconnect delays capped at one poll interval plus RECONNECT_GRACE_S: the retry is made at the next poll
        after the wait, so a device that comes back is online within two poll intervals plus RECONNECT_GRACE_S
        (a request timeout more for a silent one; it took 28 s after a 30 s outage with a 60 s cap)."""
        configured = getattr(self.module, "runtime", None) is not None
        cap_s = self.module.config.poll_interval_s + RECONNECT_GRACE_S if configured else 2.0
        return BackoffPolicy(initial_s=min(1.0, cap_s), max_s=cap_s)

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
        health = self.health
        remaining_s = health.backoff_remaining_s()
        if remaining_s > 0:
            raise DeviceUnavailable(self.asset_id, "backing off", retry_in_s=remaining_s)
        s = self.settings
        transport = self.make_transport()
        health.backoff = self.backoff
        try:
            await transport.connect()
            register_map = await self.register_map(transport)
        except Exception as exc:
            await transport.close()
            health.link_failed(exc, jitter=False)  # discovery retries without jitter, as it always did
            if isinstance(exc, (DeviceUnavailable, DeviceRejected)):
                raise
            raise DeviceUnavailable(self.asset_id, f"discovery failed: {exc}") from exc
        health.discovered()
        on_event = None if self.module is None else self.module.poller_events(self.asset_id)
        self.poller = ModbusPoller(s.host, s.port, s.unit_id, register_map, s.timeout_s, transport=transport,
                                   backoff=self.backoff, health=health, on_event=on_event)
        return self.poller

    async def poll(self) -> None:
        poller = await self.connect()
        self.values = dict(await poller.read_all())

    def check_live(self, now_s: float) -> str | None:
        """Why the values just read are not live (frozen), or None. Called after every good poll."""
        if getattr(self.module, "runtime", None) is None:
            return None
        return self.liveness.check(self.values, now_s, self.module.config.frozen_after_s)

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
            # The device answered but will not take commands: say so in telemetry (fault), so the controller
            # leaves it out of allocation, until a command is taken again.
            self._command_fault(f"command refused: Modbus exception {exc.exception_code} ({exc.exception_name})")
            raise MethodError(502, f"{self.asset_id} refused the write: {exc}", asset_id=self.asset_id) from exc
        except WriteVerificationError as exc:
            raise MethodError(502, f"{self.asset_id}: {exc}", asset_id=self.asset_id) from exc
        except RegisterValueError as exc:
            raise MethodError(400, str(exc), asset_id=self.asset_id) from exc
        if self.command_fault is not None:
            self._command_fault(None)

    def _command_fault(self, fault: str | None) -> None:
        if self.module is None:  # a device driven without its module (unit tests)
            self.command_fault = fault
        else:
            self.module.note_command_fault(self, fault)

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
    outputs: ClassVar[frozenset[str]] = EdgeModule.outputs | {TELEMETRY_OUTPUT}

    def __init__(self) -> None:
        super().__init__()
        self.devices: dict[str, D] = {}
        self._devices_lock = asyncio.Lock()
        self._polls: dict[str, asyncio.Task[None]] = {}  # a poll still running (a device timing out)

    async def apply_config(self, config: C) -> None:
        ids = [d.asset_id for d in config.devices]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigRejected(f"duplicate asset_id {', '.join(duplicates)}", "devices")
        async with self._devices_lock:
            wanted = {d.asset_id: d for d in config.devices}
            for asset_id, device in list(self.devices.items()):
                if asset_id not in wanted or wanted[asset_id] != device.settings:
                    if asset_id not in wanted:
                        await self._release(device)
                    await device.close()
                    del self.devices[asset_id]
            for asset_id, settings in wanted.items():
                if asset_id not in self.devices:
                    self.devices[asset_id] = self.make_device(settings)

    def make_device(self, settings: Any) -> D:
        """The device object for one configured device; a module whose device types differ in behaviour
        picks the class from the settings (the boiler module by `device_type`)."""
        return self.device_class(settings, self)  # type: ignore[return-value]

    async def _release(self, device: D) -> None:
        """A device leaving the configuration is put in its safe state first: once released nobody
        commands or watches it, so a battery left discharging would go on discharging."""
        try:
            await asyncio.wait_for(device.safe_state(), RELEASE_TIMEOUT_S)
            log.info("%s removed from the configuration, left in its safe state", device.asset_id)
        except Exception as exc:
            log.warning("%s removed from the configuration; safe state not confirmed: %s", device.asset_id, exc)
            self.event("device_released_unsafe", "warning",
                       f"{device.asset_id} left the configuration without confirming its safe state: {exc}",
                       device.asset_id)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            async with self._devices_lock:
                devices = list(self.devices.values())
                # A device that times out must not hold back the others' telemetry: its poll goes on in the
                # background and it is skipped until that poll ends.
                for device in devices:
                    task = self._polls.get(device.asset_id)
                    if task is None or task.done():
                        self._polls[device.asset_id] = asyncio.create_task(self._poll(device))
                pending = [t for t in self._polls.values() if not t.done()]
                if pending:
                    await asyncio.wait(pending, timeout=self.config.poll_interval_s)
                await self._check_watchdogs(devices)
            for asset_id in [a for a in self._polls if a not in self.devices]:
                self._polls.pop(asset_id).cancel()
            await asyncio.sleep(max(0.0, self.config.poll_interval_s - (loop.time() - started)))

    async def _poll(self, device: D) -> None:
        started = time.perf_counter()
        labels = {"asset_id": device.asset_id}
        fault: str | None = None
        try:
            await device.poll()
            frozen = device.check_live(time.monotonic())
        except DeviceUnavailable as exc:
            fault = self._poll_failed(device, f"unreachable: {exc}", "unavailable")
        except DeviceRejected as exc:
            # The device answered but gave no values: never report the last good ones under a fresh timestamp.
            fault = self._poll_failed(device, f"modbus exception: {exc.exception_code} ({exc.exception_name}) "
                                              f"to FC{exc.function_code} at {exc.address}", "rejected")
        except Exception as exc:  # a decoding or mapping bug must not stop the other devices
            log.exception("%s poll failed", device.asset_id, extra=labels)
            fault = self._poll_failed(device, f"poll failed: {exc}", "internal")
        else:
            if frozen:
                fault = self._poll_failed(device, frozen, "frozen")
            else:
                self.metrics.device_poll_seconds.labels(**labels).observe(time.perf_counter() - started)
        self._say_health_change(device, device.health.poll_outcome(fault))
        self.metrics.device_online.labels(**labels).set(1 if device.online else 0)
        try:
            message = device.telemetry(self.config.site_id)
        except Exception as exc:  # a value the contract refuses (e.g. NaN from a broken scale factor)
            log.warning("%s: telemetry not sent: %s", device.asset_id, exc, extra=labels)
            self.metrics.device_errors.labels(kind="invalid", **labels).inc()
            device.health.values_refused(self._poll_failed(device, f"invalid values: {exc}", "invalid"))
            message = device.telemetry(self.config.site_id)
        self.send(TELEMETRY_OUTPUT, message, application_properties(message))

    def poller_events(self, asset_id: str) -> Callable[[PollerEvent], None]:
        """The callback a device's poller reports its exchanges through: they feed the exchange metrics."""
        metrics = self.metrics

        def record(event: PollerEvent) -> None:
            metrics.device_exchanges.labels(asset_id=asset_id, operation=event.operation,
                                            outcome=event.error_kind or "ok").inc()
            if event.operation != "refused":
                metrics.device_exchange_seconds.labels(asset_id=asset_id, operation=event.operation).observe(
                    event.duration_s)

        return record

    def _poll_failed(self, device: D, fault: str, kind: str) -> str:
        """Drop the values of a failed poll and count the error; returns the fault for the device's health."""
        device.values = {}
        self.metrics.device_errors.labels(kind=kind, asset_id=device.asset_id).inc()
        return fault

    def _say_health_change(self, device: D, change: HealthChange | None) -> None:
        """Log and send an event for what the device's health says is news: offline, recovered, online."""
        labels = {"asset_id": device.asset_id}
        if change is None:
            return
        if change.change == "offline":
            log.warning("%s offline: %s", device.asset_id, change.fault, extra=labels)
            self.event("device_offline", "warning", f"{device.asset_id} offline: {change.fault}", device.asset_id)
            return
        log.info("%s online", device.asset_id, extra=labels)
        if change.change == "recovered":
            self.event("device_recovered", "info", f"{device.asset_id} is back online (was: {change.fault})",
                       device.asset_id)

    def note_command_fault(self, device: AssetDevice[Any], fault: str | None) -> None:
        """A device refused a command (fault) or took one again (None): reported in telemetry and as an event."""
        if fault == device.command_fault:
            return
        device.command_fault = fault
        if fault is None:
            self.event("device_commands_recovered", "info", f"{device.asset_id} takes commands again",
                       device.asset_id)
        else:
            log.warning("%s: %s", device.asset_id, fault, extra={"asset_id": device.asset_id})
            self.event("device_command_refused", "warning", f"{device.asset_id}: {fault}", device.asset_id)

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
        for task in self._polls.values():
            task.cancel()
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

