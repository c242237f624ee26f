"""The console module: routed telemetry in, the technician's web pages out.

Telemetry arrives by edgeHub routes (inputs `telemetry` and `controller`, as for the telemetry module); the
controller's mode and limit come from its `get_status` method every `status_poll_s`, each module's twin status
from its `get_config` method every `twin_poll_s` (a module cannot read another module's twin). Operator actions
are the same direct methods the CLI calls, made module to module through the device SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from console_module.auth import Credentials
from console_module.config import ConsoleConfig
from console_module.state import SiteView
from console_module.store import ConsoleStore
from console_module.web import ConsoleApp
from energy_edge_base.clock import SiteClock
from energy_edge_base.config import ConfigRejected
from energy_edge_base.runtime import EdgeModule

log = logging.getLogger("console_module")

STORE_FILE = "console.db"
CREDENTIALS_FILE = "console-credentials.json"
PENDING_MAX = 1000
METHOD_TIMEOUT_MIN_S = 5  # IoT Hub refuses a direct method's responseTimeoutInSeconds below 5
ACTION_CONNECT_TIMEOUT_S = 5


class ConsoleModule(EdgeModule[ConsoleConfig]):
    name = "console"
    config_model = ConsoleConfig
    input_names = frozenset({"telemetry", "controller", "events"})

    def __init__(self) -> None:
        super().__init__()
        self.clock = SiteClock.from_environment()
        state_dir = Path(os.environ.get("STATE_DIR", "data"))
        self.credentials = Credentials(Path(os.environ.get("CONSOLE_CREDENTIALS_FILE")
                                            or state_dir / CREDENTIALS_FILE))
        self.store_path = state_dir / STORE_FILE
        self.store: ConsoleStore | None = None
        self.view: SiteView | None = None
        self.web: ConsoleApp | None = None
        self.runner: web.AppRunner | None = None
        self._bound: tuple[str, int] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.pending: list[tuple[Any, float, dt.datetime]] = []
        self.inputs["telemetry"] = self.on_message
        self.inputs["controller"] = self.on_message
        self.inputs["events"] = self.on_message  # the other modules' events (the controller's come on `controller`)

    # ------------------------------------------------------------ configuration

    async def apply_config(self, config: ConsoleConfig) -> None:
        if self.store is None:
            self.store = ConsoleStore(self.store_path, config.history_hours * 3600, config.events_kept)
            self.view = SiteView(config, self.store)
            self.view.event("restart", "info", "console started", now_s=time.time())
            for body, now_s, site_now in self.pending:
                self.view.take(body, now_s, site_now)
            self.pending = []
        assert self.view is not None
        self.store.history_s, self.store.events_kept = config.history_hours * 3600, config.events_kept
        self.view.config = config
        if self.web is None:
            self.web = ConsoleApp(lambda: self.config, self.snapshot, lambda: self.view.version if self.view else 0,
                                  self.history, self.store.events, self.invoke, self.credentials, self.on_action)
            self.web.snapshot_offset = lambda: (self.clock.now().utcoffset() or dt.timedelta()).total_seconds()
        # the local run binds every process to its own loopback address: it says so in the environment
        address = (os.environ.get("ENERGY_EDGE_BIND_ADDRESS") or config.bind_address, config.http_port)
        if address == self._bound:
            return
        if self.runner is not None:
            await self.runner.cleanup()
        self.runner = web.AppRunner(self.web.app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await self.runner.setup()
        try:
            await web.TCPSite(self.runner, *address, reuse_address=True).start()
        except OSError as exc:
            await self.runner.cleanup()
            self.runner, self._bound = None, None
            raise ConfigRejected(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror}", "http_port") from exc
        self._bound = address
        log.info("console on http://%s:%d/ (operator actions %s, credentials %s)", *address,
                 "enabled" if config.operator_actions_enabled else "off",
                 "present" if self.credentials.configured else f"missing: {self.credentials.path}")

    # ------------------------------------------------------------ data

    async def on_message(self, body: Any, message: Any) -> None:
        if self.view is None:
            # routed messages can arrive before the twin is read: keep them (capability changes are sent once)
            if len(self.pending) < PENDING_MAX:
                self.pending.append((body, time.time(), self.clock.now()))
            else:
                self.metrics.messages_dropped.labels(reason="starting").inc()
            return
        if not self.view.take(body, time.time(), self.clock.now()):
            self.metrics.messages_dropped.labels(reason="unreadable").inc()

    def snapshot(self) -> dict[str, Any]:
        assert self.view is not None
        doc = self.view.snapshot(time.time(), self.clock.now())
        doc["actions_enabled"] = self.config.operator_actions_enabled
        doc["open_pages"] = self.web.streams if self.web else 0
        return doc

    def history(self, hours: float) -> list[dict[str, Any]]:
        assert self.store is not None and self.view is not None
        since = self.clock.now().timestamp() - hours * 3600
        points = self.store.samples(since)
        if self.view.bucket.start is not None and self.view.bucket.counts:
            points.append(self.view.bucket.point())  # the minute in progress
        return points

    def on_action(self, user: str, target: str, payload: dict[str, Any], status: int, answer: Any) -> None:
        assert self.view is not None
        self.view.event("operator", "info" if status == 200 else "warning",
                        f"{user}: {target} {payload} → {status}", detail={"answer": answer})

    async def invoke(self, module_id: str, method: str, payload: dict[str, Any],
                     timeout_s: int | None = None, connect_timeout_s: int = ACTION_CONNECT_TIMEOUT_S
                     ) -> tuple[int, Any]:
        """A direct method on another module of this device (edgeHub's module-to-module invoke). The device SDK
        sends these one HTTP request at a time, so the polls do not wait for a module that is not connected
        (`connect_timeout_s=0`): it would hold up every call behind it, operator actions included."""
        assert self.runtime is not None
        timeout = max(METHOD_TIMEOUT_MIN_S, timeout_s or self.config.method_timeout_s)
        try:
            result: dict[str, Any] = await asyncio.wait_for(self.runtime.client.invoke_method(
                {"methodName": method, "payload": payload, "responseTimeoutInSeconds": timeout,
                 "connectTimeoutInSeconds": connect_timeout_s},
                os.environ.get("IOTEDGE_DEVICEID", ""), module_id), timeout + 5)
        except Exception as exc:
            return 504, {"error": f"{module_id}.{method} did not answer: {type(exc).__name__}: {exc}"}
        return int(result.get("status", 500)), result.get("payload")

    # ------------------------------------------------------------ loops

    async def run(self) -> None:
        assert self.web is not None
        self._tasks = [asyncio.create_task(self.web.broadcaster.run(lambda: self.config.push_interval_s)),
                       asyncio.create_task(self._poll_controller()), asyncio.create_task(self._poll_twins())]
        await asyncio.gather(*self._tasks)

    async def _poll_controller(self) -> None:
        failing = False
        while True:
            started = time.monotonic()
            status, answer = await self.invoke(self.config.controller_module, "get_status", {},
                                               timeout_s=METHOD_TIMEOUT_MIN_S, connect_timeout_s=0)
            if status == 200 and isinstance(answer, dict) and isinstance(answer.get("status"), dict):
                assert self.view is not None
                self.view.set_controller(answer["status"], time.time())
                failing = False
            elif not failing:
                log.warning("%s.get_status -> %s %s", self.config.controller_module, status, answer)
                failing = True
            await asyncio.sleep(max(0.0, self.config.status_poll_s - (time.monotonic() - started)))

    async def _poll_twins(self) -> None:
        while True:
            started = time.monotonic()
            for module_id in list(self.config.modules):
                status, answer = await self.invoke(module_id, "get_config", {}, timeout_s=METHOD_TIMEOUT_MIN_S,
                                                   connect_timeout_s=0)
                assert self.view is not None
                if status == 200 and isinstance(answer, dict):
                    self.view.set_module(module_id, answer, None, time.time())
                else:
                    error = answer.get("error") if isinstance(answer, dict) else str(answer)
                    self.view.set_module(module_id, None, f"{status}: {error}", time.time())
            await asyncio.sleep(max(0.0, self.config.twin_poll_s - (time.monotonic() - started)))

    async def safe_state(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.view is not None:
            self.view.flush()
        if self.runner is not None:
            with contextlib.suppress(Exception):
                await self.runner.cleanup()
        if self.store is not None:
            self.store.close()
