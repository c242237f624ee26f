"""Module lifecycle on `IoTHubModuleClient.create_from_edge_environment()`, the production path.

A module subclasses `EdgeModule` (configuration model, methods, inputs, a `run` loop, a safe
state) and calls `run_module(MyModule())`. The runtime connects with retry, applies the twin
configuration, bridges SDK callbacks onto one asyncio loop, sends through a bounded outbox, and on
SIGTERM/SIGINT stops device I/O, puts assets in their safe state, flushes, disconnects, exits 0.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic

from azure.iot.device import Message, MethodResponse
from azure.iot.device.aio import IoTHubModuleClient
from pydantic import BaseModel, ConfigDict

from energy_edge_base.config import ConfigOutcome, ConfigT, TwinConfig
from energy_edge_base.contract import Event, Severity, application_properties, utc_now
from energy_edge_base.events import EVENTS_OUTPUT, EventLimiter, burst_from
from energy_edge_base.logs import configure_logging
from energy_edge_base.methods import MethodRegistry
from energy_edge_base.metrics import ModuleMetrics
from energy_edge_base.outbox import Outbox, build_message

log = logging.getLogger("energy_edge_base.runtime")

InputHandler = Callable[[Any, Message], Awaitable[None]]

CONNECT_RETRY_MIN_S = 1.0
CONNECT_RETRY_MAX_S = 30.0
SAFE_STATE_TIMEOUT_S = 5.0
FLUSH_TIMEOUT_S = 5.0


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigReport(BaseModel):
    module: str
    started: str
    config: dict[str, Any]


class EdgeModule(abc.ABC, Generic[ConfigT]):
    """What a module is: its configuration, methods, inputs, main loop and safe state."""

    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    # What the module sends and handles, as data: the manifest check reads these (routes must name outputs a
    # module sends on and inputs it handles); `send` refuses an undeclared output and the runtime an input
    # handler that is not declared, so the declaration cannot drift from the code.
    outputs: ClassVar[frozenset[str]] = frozenset({EVENTS_OUTPUT})
    input_names: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self.methods = MethodRegistry()
        self.inputs: dict[str, InputHandler] = {}
        self.metrics = ModuleMetrics(self.name)
        self.runtime: ModuleRuntime[ConfigT] | None = None
        self.event_limiter = EventLimiter(burst=burst_from(os.environ))
        self.refused_inputs: dict[str, int] = {}  # by kind, for the status a module reports

    @property
    def config(self) -> ConfigT:
        assert self.runtime is not None
        return self.runtime.config.current

    def send(self, output: str, body: BaseModel | Mapping[str, Any], properties: Mapping[str, str] | None = None
             ) -> None:
        """Queue a JSON message on `output` (never blocks; see Outbox for what happens when full)."""
        if output not in self.outputs:
            raise ValueError(f"{self.name} sends on output {output!r}, which it does not declare in `outputs`")
        assert self.runtime is not None
        self.runtime.outbox.put(output, build_message(body, properties))

    async def report(self, patch: dict[str, Any]) -> None:
        assert self.runtime is not None
        await self.runtime.report(patch)

    def event(self, code: str, severity: Severity, text: str, asset_id: str | None = None) -> None:
        """Send an `event` upstream (output `events`), within the module's rate limit (see events.py)."""
        if not self.event_limiter.allow():
            self.metrics.events.labels(code=code, outcome="suppressed").inc()
            log.warning("event %s held back by the rate limit: %s", code, text)
            return
        held_back = self.event_limiter.take_held_back()
        if held_back:
            text += f" ({held_back} earlier event(s) held back by the rate limit)"
        site_id = getattr(self.runtime.config.current, "site_id", None) if self.runtime else None
        message = Event(site_id=site_id if isinstance(site_id, str) and site_id else None, severity=severity,
                        code=code, text=text[:1000], asset_id=asset_id, timestamp=utc_now())
        self.metrics.events.labels(code=code, outcome="sent").inc()
        self.send(EVENTS_OUTPUT, message, application_properties(message))

    def refuse_input(self, kind: str, detail: str) -> None:
        """Count a refused input message and log the first of each kind (a flood must not flood the log)."""
        self.metrics.invalid_inputs.labels(kind=kind).inc()
        self.refused_inputs[kind] = self.refused_inputs.get(kind, 0) + 1
        if self.refused_inputs[kind] == 1:
            log.warning("input refused (%s): %s; further ones of this kind are only counted", kind, detail)

    @property
    def state_dir(self) -> Path:
        """The module's volume (`STATE_DIR`): what must survive a restart lives here."""
        return Path(os.environ.get("STATE_DIR", "data"))

    @abc.abstractmethod
    async def apply_config(self, config: ConfigT) -> None:
        """Make `config` the one in force, or raise ConfigRejected. Called before `run` starts too."""

    @abc.abstractmethod
    async def run(self) -> None:
        """The module's work (polling devices, control cycles) until cancelled."""

    async def safe_state(self) -> None:
        """Put the assets in their safe state (called on shutdown, after `run` was cancelled)."""
        return None


class ModuleRuntime(Generic[ConfigT]):
    def __init__(self, module: EdgeModule[ConfigT], client_factory: Callable[[], Any] | None = None) -> None:
        self.module = module
        self.metrics = module.metrics
        self.config: TwinConfig[ConfigT] = TwinConfig(
            module.config_model, module.apply_config,  # type: ignore[arg-type]
            store=module.state_dir / f"{module.name}-config.json",
        )
        self._client_factory = client_factory or IoTHubModuleClient.create_from_edge_environment
        self.client: Any = None
        self.outbox = Outbox(self._send, self.metrics)
        self.stopping = asyncio.Event()
        self._config_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._initial_version = -1
        module.runtime = self
        if set(module.inputs) != module.input_names:
            raise ValueError(f"{module.name} handles inputs {sorted(module.inputs)} but declares "
                             f"{sorted(module.input_names)} in `input_names`")
        module.methods.on_result.append(
            lambda name, status: self.metrics.method_calls.labels(method=name, status=str(status)).inc()
        )
        # What the module last reported under `config`, also answered by `get_config`: another module (the
        # site console) cannot read this module's twin, but it can call its methods.
        self.started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.last_reported: dict[str, Any] = {}
        module.methods.register("get_config", NoArguments, ConfigReport, self._get_config,
                                "This module's twin configuration status (as reported) and when it started.")

    # ------------------------------------------------------------ SDK bridge

    async def _send(self, message: Message, output: str) -> None:
        await self.client.send_message_to_output(message, output)

    def _on_sdk_thread(self, coro: Coroutine[Any, Any, None]) -> None:
        """SDK handlers run on the SDK's threads; everything the module does runs on our loop."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _install_handlers(self) -> None:
        self.client.on_message_received = lambda message: self._on_sdk_thread(self._on_message(message))
        self.client.on_method_request_received = lambda request: self._on_sdk_thread(self._on_method(request))
        self.client.on_twin_desired_properties_patch_received = lambda patch: self._on_sdk_thread(
            self._on_desired_patch(patch)
        )
        self.client.on_connection_state_change = lambda: self._on_sdk_thread(self._on_connection_change())

    async def _on_connection_change(self) -> None:
        connected = bool(self.client.connected)
        self.metrics.hub_connected.set(1 if connected else 0)
        if connected:
            self.outbox.connected.set()
        else:
            self.outbox.connected.clear()
        log.info("edgeHub %s", "connected" if connected else "disconnected")

    async def _on_message(self, message: Message) -> None:
        input_name = message.input_name or ""
        self.metrics.messages_received.labels(input=input_name).inc()
        handler = self.module.inputs.get(input_name)
        if handler is None:
            self.metrics.messages_dropped.labels(reason="unknown_input").inc()
            log.warning("message on unknown input %r dropped", input_name)
            return
        try:
            body = json.loads(message.data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            self.metrics.messages_dropped.labels(reason="invalid").inc()
            log.warning("message on %r is not JSON; dropped", input_name)
            return
        try:
            await handler(body, message)
        except Exception:
            self.metrics.messages_dropped.labels(reason="handler_error").inc()
            log.exception("handler for input %r failed", input_name, extra={"input": input_name})

    async def _on_method(self, request: Any) -> None:
        result = await self.module.methods.dispatch(request.name, request.payload)
        log.info("method %s -> %d", request.name, result.status, extra={"method": request.name})
        response = MethodResponse.create_from_method_request(request, result.status, result.payload)
        try:
            await self.client.send_method_response(response)
        except Exception:
            log.exception("could not send the response to %s", request.name)

    async def _on_desired_patch(self, patch: dict[str, Any]) -> None:
        async with self._config_lock:
            version = patch.get("$version")
            if isinstance(version, int) and version <= self._initial_version:
                return  # already part of the twin read at start-up
            await self._publish_outcome(await self.config.patch(patch))

    async def _publish_outcome(self, outcome: ConfigOutcome) -> None:
        self.metrics.twin_config.labels(result=outcome.status).inc()
        if outcome.status == "rejected":
            fields = ", ".join(e["field"] for e in outcome.errors) or "(config)"
            kept = f"; running on {outcome.fallback}" if outcome.fallback else ""
            self.module.event("config_rejected", "warning",
                              f"desired configuration v{outcome.desired_version} rejected ({fields}){kept}")
        reported = self.config.reported(outcome)
        self.last_reported = next(iter(reported.values()))
        await self.report(reported)

    async def _get_config(self, request: NoArguments) -> ConfigReport:
        return ConfigReport(module=self.module.name, started=self.started, config=self.last_reported)

    async def report(self, patch: dict[str, Any]) -> None:
        try:
            await self.client.patch_twin_reported_properties(patch)
        except Exception as exc:
            log.warning("reported properties not sent: %s", exc)

    # ------------------------------------------------------------ lifecycle

    async def _connect(self) -> bool:
        delay_s = CONNECT_RETRY_MIN_S
        while not self.stopping.is_set():
            try:
                await self.client.connect()
                await self._on_connection_change()
                return True
            except Exception as exc:
                log.warning("cannot connect to edgeHub (%s); retrying in %.1f s", exc, delay_s)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay_s * (0.8 + 0.4 * random.random()))
            delay_s = min(delay_s * 2, CONNECT_RETRY_MAX_S)
        return False

    async def main(self) -> int:
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self.stopping.set)
        try:
            self.client = self._client_factory()
        except Exception as exc:
            log.error("no IoT Edge environment for the module client: %s", exc)
            return 2
        self._install_handlers()
        self.metrics.serve(int(os.environ.get("METRICS_PORT", "0") or 0))
        tasks: list[asyncio.Task[None]] = []
        try:
            if not await self._connect():
                return 0
            async with self._config_lock:
                twin = await self.client.get_twin()
                desired = twin.get("desired", {})
                self._initial_version = int(desired.get("$version", -1))
                await self._publish_outcome(await self.config.initial(desired))
            self.module.event("module_started", "info", f"{self.module.name} started (configuration "
                              f"{self.config.last.status if self.config.last else 'default'})")
            tasks = [
                asyncio.create_task(self.outbox.run(), name="outbox"),
                asyncio.create_task(self.module.run(), name="module"),
            ]
            stop = asyncio.create_task(self.stopping.wait())
            done, _ = await asyncio.wait([stop, tasks[1]], return_when=asyncio.FIRST_COMPLETED)
            if tasks[1] in done and tasks[1].exception():
                log.error("module loop failed", exc_info=tasks[1].exception())
                return 1
            stop.cancel()
            return 0
        finally:
            await self._shutdown(tasks)

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        log.info("stopping: device I/O, safe state, flush, disconnect")
        if len(tasks) > 1:
            tasks[1].cancel()
            await asyncio.gather(tasks[1], return_exceptions=True)
        try:
            await asyncio.wait_for(self.module.safe_state(), SAFE_STATE_TIMEOUT_S)
        except Exception:
            log.exception("safe state not confirmed")
        if tasks and self.client is not None and self.client.connected:
            if not await self.outbox.flush(FLUSH_TIMEOUT_S):
                log.warning("%d message(s) not sent before shutdown", len(self.outbox))
        for task in tasks[:1]:
            task.cancel()
        await asyncio.gather(*tasks[:1], return_exceptions=True)
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.shutdown(), 10)


def run_module(module: EdgeModule[Any]) -> int:
    """Entry point of a module's `main.py`: configure logging, run until stopped, return the exit code."""
    configure_logging(module.name)
    return asyncio.run(ModuleRuntime(module).main())
