"""The controller module: wraps the decision core with the runtime.

Each cycle: aggregate (telemetry arrives on input `telemetry`), decide (core), write (direct
methods to the asset modules, only when a setpoint changes or a refresh is due), report
(capability status on change and periodically, a site summary every minute, both upstream).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import Gauge
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from controller_module.aggregate import SiteAggregator
from controller_module.core.capability import CapabilityState
from controller_module.core.config import ControllerConfig
from controller_module.core.controller import (
    BoilerCommand,
    BoilerMode,
    Controller,
    Decision,
    Dispatch,
    Memory,
    Mode,
    NotDispatchable,
    Status,
)
from controller_module.core.state import SiteState
from energy_edge_base.clock import SiteClock
from energy_edge_base.contract import (
    BatteryTelemetry,
    CapabilityStatus,
    MicrogridControllerTelemetry,
    SiteSummary,
    SolarTelemetry,
    Telemetry,
    application_properties,
    parse_message,
)
from energy_edge_base.methods import MethodError
from energy_edge_base.runtime import EdgeModule

log = logging.getLogger("controller_module")

# single-asset command method -> its batch form on the asset modules (energy_edge_base.methods.register_batch)
BATCH_METHODS = {"set_power": "set_powers", "set_output": "set_outputs"}


@dataclass(frozen=True)
class Command:
    """One direct method the controller wants an asset to have received, with the value it stands for."""

    asset_type: str
    asset_id: str
    method: str
    payload: dict[str, Any]
    value: Any


CAPABILITY_OUTPUT = "capability"
SUMMARY_OUTPUT = "summary"
PERSIST_EVERY_S = 60.0
MIN_CYCLE_S = 0.2


class DispatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset_id: str | None = Field(None, description="One asset (wins when both are given).")
    site_id: str | None = Field(None, description="The whole site's batteries.")
    power_kw: float = Field(ge=-1_000_000, le=1_000_000, description="kW, + = discharge / deliver to the site bus.")
    duration_s: float = Field(gt=0, le=86_400, description="How long the override lasts, seconds.")

    @model_validator(mode="after")
    def _target(self) -> DispatchRequest:
        if self.asset_id is None and self.site_id is None:
            raise ValueError("give asset_id or site_id")
        return self


class DispatchResponse(BaseModel):
    target: str
    until: str
    requested_kw: float
    split: dict[str, float]
    applied_kw: float
    limited: bool
    message: str = ""


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ControllerStatus(BaseModel):
    """The last decision's status as the module reports it (twin `status`, `get_status`)."""

    mode: str = Field(description="fail_safe, dispatch, peak_shaving, balancing or idle.")
    reason: str = Field(description="Why, for people (with the priorities that limited the decision).")
    grid_import_kw: float | None = Field(description="Grid import the decision was made on, kW.")
    grid_import_avg_15min_kw: float | None = Field(description="Rolling 15-minute mean import, kW.")
    month_peak_kw: float = Field(description="The month's largest billing-quarter mean import so far, kW.")
    limit_kw: float | None = Field(description="The import limit guarded, kW; null: none.")
    limit_source: str = Field(description="twin, planned, month floor, rule, outside tariff windows or none.")
    target_kw: float | None = Field(description="What the controller aims at in this quarter, kW.")
    margin_kw: float | None = Field(description="Limit minus the 15-minute mean import, kW.")
    battery_kw: float = Field(description="The batteries' total setpoint, kW, + discharge.")
    limited_by: list[str] = Field(description="Priorities that could not have their way, highest first.")
    battery_setpoints_kw: dict[str, float] = Field(description="Setpoint per battery, kW, + discharge.")
    tracking_error_kw: dict[str, float] = Field(description="Rolling mean of setpoint minus actual per asset, kW.")
    inputs_refused: dict[str, int] = Field(description="Inputs refused since the start, by kind.")


class StatusResponse(BaseModel):
    status: dict[str, Any] = Field(description="A ControllerStatus; {} before the first cycle.")


class ControllerModule(EdgeModule[ControllerConfig]):
    name = "controller"
    config_model = ControllerConfig
    outputs = EdgeModule.outputs | {CAPABILITY_OUTPUT, SUMMARY_OUTPUT}
    input_names = frozenset({"telemetry"})

    def __init__(self) -> None:
        super().__init__()
        self.clock = SiteClock.from_environment()
        self.aggregator = SiteAggregator()
        self.state_path = Path(os.environ.get("STATE_DIR", "data")) / "controller-state.json"
        self.controller: Controller | None = None
        self.decision: Decision | None = None
        self.sent: dict[tuple[str, str], tuple[Any, float]] = {}
        self.without_batch: set[str] = set()  # modules that answered 404 to a batch method
        self.tracking_kw: dict[str, float] = {}
        self.capabilities: dict[str, CapabilityState] = {}
        self.capability_sent_s: dict[str, float] = {}
        self.summary_window: list[tuple[float, float]] = []
        self.summary_started: dt.datetime | None = None
        self.meter_update = asyncio.Event()
        self._cycle_errors: set[str] = set()
        self.tracking_gauge = Gauge(
            "energy_edge_controller_tracking_error_watts",
            "Rolling mean of setpoint − actual per asset (batteries, and PV while curtailed).", ["asset_id"],
            registry=self.metrics.registry,
        )
        self.inputs["telemetry"] = self.on_telemetry
        self.methods.register("dispatch", DispatchRequest, DispatchResponse, self.dispatch,
                              "Operator override for one asset or the whole site for duration_s.")
        self.methods.register("get_status", Empty, StatusResponse, self.get_status, "The last decision's status.")

    # ------------------------------------------------------------ configuration and state

    async def apply_config(self, config: ControllerConfig) -> None:
        if self.controller is None:
            self.controller = Controller(config, self._load_memory())
        else:
            self.controller.config = config

    def _load_memory(self) -> Memory:
        memory = Memory()
        try:
            memory.restore(json.loads(self.state_path.read_text()))
            log.info("resumed from %s (month peak %.1f kW)", self.state_path, memory.quarters.month_peak_kw)
        except FileNotFoundError:
            pass
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable %s: %s", self.state_path, exc)
        return memory

    def _persist(self) -> None:
        if self.controller is None:
            return
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.controller.memory.to_record()))
            tmp.replace(self.state_path)
        except OSError as exc:
            log.warning("state not persisted: %s", exc)

    # ------------------------------------------------------------ inputs

    async def on_telemetry(self, body: Any, message: Any) -> None:
        telemetry = self.accept(body, message)
        if telemetry is not None:
            self.take(telemetry)

    def take(self, telemetry: Telemetry) -> None:
        """Accepted telemetry (a contract model) into the site state and the tracking metrics."""
        self.aggregator.add(telemetry, time.monotonic(), self.clock.now())
        if isinstance(telemetry, MicrogridControllerTelemetry):
            self.meter_update.set()  # a new meter reading starts the next cycle
        # A setpoint is a target for batteries; for PV it is only a cap, meaningful while curtailed.
        setpoint, power = telemetry.setpoint_kw, telemetry.power_kw
        tracked = isinstance(telemetry, BatteryTelemetry) or (isinstance(telemetry, SolarTelemetry)
                                                              and telemetry.curtailed)
        if tracked and setpoint is not None:
            error = setpoint - power
            asset_id = telemetry.asset_id
            self.tracking_kw[asset_id] = 0.8 * self.tracking_kw.get(asset_id, error) + 0.2 * error
            self.tracking_gauge.labels(asset_id=asset_id).set(self.tracking_kw[asset_id] * 1000)

    def accept(self, body: Any, message: Any) -> Telemetry | None:
        """The telemetry the controller may believe, or None (counted, logged once per kind).

        Every input is parsed with the contract's models (strict types, finite numbers, every field present),
        must be asset telemetry of this site, from the module that drives its asset type, of an asset in the
        site's configuration, and stamped within `clock_skew_s` of this module's clock. One NaN, a string
        where a number belongs or a forged hour-old reading would otherwise steer the batteries (or end the
        process)."""
        cfg = self.config
        try:
            telemetry = parse_message(body)
        except (ValidationError, TypeError, ValueError) as exc:
            self.refuse_input("invalid", str(exc).replace("\n", " ")[:300])
            return None
        if not isinstance(telemetry, Telemetry):
            self.refuse_input("not_telemetry", f"{telemetry.message_type} on input telemetry")
            return None
        source = (getattr(message, "custom_properties", None) or {}).get("$.cmid")
        expected = cfg.asset_modules.get(telemetry.asset_type, telemetry.asset_type)
        if source != expected:
            self.refuse_input("wrong_source", f"{telemetry.asset_type} telemetry from module {source!r}, "
                                              f"not {expected!r}")
            return None
        if telemetry.site_id != cfg.site_id:
            self.refuse_input("other_site", f"{telemetry.asset_id} of site {telemetry.site_id!r}")
            return None
        if not cfg.allows(telemetry.asset_type, telemetry.asset_id):
            self.refuse_input("unknown_asset", f"{telemetry.asset_type} {telemetry.asset_id!r} is not in the "
                                               "site's configuration (assets)")
            return None
        skew_s = telemetry.timestamp.timestamp() - time.time()
        if skew_s < -cfg.clock_skew_s or skew_s > cfg.clock_skew_s:
            self.refuse_input("stale" if skew_s < 0 else "future",
                              f"{telemetry.asset_id} stamped {skew_s:+.1f} s from this module's clock")
            return None
        return telemetry

    # ------------------------------------------------------------ the cycle

    async def run(self) -> None:
        assert self.controller is not None
        last_persist = time.monotonic()
        while True:
            started = time.monotonic()
            try:
                await self._cycle(started)
            except Exception as exc:
                # Nothing a cycle meets may end the process: a restart loses the quarter's state and
                # leaves the batteries to their watchdogs. Counted, logged once per kind, and the next
                # cycle starts from fresh state.
                self.metrics.invalid_inputs.labels(kind="cycle_error").inc()
                if type(exc).__name__ not in self._cycle_errors:
                    self._cycle_errors.add(type(exc).__name__)
                    log.exception("control cycle failed; the next one runs")
            if started - last_persist > PERSIST_EVERY_S:
                self._persist()
                last_persist = started
            await self._next_cycle(started)

    async def _cycle(self, started: float) -> None:
        assert self.controller is not None
        self.controller.config = self.config
        site = self.aggregator.site_state(started, self.clock.now())
        previous = self.decision.status if self.decision else None
        self.decision = self.controller.step(site)
        await self._write(self.decision, site)
        await self._say_mode_change(previous, self.decision.status)
        await self._report(self.decision, site)

    async def _say_mode_change(self, previous: Status | None, status: Status) -> None:
        """Entering or leaving the fail-safe is news: the twin's `status` and an `event` say it at once."""
        was_safe = previous is not None and previous.mode is Mode.FAIL_SAFE
        is_safe = status.mode is Mode.FAIL_SAFE
        if is_safe and (previous is None or not was_safe or previous.reason != status.reason):
            self.event("fail_safe_entered", "critical", f"fail-safe, batteries on hold: {status.reason}")
        elif was_safe and not is_safe:
            self.event("fail_safe_left", "info", f"control resumed ({status.mode.value}): {status.reason}")
        else:
            return
        await self.report({"status": self._status_doc()})

    async def _next_cycle(self, started: float) -> None:
        """Cycle when a new meter reading arrives (a load step is answered within one meter poll, not a
        poll plus a cycle timer in series), at most every MIN_CYCLE_S; without readings, every 1.5 cycles
        so the stale-meter fail-safe still runs."""
        await asyncio.sleep(max(0.0, MIN_CYCLE_S - (time.monotonic() - started)))
        try:
            await asyncio.wait_for(self.meter_update.wait(), max(0.0, 1.5 * self.config.cycle_s
                                                                 - (time.monotonic() - started)))
        except asyncio.TimeoutError:
            pass
        self.meter_update.clear()

    async def safe_state(self) -> None:
        self._persist()  # the batteries' own watchdogs take them to idle; the state survives the restart

    async def _write(self, decision: Decision, site: SiteState) -> None:
        commands = []
        for asset_id, kw in decision.battery_kw.items():
            commands.append(Command("battery", asset_id, "set_power", {"power_kw": kw}, kw))
        for asset_id, limit in decision.solar_limit_kw.items():
            if limit is None:
                commands.append(Command("solar", asset_id, "set_output", {"percent": 100}, None))
            else:
                commands.append(Command("solar", asset_id, "set_output", {"power_kw": max(0.0, limit)}, limit))
        for asset_id, command in decision.boiler.items():
            commands.extend(self._boiler_commands(asset_id, command))
        groups: dict[tuple[str, str], list[Command]] = {}
        for c in commands:
            if self._due(c):
                module_id = self.config.asset_modules.get(c.asset_type, c.asset_type)
                groups.setdefault((module_id, c.method), []).append(c)
        await asyncio.gather(*(self._send(module_id, method, group) for (module_id, method), group in groups.items()))

    def _boiler_commands(self, asset_id: str, command: BoilerCommand) -> list[Command]:
        if command.mode is BoilerMode.HOLD:
            return [Command("boiler", asset_id, "stop", {}, "hold")]
        return [
            Command("boiler", asset_id, "set_temperature", {"setpoint_c": command.setpoint_c}, command.setpoint_c),
            Command("boiler", asset_id, "start", {"power_kw": command.power_kw}, command.power_kw),
        ]

    def _due(self, command: Command) -> bool:
        """A command is sent when its value changed (beyond the deadband) or a refresh is due."""
        previous = self.sent.get((command.asset_id, command.method))
        if previous is None or time.monotonic() - previous[1] >= self.config.command_refresh_s:
            return True
        old, value = previous[0], command.value
        same = old == value or (
            isinstance(old, (int, float)) and isinstance(value, (int, float))
            and abs(old - value) < self.config.command_deadband_kw
        )
        return not same

    async def _send(self, module_id: str, method: str, group: list[Command]) -> None:
        """Several commands of one kind to one module go as one batch call (one HTTP request instead of one per
        asset: the device SDK sends them one at a time); a module without the batch method gets them singly."""
        batch = BATCH_METHODS.get(method)
        if batch and len(group) > 1 and module_id not in self.without_batch:
            result = await self.invoke(module_id, batch,
                                       {"commands": [{"asset_id": c.asset_id, **c.payload} for c in group]})
            if result is not None and result.get("status") == 200:
                for command, item in zip(group, result["payload"]["results"], strict=True):
                    self._record(command, item)
                return
            if result is not None and result.get("status") == 404 and "known_methods" in result.get("payload", {}):
                self.without_batch.add(module_id)  # an older module: one call per asset from now on
            else:
                for command in group:
                    self._record(command, None)  # try again next cycle
                return
        await asyncio.gather(*(self._send_one(module_id, c) for c in group))

    async def _send_one(self, module_id: str, command: Command) -> None:
        result = await self.invoke(module_id, command.method, {"asset_id": command.asset_id, **command.payload})
        self._record(command, result)

    def _record(self, command: Command, result: dict[str, Any] | None) -> None:
        key = (command.asset_id, command.method)
        if result is not None and result.get("status") == 200:
            self.sent[key] = (command.value, time.monotonic())
            if command.asset_type == "battery" and isinstance(command.value, (int, float)):
                applied = result.get("payload", {}).get("applied", {}).get("power_kw", command.value)
                self.aggregator.commanded(command.asset_id, time.time(), float(applied))
        else:
            self.sent.pop(key, None)  # try again next cycle

    async def invoke(self, module_id: str, method: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        assert self.runtime is not None
        device_id = os.environ.get("IOTEDGE_DEVICEID", "")
        try:
            result: dict[str, Any] = await self.runtime.client.invoke_method(
                {"methodName": method, "payload": payload, "responseTimeoutInSeconds": self.config.method_timeout_s},
                device_id, module_id,
            )
        except Exception as exc:
            log.warning("%s.%s failed: %s", module_id, method, exc)
            return None
        if result.get("status") != 200:
            log.warning("%s.%s(%s) -> %s %s", module_id, method, payload, result.get("status"), result.get("payload"))
        return result

    # ------------------------------------------------------------ reporting

    async def _report(self, decision: Decision, site: SiteState) -> None:
        status = decision.status
        cfg = self.config
        now_s = time.monotonic()
        changed = {}
        for name, state in status.capabilities.items():
            previous = self.capabilities.get(name)
            due = now_s - self.capability_sent_s.get(name, float("-inf")) >= cfg.capability_refresh_s
            if not state.same_as(previous) or due:
                message = CapabilityStatus(
                    site_id=cfg.site_id, capability=name, state=state.state, raw_value=state.raw_value,
                    source=state.source, reason=state.reason, conflict=state.conflict, timestamp=state.timestamp,
                )
                self.send(CAPABILITY_OUTPUT, message, application_properties(message))
                self.capability_sent_s[name] = now_s
                if not state.same_as(previous):
                    changed[name] = message.model_dump(mode="json")
                self.capabilities[name] = state
        if changed:
            await self.report({"capabilities": changed})
        # summary over the window
        grid = status.grid_import_kw
        if grid is not None:
            self.summary_window.append((now_s, grid))
        if self.summary_started is None:
            self.summary_started = site.now
        if (site.now - self.summary_started).total_seconds() >= cfg.summary_interval_s and self.summary_window:
            values = [v for _, v in self.summary_window]
            socs = [b.soc_pct for b in site.batteries if b.online and b.soc_pct is not None]
            summary = SiteSummary(
                site_id=cfg.site_id, window_start=self.summary_started, window_end=site.now,
                grid_import_avg_kw=round(sum(values) / len(values), 3), grid_import_max_kw=round(max(values), 3),
                import_limit_kw=status.limit_kw, margin_kw=status.margin_kw, pv_kw=round(site.pv_power_kw, 3),
                battery_kw=round(site.battery_power_kw, 3),
                battery_soc_pct=round(sum(socs) / len(socs), 2) if socs else None,
                boiler_kw=round(site.boiler_power_kw, 3), mode=status.mode.value,
            )
            self.send(SUMMARY_OUTPUT, summary, application_properties(summary))
            self.summary_window, self.summary_started = [], site.now
            await self.report({"status": self._status_doc()})

    def _status(self) -> ControllerStatus | None:
        if self.decision is None:
            return None
        s = self.decision.status
        return ControllerStatus(
            mode=s.mode.value, reason=s.reason, grid_import_kw=s.grid_import_kw,
            grid_import_avg_15min_kw=s.grid_import_avg_15min_kw, month_peak_kw=s.month_peak_kw,
            limit_kw=s.limit_kw, limit_source=s.limit_source, target_kw=s.target_kw,
            margin_kw=s.margin_kw, battery_kw=s.battery_kw, limited_by=list(s.limited_by),
            battery_setpoints_kw=self.decision.battery_kw,
            tracking_error_kw={k: round(v, 3) for k, v in self.tracking_kw.items()},
            inputs_refused=dict(self.refused_inputs),
        )

    def _status_doc(self) -> dict[str, Any]:
        """The status as JSON for the twin and `get_status` ({} before the first cycle)."""
        status = self._status()
        return {} if status is None else status.model_dump(mode="json")

    # ------------------------------------------------------------ methods

    async def get_status(self, request: Empty) -> StatusResponse:
        return StatusResponse(status=self._status_doc())

    async def dispatch(self, request: DispatchRequest) -> DispatchResponse:
        """The core takes the dispatch and says what it does; the module checks the target exists."""
        assert self.controller is not None
        now = self.clock.now()
        until = now + dt.timedelta(seconds=request.duration_s)
        site = self.aggregator.site_state(time.monotonic(), now)
        if request.asset_id is not None:
            latest = self.aggregator.latest.get(request.asset_id)
            if latest is None:
                raise MethodError(404, f"unknown asset_id {request.asset_id!r}", known_assets=sorted(
                    self.aggregator.latest))
            order, kind, target = Dispatch(request.power_kw, until, request.asset_id), latest.telemetry.asset_type, \
                f"asset:{request.asset_id}"
        elif request.site_id != self.config.site_id:
            raise MethodError(404, f"unknown site_id {request.site_id!r}", site_id=self.config.site_id)
        else:
            order, kind, target = Dispatch(request.power_kw, until), None, f"site:{request.site_id}"
        try:
            outcome = self.controller.dispatch(order, kind, site)
        except NotDispatchable as exc:
            raise MethodError(400, str(exc)) from None
        return DispatchResponse(
            target=target, until=until.isoformat(), requested_kw=request.power_kw, split=outcome.split_kw,
            applied_kw=outcome.applied_kw, limited=outcome.limited,
            message="clamped to what the batteries can do now" if outcome.limited else "",
        )
