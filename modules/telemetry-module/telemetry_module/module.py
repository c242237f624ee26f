"""The telemetry module: routed site telemetry in, Prometheus exposition out (GET /metrics, GET /healthz)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from energy_edge_base.runtime import EdgeModule
from telemetry_module.config import TelemetryConfig
from telemetry_module.exporter import SiteCollector, SiteState

log = logging.getLogger("telemetry_module")


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Endpoint(BaseModel):
    metrics_url: str
    assets: int
    stale: list[str]


class TelemetryModule(EdgeModule[TelemetryConfig]):
    name = "telemetry"
    config_model = TelemetryConfig

    def __init__(self) -> None:
        super().__init__()
        self.site = SiteState()
        self.metrics.registry.register(SiteCollector(self.site))
        self.server: asyncio.Server | None = None
        self._bound: tuple[str, int] | None = None
        self.inputs["telemetry"] = self.on_message
        self.inputs["controller"] = self.on_message
        self.methods.register("get_endpoint", Empty, Endpoint, self.get_endpoint, "Where to scrape, and asset health.")

    async def apply_config(self, config: TelemetryConfig) -> None:
        # The local run binds every process to its own loopback address: it says so in the environment.
        address = (os.environ.get("ENERGY_EDGE_BIND_ADDRESS") or config.bind_address, config.metrics_port)
        if address == self._bound:
            return
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        try:
            self.server = await asyncio.start_server(self._serve, *address, reuse_address=True)
        except OSError as exc:
            from energy_edge_base.config import ConfigRejected

            raise ConfigRejected(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror}", "metrics_port") from exc
        self._bound = address
        log.info("serving /metrics on %s:%d", *address)

    async def on_message(self, body: Any, message: Any) -> None:
        if not self.site.take(body, self.config.assets):
            self.metrics.messages_dropped.labels(reason="unreadable").inc()

    async def run(self) -> None:
        await asyncio.Event().wait()  # the HTTP server and the input handlers do the work

    async def safe_state(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def get_endpoint(self, request: Empty) -> Endpoint:
        host, port = self._bound or ("", 0)
        return Endpoint(metrics_url=f"http://{host}:{port}/metrics", assets=len(self.site.assets),
                        stale=self.site.stale(self.config.stale_after_s))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A minimal HTTP/1.1 responder: GET /metrics and GET /healthz, one request per connection."""
        try:
            request_line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1").split()
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing here needs them
            method, path = [*request_line, "", ""][:2]
            path = path.split("?", 1)[0]
            if method != "GET":
                status, content_type, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == "/metrics":
                status, content_type, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
            elif path == "/healthz":
                stale = self.site.stale(self.config.stale_after_s)
                ok = bool(self.site.assets) and not stale
                status = "200 OK" if ok else "503 Service Unavailable"
                content_type = "application/json"
                body = json.dumps({"status": "ok" if ok else "degraded", "site_id": self.config.site_id,
                                   "assets": len(self.site.assets), "stale": stale}).encode()
            else:
                status, content_type, body = "404 Not Found", "text/plain", b"try /metrics or /healthz\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
