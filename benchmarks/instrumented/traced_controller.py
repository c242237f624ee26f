"""The controller module with a benchmark-only trace (runs where `modules/controller-module/main.py` runs).

JSON lines to BENCH_CONTROLLER_TRACE, all times on CLOCK_MONOTONIC (`time.monotonic()`, shared by every
process on the machine):

- `tel`: meter telemetry arriving on input `telemetry` (grid import, the message's own timestamp);
- `cycle`: one control cycle: start, and the time spent in aggregation (`site_state`), the decision
  (`Controller.step`), the commands (`_write`, with the number of direct methods it sent and their
  slowest round trip) and reporting (`_report`); the meter's and the oldest battery telemetry's age;
- `invoke`: each direct method the controller sends (only with BENCH_TRACE_INVOKES=1), with the number of
  asset commands it carries (a batch call such as `set_powers` carries many).

The cycle is the product's (`ControllerModule.run`: a cycle on each meter reading, at most every 0.2 s,
fallback 1.5 x `cycle_s`). BENCH_CONTROLLER_CYCLE=timer swaps in the controller's former fixed 1 s timer
(benchmark only) so the two can be compared on the same machine; everything else is the product's code.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from controller_module.core.controller import Controller
from controller_module.module import ControllerModule
from energy_edge_base.runtime import run_module

TRACE_PATH = os.environ.get("BENCH_CONTROLLER_TRACE", "controller-trace.jsonl")
TRACE_INVOKES = os.environ.get("BENCH_TRACE_INVOKES") == "1"
CYCLE_MODE = os.environ.get("BENCH_CONTROLLER_CYCLE", "product")

_trace = open(TRACE_PATH, "a", buffering=1 << 16)


def emit(doc: dict[str, Any]) -> None:
    _trace.write(json.dumps(doc, separators=(",", ":")) + "\n")


_step = Controller.step


def timed_step(self: Controller, site: Any) -> Any:
    t0 = time.perf_counter()
    decision = _step(self, site)
    TracedController.current["step_s"] = time.perf_counter() - t0
    return decision


Controller.step = timed_step  # type: ignore[method-assign]


class TracedController(ControllerModule):
    current: dict[str, Any] = {}

    def __init__(self) -> None:
        super().__init__()
        aggregate = self.aggregator.site_state

        def site_state(now_s: float, site_time: Any) -> Any:
            t0 = time.perf_counter()
            state = aggregate(now_s, site_time)
            TracedController.current = {"ev": "cycle", "t": time.monotonic(), "state_s": time.perf_counter() - t0,
                                        "n_invokes": 0, "invoke_max_s": 0.0,
                                        "meter_age_s": state.meter.age_s if state.meter else None,
                                        "battery_age_max_s": max((b.age_s for b in state.batteries), default=None),
                                        "batteries": len(state.batteries), "solars": len(state.solars)}
            return state

        self.aggregator.site_state = site_state  # type: ignore[method-assign]

    async def on_telemetry(self, body: Any, message: Any) -> None:
        t = time.monotonic()
        await super().on_telemetry(body, message)
        if isinstance(body, dict) and body.get("asset_type") == "microgrid_controller":
            emit({"ev": "tel", "t": t, "asset_id": body.get("asset_id"), "grid_import_kw": body.get("grid_import_kw"),
                  "timestamp": body.get("timestamp")})

    async def _write(self, decision: Any, site: Any) -> None:
        t0 = time.perf_counter()
        await super()._write(decision, site)
        self.current["write_s"] = time.perf_counter() - t0

    async def _report(self, decision: Any, site: Any) -> None:
        t0 = time.perf_counter()
        await super()._report(decision, site)
        cur = self.current
        cur["report_s"] = time.perf_counter() - t0
        cur["t_end"] = time.monotonic()
        cur["mode"] = decision.status.mode.value
        cur["battery_kw"] = decision.status.battery_kw
        emit(cur)
        _trace.flush()

    async def invoke(self, module_id: str, method: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        t0 = time.monotonic()
        result = await super().invoke(module_id, method, payload)
        t1 = time.monotonic()
        cur = self.current
        cur["n_invokes"] = cur.get("n_invokes", 0) + 1
        commands = len(payload["commands"]) if "commands" in payload else 1  # a batch call carries many
        cur["n_commands"] = cur.get("n_commands", 0) + commands
        cur["invoke_max_s"] = max(cur.get("invoke_max_s", 0.0), t1 - t0)
        if TRACE_INVOKES:
            emit({"ev": "invoke", "t0": t0, "t1": t1, "module": module_id, "method": method, "commands": commands,
                  "asset_id": payload.get("asset_id"), "power_kw": payload.get("power_kw"),
                  "status": result.get("status") if result else None})
        return result

    async def _next_cycle(self, started: float) -> None:
        if CYCLE_MODE != "timer":
            await super()._next_cycle(started)
            return
        # The former product loop: a fixed timer, independent of when the meter's telemetry arrives.
        await asyncio.sleep(max(0.0, self.config.cycle_s - (time.monotonic() - started)))

if __name__ == "__main__":
    sys.exit(run_module(TracedController()))
