"""HTTPS front end: the IoT Hub service REST subset operators and pipelines use, module-to-module methods,
and an admin API for the emulator itself.

Rights follow IoT Hub: service operations need a service policy token (`iothubowner`); a module's own token
(sent with `x-ms-edge-moduleId`, as the device SDK does for module-to-module methods) reaches only what
edgeHub lets a module reach: direct methods of modules on its device, and its own twin. Errors carry IoT
Hub's JSON body with the numeric error code (`errors.error_body`); an operation the emulator does not
implement answers 501 in that format, never a plain 404/405.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from energy_edge.hub import identity
from energy_edge.hub.core import EdgeHub, ModuleIdentity
from energy_edge.hub.errors import ERRORS, HubError, error_body
from energy_edge.hub.jsondepth import MAX_JSON_DEPTH, json_depth
from energy_edge.hub.manifest import ManifestError
from energy_edge.hub.query import QueryNotSupported, QuerySyntaxError, parse_query
from energy_edge.hub.routes import RouteError
from energy_edge.hub.twins import TwinError

log = logging.getLogger("energy_edge.hub.http")

HUB_KEY: web.AppKey[EdgeHub] = web.AppKey("hub", EdgeHub)
SERVICE_BODY_MAX_BYTES = 4 * 1024 * 1024
QUERY_PAGE_DEFAULT = 100


def error_response(error: str, message: str, extra: dict[str, Any] | None = None) -> web.Response:
    return web.json_response(error_body(error, message, extra), status=ERRORS[error][0])


def _validation_error(exc: ValidationError) -> web.Response:
    errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
    text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return error_response("ArgumentInvalid", text, {"errors": errors})


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except HubError as exc:
        return error_response(exc.error, str(exc))
    except ValidationError as exc:
        return _validation_error(exc)
    except (TwinError, ManifestError, RouteError) as exc:
        return error_response("ArgumentInvalid", str(exc))
    except identity.SasError as exc:
        return error_response("IotHubUnauthorized", str(exc))
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response("MessageTooLarge", exc.text or "request body too large")


async def json_body(request: web.Request) -> Any:
    try:
        doc = await request.json()
    except RecursionError as exc:  # valid JSON nested thousands deep ends Python's decoder
        raise HubError("ArgumentInvalid", f"request body nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise HubError("IotHubFormatError", f"request body is not valid JSON: {exc}") from exc
    if json_depth(doc, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise HubError("ArgumentInvalid", f"request body nested deeper than {MAX_JSON_DEPTH} levels")
    return doc


async def not_implemented(request: web.Request) -> web.Response:
    return error_response(
        "NotImplementedInEmulator",
        f"{request.method} {request.path} is not implemented in the energy-edge emulator "
        "(see docs/emulator.md for what is)",
    )


class MethodRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    methodName: str = Field(min_length=1, max_length=100)
    payload: Any = None
    responseTimeoutInSeconds: float = Field(default=30, ge=5, le=300)
    connectTimeoutInSeconds: float = Field(default=0, ge=0, le=300)


# ---------------------------------------------------------------- authorization


@dataclass(frozen=True)
class Caller:
    module_id: str | None  # None: a service policy

    def __str__(self) -> str:
        return self.module_id or identity.SERVICE_POLICY_NAME


def _caller(request: web.Request) -> Caller:
    """Who signed the request: a service policy, or a module of this device with its own token."""
    hub = request.app[HUB_KEY]
    token = request.headers.get("Authorization", "")
    if not token:
        raise HubError("IotHubUnauthorized", "Authorization header missing")
    module_header = request.headers.get("x-ms-edge-moduleId")
    if module_header:
        device_id, _, module_id = module_header.partition("/")
        hub.authenticate_module(device_id, module_id, token)
        return Caller(module_id)
    hub.authenticate_service(token)
    return Caller(None)


def _service_only(request: web.Request) -> Caller:
    caller = _caller(request)
    if caller.module_id is not None:
        raise HubError(
            "IotHubUnauthorized",
            f"module {caller.module_id!r}'s token grants only its own identity's rights; "
            f"{request.method} {request.path} needs a service policy (iothubowner)",
        )
    return caller


def _check_device(hub: EdgeHub, device_id: str) -> None:
    if device_id != hub.device_id:
        raise HubError("DeviceNotFound", f"device {device_id!r} is not registered (this hub has {hub.device_id!r})")


# ---------------------------------------------------------------- twins

# The Twin object's fields (azure-iot-hub models.Twin); read-only ones are ignored on update, as IoT Hub does.
_TWIN_FIELDS = {"deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason", "statusUpdateTime",
                "connectionState", "lastActivityTime", "cloudToDeviceMessageCount", "authenticationType",
                "x509Thumbprint", "version", "tags", "properties", "capabilities", "deviceScope", "parentScopes",
                "modelId"}


def _twin_update(body: Any, replace: bool) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(desired, tags) of a twin PATCH/PUT body; None where the body leaves them alone."""
    if not isinstance(body, dict):
        raise HubError("ArgumentInvalid", "the twin must be a JSON object")
    unknown = sorted(set(body) - _TWIN_FIELDS)
    if unknown:
        raise HubError("ArgumentInvalid", f"unknown twin field(s): {', '.join(unknown)}")
    properties = body.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise HubError("ArgumentInvalid", "properties must be an object")
    unknown = sorted(set(properties) - {"desired", "reported"})
    if unknown:
        raise HubError("ArgumentInvalid", f"unknown twin properties section(s): {', '.join(unknown)}")
    if properties.get("reported"):
        raise HubError("ArgumentInvalid", "properties.reported cannot be set by the service")
    desired = properties.get("desired")
    if desired is not None and not isinstance(desired, dict):
        raise HubError("ArgumentInvalid", "properties.desired must be an object")
    tags = body.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise HubError("ArgumentInvalid", "tags must be an object")
    if replace:
        return desired or {}, tags or {}
    return desired, tags


async def get_module_twin(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    caller = _caller(request)
    device_id, module_id = request.match_info["device"], request.match_info["module"]
    _check_device(hub, device_id)
    if caller.module_id is not None and caller.module_id != module_id:
        raise HubError("IotHubUnauthorized",
                       f"module {caller.module_id!r} may read only its own twin, not {module_id!r}'s")
    return web.json_response(hub.twin(module_id).service_view(hub.is_connected(module_id)))


async def update_module_twin(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    device_id, module_id = request.match_info["device"], request.match_info["module"]
    _check_device(hub, device_id)
    hub.twin(module_id)  # 404 before the body is looked at
    desired, tags = _twin_update(await json_body(request), replace=request.method == "PUT")
    twin = hub.update_twin(module_id, desired, tags, request.headers.get("If-Match"), replace=request.method == "PUT")
    return web.json_response(twin.service_view(hub.is_connected(module_id)))


async def get_device_twin(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    _check_device(hub, request.match_info["device"])
    return web.json_response(hub.device_view())


async def update_device_twin(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    _check_device(hub, request.match_info["device"])
    desired, tags = _twin_update(await json_body(request), replace=request.method == "PUT")
    hub.update_twin(None, desired, tags, request.headers.get("If-Match"), replace=request.method == "PUT")
    return web.json_response(hub.device_view())


# ---------------------------------------------------------------- direct methods


async def invoke_method(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    caller = _caller(request)  # edgeHub lets a module call methods of other modules on its device
    device_id, module_id = request.match_info["device"], request.match_info["module"]
    _check_device(hub, device_id)
    call = MethodRequest.model_validate(await json_body(request))
    log.info("%s invokes %s.%s", caller, module_id, call.methodName)
    status, payload = await hub.invoke_method(
        module_id, call.methodName, call.payload, call.responseTimeoutInSeconds, call.connectTimeoutInSeconds
    )
    return web.json_response({"status": status, "payload": payload})


# ---------------------------------------------------------------- identities


async def get_device(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    _check_device(hub, request.match_info["device"])
    twin = hub.device_twin
    return web.json_response({
        "deviceId": hub.device_id,
        "generationId": "0",
        "etag": twin.etag,
        "connectionState": hub.device_view()["connectionState"],
        "status": "enabled",
        "statusReason": None,
        "connectionStateUpdatedTime": "0001-01-01T00:00:00Z",
        "statusUpdatedTime": "0001-01-01T00:00:00Z",
        "lastActivityTime": "0001-01-01T00:00:00Z",
        "cloudToDeviceMessageCount": 0,
        # No device key: the emulator serves modules, not device clients, so it advertises no device credential.
        "authentication": {"type": "sas", "symmetricKey": {"primaryKey": None, "secondaryKey": None}},
        "capabilities": {"iotEdge": True},
    })


def _module_view(hub: EdgeHub, ident: ModuleIdentity) -> dict[str, Any]:
    return {
        "moduleId": ident.module_id,
        "deviceId": hub.device_id,
        "managedBy": ident.managed_by,
        "generationId": ident.generation_id,
        "etag": str(ident.etag_version),
        "connectionState": "Connected" if hub.is_connected(ident.module_id) else "Disconnected",
        "connectionStateUpdatedTime": "0001-01-01T00:00:00Z",
        "lastActivityTime": "0001-01-01T00:00:00Z",
        "cloudToDeviceMessageCount": 0,
        "authentication": {"type": "sas", "symmetricKey": {"primaryKey": ident.primary_key,
                                                            "secondaryKey": ident.secondary_key or None}},
    }


async def get_modules(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    _check_device(hub, request.match_info["device"])
    return web.json_response([_module_view(hub, hub.modules[m]) for m in sorted(hub.modules)])


async def get_module(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    _check_device(hub, request.match_info["device"])
    return web.json_response(_module_view(hub, hub.module_identity(request.match_info["module"])))


_MODULE_FIELDS = {"moduleId", "deviceId", "managedBy", "generationId", "etag", "connectionState",
                  "connectionStateUpdatedTime", "lastActivityTime", "cloudToDeviceMessageCount", "authentication"}


async def put_module(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    device_id, module_id = request.match_info["device"], request.match_info["module"]
    _check_device(hub, device_id)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise HubError("ArgumentInvalid", "the module must be a JSON object")
    unknown = sorted(set(body) - _MODULE_FIELDS)
    if unknown:
        raise HubError("ArgumentInvalid", f"unknown module field(s): {', '.join(unknown)}")
    if body.get("moduleId", module_id) != module_id or body.get("deviceId", device_id) != device_id:
        raise HubError("ArgumentInvalid", "moduleId/deviceId in the body do not match the URL")
    auth = body.get("authentication") or {"type": "sas"}
    if not isinstance(auth, dict):
        raise HubError("ArgumentInvalid", "authentication must be an object")
    if auth.get("type", "sas") != "sas":
        raise HubError("NotImplementedInEmulator",
                       f"authentication type {auth.get('type')!r} is not implemented in the emulator (only sas)")
    keys = auth.get("symmetricKey") or {}
    primary, secondary = keys.get("primaryKey"), keys.get("secondaryKey")
    for name, key in (("primaryKey", primary), ("secondaryKey", secondary)):
        if key is not None and not _valid_key(key):
            raise HubError("ArgumentInvalid", f"authentication.symmetricKey.{name} is not a base64 key of "
                                              "16 to 64 bytes")
    ident, created = hub.create_or_update_module(module_id, primary, secondary, body.get("managedBy"),
                                                 request.headers.get("If-Match"))
    await hub.notify_changed()
    log.info("module identity %s %s", module_id, "created" if created else "updated")
    return web.json_response(_module_view(hub, ident))


def _valid_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    try:
        return 16 <= len(base64.b64decode(key, validate=True)) <= 64
    except (binascii.Error, ValueError):
        return False


async def delete_module(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    _check_device(hub, request.match_info["device"])
    hub.delete_module(request.match_info["module"], request.headers.get("If-Match"))
    await hub.notify_changed()
    return web.Response(status=204)


# ---------------------------------------------------------------- query


async def query_twins(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise HubError("ArgumentInvalid", "the body must be {\"query\": \"SELECT ...\"}")
    try:
        query = parse_query(body["query"])
    except QueryNotSupported as exc:
        raise HubError("NotImplementedInEmulator", str(exc)) from exc
    except QuerySyntaxError as exc:
        raise HubError("ArgumentInvalid", f"query: {exc}") from exc
    results = hub.query_twins(query)
    try:
        page = int(request.headers.get("x-ms-max-item-count") or QUERY_PAGE_DEFAULT)
        start = int(request.headers.get("x-ms-continuation") or 0)
    except ValueError as exc:
        raise HubError("ArgumentInvalid", "x-ms-max-item-count and x-ms-continuation must be integers") from exc
    page = max(1, min(page, 1000))
    headers = {"x-ms-item-type": "twin"}
    if start + page < len(results):
        headers["x-ms-continuation"] = str(start + page)
    return web.json_response(results[start:start + page], headers=headers)


# ---------------------------------------------------------------- configurations (deployments)


async def put_configuration(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    config, _ = hub.put_configuration(request.match_info["id"], await json_body(request),
                                      request.headers.get("If-Match"))
    return web.json_response(hub.configuration_view(config))


async def get_configuration(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    return web.json_response(hub.configuration_view(hub.configuration(request.match_info["id"])))


async def list_configurations(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    top = request.query.get("top")
    configs = sorted(hub.configurations.values(), key=lambda c: c.created)
    if top is not None:
        if not top.isdigit():
            raise HubError("ArgumentInvalid", "top must be a non-negative integer")
        configs = configs[: int(top)]
    return web.json_response([hub.configuration_view(c) for c in configs])


async def delete_configuration(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    hub.delete_configuration(request.match_info["id"], request.headers.get("If-Match"))
    return web.Response(status=204)


async def apply_configuration(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    _check_device(hub, request.match_info["device"])
    body = await json_body(request)
    if not isinstance(body, dict):
        raise HubError("ArgumentInvalid", "the configuration content must be a JSON object")
    await hub.apply_configuration(body)
    return web.Response(status=204)


# ---------------------------------------------------------------- HTTPS: emulator admin


class UpstreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    online: bool


async def set_upstream(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    hub.set_upstream(UpstreamRequest.model_validate(await json_body(request)).online)
    return web.json_response(status_view(hub))


async def get_status(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    _service_only(request)
    return web.json_response(status_view(hub))


def status_view(hub: EdgeHub) -> dict[str, Any]:
    return {
        "upstream_online": hub.upstream_online.is_set(),
        "connected_modules": sorted(m for m in hub.modules if hub.is_connected(m)),
        "queue_depth": hub.store.queue_depth(),
        "counters": vars(hub.counters),
        "applied_configurations": hub.applied_configurations,
    }


def service_app(hub: EdgeHub) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=SERVICE_BODY_MAX_BYTES)
    app[HUB_KEY] = hub
    router = app.router
    twin_path = "/twins/{device}/modules/{module}"
    router.add_get(twin_path, get_module_twin)
    router.add_patch(twin_path, update_module_twin)
    router.add_put(twin_path, update_module_twin)
    router.add_post(twin_path + "/methods", invoke_method)
    router.add_get("/twins/{device}", get_device_twin)
    router.add_patch("/twins/{device}", update_device_twin)
    router.add_put("/twins/{device}", update_device_twin)
    router.add_post("/devices/query", query_twins)
    router.add_get("/devices/{device}", get_device)
    router.add_post("/devices/{device}/applyConfigurationContent", apply_configuration)
    router.add_get("/devices/{device}/modules", get_modules)
    router.add_get("/devices/{device}/modules/{module}", get_module)
    router.add_put("/devices/{device}/modules/{module}", put_module)
    router.add_delete("/devices/{device}/modules/{module}", delete_module)
    router.add_get("/configurations", list_configurations)
    router.add_get("/configurations/{id}", get_configuration)
    router.add_put("/configurations/{id}", put_configuration)
    router.add_delete("/configurations/{id}", delete_configuration)
    router.add_post("/admin/upstream", set_upstream)
    router.add_get("/admin/status", get_status)
    router.add_route("*", "/{tail:.*}", not_implemented)  # last: anything else, any method
    return app
