"""`energy-edge sim` with a benchmark-only trace (same arguments as `energy-edge sim`).

Records, on CLOCK_MONOTONIC (`time.monotonic()`, the same clock in every process of the machine):

- `load`: a POST /load step, taken when the plant has it (the meter registers change at that moment);
- `write`: every Modbus write to the devices named in BENCH_TRACE_WRITES (comma-separated asset ids),
  with the battery's command in kW after the write;
- `read`: every FC3/FC4 read of the devices named in BENCH_TRACE_READS.

The events are served on the admin API: GET /bench/events?since=N -> {"next": M, "events": [...]}.

BENCH_SIM_FULL_REFRESH=1 (scale benchmark, for comparison): after a control write, re-encode every device's
registers, as the simulator did before it learnt to refresh only the written device and the meter
(`Simulator.on_control`): ~75 us per SunSpec device, 12 ms per write on a 152-device site.

The simulator is otherwise unchanged; this script wraps a few of its methods before starting it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from aiohttp import web

from energy_edge.sim import main as sim_main
from energy_edge.sim import runtime, servers

TRACE_WRITES = {a for a in os.environ.get("BENCH_TRACE_WRITES", "").split(",") if a}
TRACE_READS = {a for a in os.environ.get("BENCH_TRACE_READS", "").split(",") if a}
FULL_REFRESH = os.environ.get("BENCH_SIM_FULL_REFRESH") == "1"
EVENTS: list[dict[str, Any]] = []

_handle_write = servers.DeviceEndpoint.handle_write
_handle_read = servers.DeviceEndpoint.handle_read
_set_load_offset = runtime.Simulator.set_load_offset
_on_control = runtime.Simulator.on_control
_admin_app = sim_main.admin_app


def handle_write(self: servers.DeviceEndpoint, device_id: int, func_code: int, address: int, values: list[int]
                 ) -> Any:
    t = time.monotonic()
    rc = _handle_write(self, device_id, func_code, address, values)
    if self.device.asset_id in TRACE_WRITES:
        event: dict[str, Any] = {"ev": "write", "t": t, "t_done": time.monotonic(), "asset_id": self.device.asset_id,
                                 "fc": func_code, "address": address, "values": values, "ok": rc is None}
        unit = getattr(self.device, "unit", None)
        if unit is not None and hasattr(unit, "command_kw"):
            event["command_kw"] = unit.command_kw
        EVENTS.append(event)
    return rc


def handle_read(self: servers.DeviceEndpoint, device_id: int, func_code: int, address: int, count: int) -> Any:
    if self.device.asset_id in TRACE_READS and func_code in (3, 4):
        EVENTS.append({"ev": "read", "t": time.monotonic(), "asset_id": self.device.asset_id, "fc": func_code,
                       "address": address, "count": count})
    return _handle_read(self, device_id, func_code, address, count)


def on_control(self: runtime.Simulator, written: Any = None) -> None:
    _on_control(self, None if FULL_REFRESH else written)  # None: every image, as before


def set_load_offset(self: runtime.Simulator, offset_kw: float) -> None:
    _set_load_offset(self, offset_kw)
    EVENTS.append({"ev": "load", "t": time.monotonic(), "offset_kw": offset_kw,
                   "grid_import_kw": self.plant.meter.grid_import_kw})


async def get_events(request: web.Request) -> web.Response:
    try:
        since = max(0, int(request.query.get("since", "0")))
    except ValueError:
        since = 0
    return web.json_response({"next": len(EVENTS), "events": EVENTS[since:]})


def admin_app(sim: runtime.Simulator, host: str) -> web.Application:
    app = _admin_app(sim, host)
    app.router.add_get("/bench/events", get_events)
    return app


servers.DeviceEndpoint.handle_write = handle_write  # type: ignore[method-assign]
servers.DeviceEndpoint.handle_read = handle_read  # type: ignore[method-assign]
runtime.Simulator.set_load_offset = set_load_offset  # type: ignore[method-assign]
runtime.Simulator.on_control = on_control  # type: ignore[method-assign]
sim_main.admin_app = admin_app  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(sim_main.main(sys.argv[1:]))
