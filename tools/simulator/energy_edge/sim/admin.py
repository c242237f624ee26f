"""The simulator's small HTTP JSON admin API (aiohttp).

    GET  /state                       the plant: site totals, per-device power/SOC/temperatures, sim time
    GET  /devices                     the endpoints, as in sim.json
    GET  /faults                      the fault injected into each device
    POST /faults {"asset_id", "fault": none|offline|exception|frozen|silent|trip, "code"?: 1..11}
    POST /load   {"offset_kw"}        a step added to the site's base load (reaction-time tests)
    POST /time   {"accel"?, "advance_s"?}  change the time acceleration (0 pauses) and/or jump ahead
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web
from pymodbus.constants import ExcCodes

from energy_edge.sim.runtime import MAX_ADVANCE_S, Simulator
from energy_edge.sim.servers import FAULTS, PortInUseError

SIM_KEY: web.AppKey[Simulator] = web.AppKey("simulator", Simulator)
HOST_KEY: web.AppKey[str] = web.AppKey("host", str)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        doc = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"body is not JSON: {exc}"}),
                                 content_type="application/json") from exc
    if not isinstance(doc, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "body must be a JSON object"}),
                                 content_type="application/json")
    return doc


def _number(doc: dict[str, Any], key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{key} must be a finite number"}),
                                 content_type="application/json")
    return float(value)


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].state())


async def get_devices(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].device_entries(request.app[HOST_KEY]))


async def get_faults(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return web.json_response({asset_id: f.to_dict() for asset_id, f in sim.faults.items()})


async def post_faults(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    doc = await _body(request)
    asset_id, fault, code = doc.get("asset_id"), doc.get("fault"), doc.get("code")
    if asset_id not in sim.devices:
        return _error(404, f"no device {asset_id!r}; devices: {', '.join(sim.devices)}")
    if fault not in FAULTS:
        return _error(400, f"fault must be one of {', '.join(FAULTS)}")
    if code is not None and (isinstance(code, bool) or code not in {int(c) for c in ExcCodes}):
        return _error(400, f"code must be a Modbus exception code: {sorted(int(c) for c in ExcCodes)}")
    try:
        state = await sim.set_fault(str(asset_id), str(fault), code)
    except PortInUseError as exc:
        return _error(409, str(exc))
    return web.json_response({"asset_id": asset_id, **state.to_dict()})


async def post_load(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    offset = _number(await _body(request), "offset_kw")
    if offset is None:
        return _error(400, "offset_kw is required")
    sim.set_load_offset(offset)
    p = sim.plant
    return web.json_response({"offset_kw": p.load_offset_kw, "load_kw": p.load_kw,
                              "grid_import_kw": p.meter.grid_import_kw, "sim_time": sim.sim_time.isoformat()})


async def post_time(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    doc = await _body(request)
    accel, advance = _number(doc, "accel"), _number(doc, "advance_s")
    if accel is not None:
        try:
            sim.set_accel(accel)
        except ValueError as exc:
            return _error(400, str(exc))
    if advance is not None:
        if not 0 <= advance <= MAX_ADVANCE_S:
            return _error(400, f"advance_s must be within 0..{MAX_ADVANCE_S:g}")
        sim.advance(advance)
    return web.json_response({"accel": sim.accel, "step_s": sim.step_s, "t_s": sim.plant.t_s,
                              "sim_time": sim.sim_time.isoformat()})


def admin_app(sim: Simulator, host: str) -> web.Application:
    app = web.Application()
    app[SIM_KEY] = sim
    app[HOST_KEY] = host
    app.router.add_get("/state", get_state)
    app.router.add_get("/devices", get_devices)
    app.router.add_get("/faults", get_faults)
    app.router.add_post("/faults", post_faults)
    app.router.add_post("/load", post_load)
    app.router.add_post("/time", post_time)
    return app
