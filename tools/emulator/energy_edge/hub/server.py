"""Start and stop the whole emulator: TLS, MQTT, HTTPS service API, workload API, and `hub.json`."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from energy_edge.hub import identity
from energy_edge.hub.core import EdgeHub
from energy_edge.hub.http_api import service_app
from energy_edge.hub.manifest import load_manifest
from energy_edge.hub.mqtt_server import start_mqtt_server
from energy_edge.hub.workload_api import ModuleSockets, socket_dir, workload_app

log = logging.getLogger("energy_edge.hub")

WORKLOAD_API_VERSION = "2019-01-30"


@dataclass(frozen=True)
class HubOptions:
    manifest: Path
    data_dir: Path
    host: str = "127.0.0.1"
    # The name clients use (certificate, hub.json); defaults to `host`. In containers the emulator
    # binds 0.0.0.0 and is reached by its service name.
    advertise_host: str | None = None
    device_id: str = "edge-device"
    mqtt_port: int = 8883  # azure-iot-device hard-codes 8883
    https_port: int = 443  # module invoke_method hard-codes 443
    workload_port: int = 15580


class PortInUseError(RuntimeError):
    pass


class RunningHub:
    """An emulator bound to its ports; `close()` stops it."""

    def __init__(self, options: HubOptions, hub: EdgeHub, servers: list[Any], sockets: ModuleSockets) -> None:
        self.options = options
        self.hub = hub
        self._servers = servers
        self.sockets = sockets

    @property
    def hub_json_path(self) -> Path:
        return self.options.data_dir / "hub.json"

    async def close(self) -> None:
        for server in self._servers:
            if isinstance(server, web.AppRunner):
                await server.cleanup()
            else:
                server.close()
        await self.sockets.close()
        await self.hub.stop()
        for server in self._servers:
            if isinstance(server, asyncio.Server):
                await server.wait_closed()
        log.info("emulator stopped")


def _server_ssl_context(tls: identity.TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.server_cert, tls.server_key)
    return context


def _bind_error(host: str, port: int, what: str, exc: OSError) -> PortInUseError:
    reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
    return PortInUseError(
        f"cannot listen on {host}:{port} for {what}: {reason}. Stop whatever holds the port "
        f"(another emulator, a Mosquitto broker, iotedgehubdev), or start this emulator on another "
        f"loopback address with --host 127.0.0.N"
    )


async def start_hub(options: HubOptions) -> RunningHub:
    options.data_dir.mkdir(parents=True, exist_ok=True)
    edge = load_manifest(options.manifest)
    public = options.advertise_host or options.host
    tls = identity.ensure_tls(options.data_dir / "tls", public)
    hub = EdgeHub(options.data_dir, public, options.device_id, edge)
    if options.https_port != 443:
        hub.service_hostnames.append(f"{public}:{options.https_port}")
    servers: list[Any] = []
    sockets = ModuleSockets(hub, socket_dir(options.data_dir))
    context = _server_ssl_context(tls)
    try:
        try:
            servers.append(await start_mqtt_server(hub, options.host, options.mqtt_port, context))
        except OSError as exc:
            raise _bind_error(options.host, options.mqtt_port, "MQTT", exc) from exc
        for app, port, ssl_ctx, what in (
            (service_app(hub), options.https_port, context, "HTTPS"),
            (workload_app(hub), options.workload_port, None, "the workload API"),
        ):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            servers.append(runner)
            try:
                await web.TCPSite(runner, options.host, port, ssl_context=ssl_ctx, reuse_address=True).start()
            except OSError as exc:
                raise _bind_error(options.host, port, what, exc) from exc
        await sockets.sync()
    except BaseException:
        await RunningHub(options, hub, servers, sockets).close()
        raise
    hub.start()
    write_hub_json(options, hub, tls, sockets)

    async def identities_changed() -> None:
        await sockets.sync()
        write_hub_json(options, hub, tls, sockets)

    hub.on_config_applied.append(identities_changed)
    log.info(
        "emulator for device %s on %s: MQTT %d, HTTPS %d, workload %d; %d modules, %d routes",
        options.device_id, options.host, options.mqtt_port, options.https_port, options.workload_port,
        len(hub.modules), len(hub.edge.routes.routes),
    )
    return RunningHub(options, hub, servers, sockets)


def write_hub_json(options: HubOptions, hub: EdgeHub, tls: identity.TlsFiles, sockets: ModuleSockets) -> None:
    host = options.advertise_host or options.host
    service_host = host if options.https_port == 443 else f"{host}:{options.https_port}"
    workload_uri = f"http://{host}:{options.workload_port}/"
    modules = {}
    for module_id, ident in sorted(hub.modules.items()):
        modules[module_id] = {
            "connection_string": (
                f"HostName={host};DeviceId={hub.device_id};ModuleId={module_id};"
                f"SharedAccessKey={ident.primary_key};GatewayHostName={host}"
            ),
            "env": {
                "IOTEDGE_IOTHUBHOSTNAME": host,
                "IOTEDGE_GATEWAYHOSTNAME": host,
                "IOTEDGE_DEVICEID": hub.device_id,
                "IOTEDGE_MODULEID": module_id,
                "IOTEDGE_MODULEGENERATIONID": ident.generation_id,
                # The module's own workload socket: it signs for this module only, as IoT Edge's does.
                "IOTEDGE_WORKLOADURI": sockets.uri(module_id),
                "IOTEDGE_APIVERSION": WORKLOAD_API_VERSION,
                "IOTEDGE_AUTHSCHEME": "sasToken",
            },
        }
    doc = {
        "hostname": host,
        "gateway_hostname": host,
        "device_id": hub.device_id,
        "ca_cert": str(tls.ca_cert.resolve()),
        "mqtt_port": options.mqtt_port,
        "https_port": options.https_port,
        "workload_uri": workload_uri,  # trust bundle only; each module signs on its own socket
        "service_connection_string": (
            f"HostName={service_host};SharedAccessKeyName={identity.SERVICE_POLICY_NAME};"
            f"SharedAccessKey={hub.service_key}"
        ),
        "upstream_store": str((options.data_dir / "hub.db").resolve()),
        "modules": modules,
    }
    path = options.data_dir / "hub.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.touch(mode=0o600, exist_ok=True)
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


async def serve(options: HubOptions) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        running = await start_hub(options)
    except PortInUseError as exc:
        log.error("%s", exc)
        return 2
    print(f"energy-edge hub ready: {running.hub_json_path}", flush=True)
    try:
        await stop.wait()
    finally:
        await running.close()
    return 0
