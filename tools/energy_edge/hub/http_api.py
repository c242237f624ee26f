"""HTTP front ends: the IoT Hub service REST subset (+ module-to-module methods) over HTTPS, an admin
API for the emulator itself, and the IoT Edge workload API (trust bundle, signing) over plain HTTP.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from energy_edge.hub import identity
from energy_edge.hub.core import EdgeHub, HubError
from energy_edge.hub.jsondepth import MAX_JSON_DEPTH, json_depth
from energy_edge.hub.manifest import ManifestError
from energy_edge.hub.routes import RouteError
from energy_edge.hub.twins import TwinError

log = logging.getLogger("energy_edge.hub.http")

HUB_KEY: web.AppKey[EdgeHub] = web.AppKey("hub", EdgeHub)


def _error(status: int, code: str, message: str) -> web.Response:
    # IoT Hub puts "ErrorCode:<code>;<text>" in Message; keep that and a structured form beside it.
    body = {"Message": f"ErrorCode:{code};{message}", "errorCode": code, "message": message}
    return web.json_response(body, status=status)


def _validation_error(exc: ValidationError) -> web.Response:
    errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
    text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    response = _error(400, "ArgumentInvalid", text)
    body = json.loads(response.text or "{}")
    body["errors"] = errors
    return web.json_response(body, status=400)


@web.middleware
async def _errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except HubError as exc:
        return _error(exc.status, exc.error_code, str(exc))
    except ValidationError as exc:
        return _validation_error(exc)
    except (TwinError, ManifestError, RouteError) as exc:
        return _error(400, "ArgumentInvalid", str(exc))
    except identity.SasError as exc:
        return _error(401, "IotHubUnauthorizedAccess", str(exc))


async def _json_body(request: web.Request) -> Any:
    try:
        doc = await request.json()
    except (ValueError, RecursionError) as exc:  # a body nested thousands deep ends Python's decoder
        raise HubError(400, "ArgumentInvalid", f"request body is not valid JSON: {type(exc).__name__}") from exc
    if json_depth(doc, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise HubError(400, "ArgumentInvalid", f"request body nested deeper than {MAX_JSON_DEPTH} levels")
    return doc


class MethodRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    methodName: str = Field(min_length=1, max_length=100)
    payload: Any = None
    responseTimeoutInSeconds: float = Field(default=30, ge=5, le=300)
    connectTimeoutInSeconds: float = Field(default=0, ge=0, le=300)


# ---------------------------------------------------------------- HTTPS: service API


def _authorize(request: web.Request, device_id: str | None = None) -> str:
    """Service policy SAS, or (for module-to-module calls) a module SAS; returns who called."""
    hub = request.app[HUB_KEY]
    token = request.headers.get("Authorization", "")
    caller = request.headers.get("x-ms-edge-moduleId")
    if caller:
        caller_device, _, caller_module = caller.partition("/")
        hub.authenticate_module(caller_device, caller_module, token)
        return caller
    hub.authenticate_service(token)
    return identity.SERVICE_POLICY_NAME


def _check_device(hub: EdgeHub, device_id: str) -> None:
    if device_id != hub.device_id:
        raise HubError(404, "DeviceNotFound",
                       f"device {device_id!r} is not registered (this hub has {hub.device_id!r})")


async def get_twin(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _authorize(request)
    device_id, module_id = request.match_info["device"], request.match_info["module"]
    _check_device(hub, device_id)
    return web.json_response(hub.twin(module_id).service_view(hub.is_connected(module_id)))


async def update_twin(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _authorize(request)
    device_id, module_id = request.match_info["device"], request.match_info["module"]
    _check_device(hub, device_id)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise HubError(400, "ArgumentInvalid", "twin body must be a JSON object")
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise HubError(400, "ArgumentInvalid", "properties must be an object")
    if properties.get("reported"):
        raise HubError(400, "ArgumentInvalid", "properties.reported cannot be set by the service")
    desired = properties.get("desired")
    replace = request.method == "PUT"
    if desired is None:
        desired = {} if replace else None
    tags = body.get("tags")
    twin = hub.twin(module_id)
    if desired is not None:
        twin = hub.update_desired(module_id, desired, request.headers.get("If-Match"), replace=replace,
                                  tags=tags if isinstance(tags, dict) else None)
    return web.json_response(twin.service_view(hub.is_connected(module_id)))


async def invoke_method(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    caller = _authorize(request)
    device_id, module_id = request.match_info["device"], request.match_info["module"]
    _check_device(hub, device_id)
    call = MethodRequest.model_validate(await _json_body(request))
    log.info("%s invokes %s.%s", caller, module_id, call.methodName)
    status, payload = await hub.invoke_method(
        module_id, call.methodName, call.payload, call.responseTimeoutInSeconds, call.connectTimeoutInSeconds
    )
    return web.json_response({"status": status, "payload": payload})


async def apply_configuration(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _authorize(request)
    _check_device(hub, request.match_info["device"])
    await hub.apply_configuration(await _json_body(request))
    return web.Response(status=204)


async def get_modules(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _authorize(request)
    _check_device(hub, request.match_info["device"])
    return web.json_response([_module_view(hub, m) for m in sorted(hub.modules)])


async def get_module(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _authorize(request)
    _check_device(hub, request.match_info["device"])
    module_id = request.match_info["module"]
    hub.module_key(module_id)
    return web.json_response(_module_view(hub, module_id))


def _module_view(hub: EdgeHub, module_id: str) -> dict[str, Any]:
    return {
        "deviceId": hub.device_id,
        "moduleId": module_id,
        "managedBy": "IotEdge",
        "generationId": hub.modules[module_id].generation_id,
        "connectionState": "Connected" if hub.is_connected(module_id) else "Disconnected",
        "authentication": {"type": "sas"},
    }


# ---------------------------------------------------------------- HTTPS: emulator admin


class UpstreamRequest(BaseModel):
    online: bool


async def set_upstream(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _authorize(request)
    hub.set_upstream(UpstreamRequest.model_validate(await _json_body(request)).online)
    return web.json_response(status_view(hub))


async def get_status(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _authorize(request)
    return web.json_response(status_view(hub))


def status_view(hub: EdgeHub) -> dict[str, Any]:
    return {
        "upstream_online": hub.upstream_online.is_set(),
        "connected_modules": sorted(m for m in hub.modules if hub.is_connected(m)),
        "queue_depth": hub.store.queue_depth(),
        "counters": vars(hub.counters),
    }


def service_app(hub: EdgeHub) -> web.Application:
    app = web.Application(middlewares=[_errors_middleware], client_max_size=4 * 1024 * 1024)
    app[HUB_KEY] = hub
    twin_path = "/twins/{device}/modules/{module}"
    app.router.add_get(twin_path, get_twin)
    app.router.add_patch(twin_path, update_twin)
    app.router.add_put(twin_path, update_twin)
    app.router.add_post(twin_path + "/methods", invoke_method)
    app.router.add_post("/devices/{device}/applyConfigurationContent", apply_configuration)
    app.router.add_get("/devices/{device}/modules", get_modules)
    app.router.add_get("/devices/{device}/modules/{module}", get_module)
    app.router.add_post("/admin/upstream", set_upstream)
    app.router.add_get("/admin/status", get_status)
    return app


# ---------------------------------------------------------------- HTTP: workload API


class SignRequest(BaseModel):
    keyId: str = "primary"
    algo: str = "HMACSHA256"
    data: str


async def trust_bundle(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    pem = (hub.data_dir / "tls" / "ca.pem").read_text()
    return web.json_response({"certificate": pem})


async def sign(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    module_id, generation_id = request.match_info["module"], request.match_info["genid"]
    ident = hub.modules.get(module_id)
    if ident is None or ident.generation_id != generation_id:
        return web.json_response({"message": f"module {module_id} generation {generation_id} not found"}, status=404)
    req = SignRequest.model_validate(await _json_body(request))
    if req.algo != "HMACSHA256" or req.keyId != "primary":
        return web.json_response({"message": "only keyId 'primary' with HMACSHA256 is supported"}, status=400)
    try:
        data = base64.b64decode(req.data, validate=True)
    except ValueError:
        return web.json_response({"message": "data is not base64"}, status=400)
    return web.json_response({"digest": identity.sign(ident.primary_key, data)})


def workload_app(hub: EdgeHub) -> web.Application:
    app = web.Application(middlewares=[_errors_middleware])
    app[HUB_KEY] = hub
    app.router.add_get("/trust-bundle", trust_bundle)
    app.router.add_post("/modules/{module}/genid/{genid}/sign", sign)
    return app
