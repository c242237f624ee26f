"""The IoT Edge workload API (trust bundle, signing), one Unix socket per module.

IoT Edge (1.2 and later) gives each module its own workload socket and signs only for the module on the other
end of it. The emulator does the same: `<data dir>/workload/<module>.sock` signs only for `<module>`, with the
generation id that module was given. The TCP listener serves the trust bundle only; asking it to sign is
refused, so a process cannot mint tokens for a module it is not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import tempfile
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from energy_edge.hub import identity
from energy_edge.hub.core import EdgeHub
from energy_edge.hub.errors import HubError
from energy_edge.hub.http_api import HUB_KEY, errors_middleware, json_body, not_implemented

log = logging.getLogger("energy_edge.hub.workload")

MODULE_KEY: web.AppKey[str] = web.AppKey("module", str)
_SUN_PATH_MAX = 100  # AF_UNIX paths are limited to 107 bytes; keep a margin


class SignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keyId: str = "primary"
    algo: str = "HMACSHA256"
    data: str


def _workload_error(status: int, message: str) -> web.Response:
    # The workload API's own error shape (aziot-edged): {"message": ...}
    return web.json_response({"message": message}, status=status)


async def trust_bundle(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    pem = (hub.data_dir / "tls" / "ca.pem").read_text()
    return web.json_response({"certificate": pem})


async def sign(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    caller = request.app.get(MODULE_KEY)
    module_id, generation_id = request.match_info["module"], request.match_info["genid"]
    if caller is None:
        return _workload_error(403, "the workload API signs only on the module's own socket "
                                    "(IOTEDGE_WORKLOADURI in hub.json), not over TCP")
    if module_id != caller:
        return _workload_error(403, f"this socket belongs to module {caller!r}; it cannot sign for {module_id!r}")
    ident = hub.modules.get(module_id)
    if ident is None or ident.generation_id != generation_id:
        return _workload_error(404, f"module {module_id} generation {generation_id} not found")
    req = SignRequest.model_validate(await json_body(request))
    if req.algo != "HMACSHA256" or req.keyId != "primary":
        return _workload_error(400, "only keyId 'primary' with HMACSHA256 is supported")
    try:
        data = base64.b64decode(req.data, validate=True)
    except (binascii.Error, ValueError):
        return _workload_error(400, "data is not base64")
    return web.json_response({"digest": identity.sign(ident.primary_key, data)})


def _app(hub: EdgeHub, module_id: str | None) -> web.Application:
    app = web.Application(middlewares=[errors_middleware])
    app[HUB_KEY] = hub
    if module_id is not None:
        app[MODULE_KEY] = module_id
    app.router.add_get("/trust-bundle", trust_bundle)
    app.router.add_post("/modules/{module}/genid/{genid}/sign", sign)
    app.router.add_route("*", "/{tail:.*}", not_implemented)
    return app


def workload_app(hub: EdgeHub) -> web.Application:
    """The TCP listener: trust bundle only."""
    return _app(hub, None)


def socket_dir(data_dir: Path) -> Path:
    """Where the per-module sockets live; a short path under the temp dir when data_dir is too deep."""
    directory = data_dir.resolve() / "workload"
    if len(str(directory)) + 40 > _SUN_PATH_MAX:
        digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
        directory = Path(tempfile.gettempdir()) / f"ee-workload-{digest}"
    return directory


class ModuleSockets:
    """One workload socket per module identity, added and removed as identities come and go."""

    def __init__(self, hub: EdgeHub, directory: Path) -> None:
        self.hub = hub
        self.directory = directory
        self.runners: dict[str, web.AppRunner] = {}

    def path(self, module_id: str) -> Path:
        return self.directory / f"{module_id}.sock"

    def uri(self, module_id: str) -> str:
        return f"unix://{self.path(module_id)}"

    async def sync(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)
        for module_id in sorted(set(self.runners) - set(self.hub.modules)):
            await self.runners.pop(module_id).cleanup()
            self.path(module_id).unlink(missing_ok=True)
        for module_id in sorted(set(self.hub.modules) - set(self.runners)):
            if len(str(self.path(module_id))) > _SUN_PATH_MAX:
                raise HubError("ArgumentInvalid", f"module id {module_id!r} is too long for a socket path")
            runner = web.AppRunner(_app(self.hub, module_id), access_log=None)
            await runner.setup()
            self.path(module_id).unlink(missing_ok=True)
            await web.UnixSite(runner, str(self.path(module_id))).start()
            self.path(module_id).chmod(0o666)  # module containers run as other users (compose)
            self.runners[module_id] = runner

    async def close(self) -> None:
        for module_id, runner in self.runners.items():
            await runner.cleanup()
            self.path(module_id).unlink(missing_ok=True)
        self.runners.clear()
